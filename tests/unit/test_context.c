/* SPDX-License-Identifier: Apache-2.0 */
/* Where the context puts things: runtime files in /run, the database where
 * it outlives a reboot, everything under an explicit --state-dir. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host/context.h"

static void test_defaults(void **state)
{
	struct gp_ctx *ctx = NULL;

	(void)state;
	assert_int_equal(gp_ctx_new(NULL, NULL, &ctx), 0);
	assert_string_equal(ctx->state_dir, "/run/gpupass");
	assert_string_equal(ctx->db_dir, "/var/lib/gpupass");
	assert_string_equal(gp_sysfs_root(ctx->sys), "/");
	gp_ctx_free(ctx);
}

static void test_explicit_state_dir(void **state)
{
	struct gp_ctx *ctx = NULL;

	(void)state;
	assert_int_equal(gp_ctx_new("/tmp", "/tmp/gp-state", &ctx), 0);
	assert_string_equal(ctx->state_dir, "/tmp/gp-state");
	assert_string_equal(ctx->db_dir, "/tmp/gp-state");
	assert_string_equal(gp_sysfs_root(ctx->sys), "/tmp");
	gp_ctx_free(ctx);
	gp_ctx_free(NULL);
}

static void test_bad_root(void **state)
{
	struct gp_ctx *ctx = NULL;

	(void)state;
	assert_int_equal(gp_ctx_new("/nonexistent/gpupass", NULL, &ctx), -ENOENT);
	assert_null(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_explicit_state_dir),
		cmocka_unit_test(test_bad_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
