/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass-pvd's handle table and configuration parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "pvd/config.h"
#include "pvd/handles.h"

static void test_handles(void **state)
{
	struct gp_handles *h;
	struct gp_handle *e, out;
	int x;

	assert_int_equal(gp_handles_new(0, &h), 0);
	assert_int_equal(gp_handles_add(h, 0x10000, GP_KIND_MEM, &x, 64), 0);
	assert_int_equal(gp_handles_add(h, 0x10000, GP_KIND_MEM, &x, 64), -EEXIST);
	assert_int_equal(gp_handles_add(h, 0, GP_KIND_MEM, &x, 0), -EEXIST);
	assert_int_equal(gp_handles_add(h, 5, GP_KIND_MAX + 1, &x, 0), -EEXIST);
	assert_int_equal(gp_handles_get(h, 0x10000, GP_KIND_MEM, &e), 0);
	assert_ptr_equal(e->obj, &x);
	assert_int_equal(e->bytes, 64);
	assert_int_equal(gp_handles_get(h, 0x10000, GP_KIND_KERNEL, &e), -EPERM); /* kind checked */
	assert_int_equal(gp_handles_get(h, 0x10001, GP_KIND_MEM, &e), -ENOENT);
	/* many entries, removals and re-adds (growth, tombstones) */
	for (uint64_t i = 1; i <= 5000; i++)
		assert_int_equal(gp_handles_add(h, 0x20000 + i, GP_KIND_EVENT, &x, 0), 0);
	for (uint64_t i = 1; i <= 5000; i += 2)
		assert_int_equal(gp_handles_remove(h, 0x20000 + i, &out), 0);
	assert_int_equal(gp_handles_remove(h, 0x20001, &out), -ENOENT);
	assert_int_equal(gp_handles_count(h), 2501);
	for (uint64_t i = 2; i <= 5000; i += 2)
		assert_int_equal(gp_handles_get(h, 0x20000 + i, GP_KIND_EVENT, &e), 0);
	gp_handles_free(h);
	assert_int_equal(gp_handles_new(2, &h), 0);
	assert_int_equal(gp_handles_add(h, 1, GP_KIND_DEVICE, &x, 0), 0);
	assert_int_equal(gp_handles_add(h, 2, GP_KIND_DEVICE, &x, 0), 0);
	assert_int_equal(gp_handles_add(h, 3, GP_KIND_DEVICE, &x, 0), -ENOSPC); /* max_objects */
	gp_handles_free(h);
	gp_handles_free(NULL);
}

static void test_config(void **state)
{
	struct gp_pvd_config c = { 0 };
	struct gp_pvd_guest_cfg *g;

	assert_int_equal(gp_pvd_config_parse(
		"[server]\nlisten = unix:/run/a.sock\nlisten = unix:/run/b.sock\ndevices = pocl, all\n"
		"[guest vm1]\nsocket = /run/vm1.sock\nmemory_max = 512M\nmax_objects = 100\nweight = 2\n"
		"ivshmem = /var/lib/gpupass/vm1.shm\n"
		"[guest alice]\nuid = 1000\nmemory_max = 2G\n"
		"[guest default]\n", &c), 0);
	assert_int_equal(c.listen.n, 2);
	assert_string_equal(c.listen.v[1], "unix:/run/b.sock");
	assert_int_equal(c.devices.n, 1);
	assert_int_equal(c.n_guests, 3);
	g = gp_pvd_config_guest(&c, "vm1");
	assert_non_null(g);
	assert_string_equal(g->socket, "/run/vm1.sock");
	assert_int_equal(g->memory_max, 512ull << 20);
	assert_int_equal(g->max_objects, 100);
	assert_int_equal(g->weight, 2);
	assert_string_equal(g->ivshmem, "/var/lib/gpupass/vm1.shm");
	g = gp_pvd_config_guest(&c, "alice");
	assert_null(g->ivshmem);
	assert_int_equal(g->uid, 1000);
	assert_int_equal(g->memory_max, 2ull << 30);
	assert_int_equal(gp_pvd_config_guest(&c, "default")->weight, 1);
	assert_null(gp_pvd_config_guest(&c, "bob"));
	gp_pvd_config_clear(&c);
}

static void test_config_garbage(void **state)
{
	static const char *const bad[] = {
		"[guest x]\nmemory_max = lots\n",
		"[guest x]\nmemory_max = -1G\n",
		"[guest x]\nweight = 0\n",
		"[guest x]\nweight = 1001\n",
		"[guest x]\nuid = root\n",
		"[guest x]\nmax_objects = 99999999999\n",
		"[guest x]\ncolour = blue\n",
		"[guest ]\nweight = 1\n",
		"[server]\nlisten = tcp:1.2.3.4:5\n",
		"[server]\nport = 5\n",
		"[nonsense]\na = b\n",
		"no section = 1\n",
		"[server\nlisten = unix:/x\n",
		"[guest x]\nivshmem = relative/file\n",
		"[guest x]\nivshmem =\n",
		"[guest x]\nivshmem = ~/x\n",
		"[server]\nivshmem = /x\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gp_pvd_config c = { 0 };

		assert_int_equal(gp_pvd_config_parse(bad[i], &c), -EINVAL);
		assert_non_null(c.error);
		gp_pvd_config_clear(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handles),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
