/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the guest quota (quota.c) and its config keys. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pvd/config.h"
#include "pvd/quota.h"

static void test_charge(void **state)
{
	struct pvd_guest g = { .memory_max = 64u << 20 };

	(void)state;
	assert_int_equal(pvd_quota_charge(&g, 32u << 20, PVD_CHARGE_PROGRAM), 0);
	assert_int_equal(pvd_quota_charge(&g, 32u << 20, PVD_CHARGE_STAGE), 0);
	/* exactly at the limit: one byte more of any kind is refused */
	assert_int_equal(pvd_quota_charge(&g, 1, PVD_CHARGE_WRITE), -EDQUOT);
	assert_int_equal(pvd_quota_charge(&g, UINT64_MAX, PVD_CHARGE_MEM), -EDQUOT);
	assert_int_equal(g.mem_used, 64u << 20);
	assert_int_equal(g.charged[PVD_CHARGE_PROGRAM], 32u << 20);
	assert_int_equal(g.charged[PVD_CHARGE_STAGE], 32u << 20);
	assert_int_equal(g.charged[PVD_CHARGE_WRITE], 0);
	pvd_quota_refund(&g, 32u << 20, PVD_CHARGE_STAGE);
	assert_int_equal(g.mem_used, 32u << 20);
	assert_int_equal(g.charged[PVD_CHARGE_STAGE], 0);
	assert_int_equal(pvd_quota_charge(&g, 1, PVD_CHARGE_KINDS), -EINVAL);
	/* unlimited */
	g.memory_max = 0;
	assert_int_equal(pvd_quota_charge(&g, 1ull << 40, PVD_CHARGE_MEM), 0);
	assert_string_equal(pvd_quota_kind_name(PVD_CHARGE_WRITE), "queued writes");
}

static void test_records(void **state)
{
	struct pvd_guest g = { .memory_max = 4 * PVD_RECORD_BYTES, .max_objects = 3 };

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pvd_quota_take_record(&g, PVD_RECORD_BYTES, PVD_CHARGE_RECORD), 0);
	/* max_objects: refused, and nothing charged */
	assert_int_equal(pvd_quota_take_record(&g, PVD_RECORD_BYTES, PVD_CHARGE_RECORD), -ENOSPC);
	assert_int_equal(g.objects, 3);
	assert_int_equal(g.mem_used, 3 * PVD_RECORD_BYTES);
	/* memory_max: refused, and the object given back */
	g.max_objects = 0;
	assert_int_equal(pvd_quota_take_record(&g, 2 * PVD_RECORD_BYTES, PVD_CHARGE_WRITE), -EDQUOT);
	assert_int_equal(g.objects, 3);
	for (int i = 0; i < 3; i++)
		pvd_quota_put_record(&g, PVD_RECORD_BYTES, PVD_CHARGE_RECORD);
	assert_int_equal(g.objects, 0);
	assert_int_equal(g.mem_used, 0);
	assert_int_equal(g.charged[PVD_CHARGE_RECORD], 0);
}

static void test_config_keys(void **state)
{
	struct gp_pvd_config c = { 0 };
	static const char *const bad[] = {
		"[server]\nmax_pending = 0\n",
		"[server]\nmax_pending = many\n",
		"[server]\nhello_timeout = 0\n",
		"[server]\nhello_timeout = 3601\n",
		"[guest x]\nmax_sessions = 65537\n",
		"[guest x]\nmax_sessions = -1\n",
	};

	(void)state;
	assert_int_equal(gp_pvd_config_parse("[server]\nmax_pending = 8\nhello_timeout = 3\n"
					     "[guest a]\nmax_sessions = 2\n[guest b]\n"
					     "[guest c]\nmax_sessions = 0\n", &c), 0);
	assert_int_equal(c.max_pending, 8);
	assert_int_equal(c.hello_timeout_ms, 3000);
	assert_int_equal(gp_pvd_config_guest(&c, "a")->max_sessions, 2);
	assert_int_equal(gp_pvd_config_guest(&c, "b")->max_sessions, GP_PVD_MAX_SESSIONS_DEFAULT);
	assert_int_equal(gp_pvd_config_guest(&c, "c")->max_sessions, 0);
	gp_pvd_config_clear(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gp_pvd_config b = { 0 };

		assert_int_equal(gp_pvd_config_parse(bad[i], &b), -EINVAL);
		assert_non_null(b.error);
		gp_pvd_config_clear(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_charge),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_config_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
