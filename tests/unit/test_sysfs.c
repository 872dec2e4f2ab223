/* SPDX-License-Identifier: Apache-2.0 */
/* The sysfs door: reads stay inside the root, even through absolute links. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/sysfs.h"

struct fx {
	char dir[64];
	struct gp_sysfs *sys;
};

static void put(const char *dir, const char *rel, const char *data)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char p[512];

	strcpy(fx->dir, "/tmp/gp-sysfs-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(p, sizeof(p), "mkdir -p %s/sys/devices/pci0000:00/0000:00:02.0 "
		 "%s/sys/bus/pci/devices %s/sys/bus/pci/drivers/bochs-drm", fx->dir, fx->dir, fx->dir);
	if (system(p) != 0)
		return -1;
	put(fx->dir, "sys/devices/pci0000:00/0000:00:02.0/class", "0x030000\n");
	put(fx->dir, "sys/devices/pci0000:00/0000:00:02.0/numa_node", "-1\n");
	put(fx->dir, "sys/devices/pci0000:00/0000:00:02.0/vendor", "garbage\n");
	put(fx->dir, "sys/devices/pci0000:00/0000:00:02.0/driver_override", "(null)\n");
	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices/0000:00:02.0", fx->dir);
	if (symlink("../../../devices/pci0000:00/0000:00:02.0", p) < 0)
		return -1;
	/* An absolute link, as a careless fixture or a hostile tree might hold:
	 * it must resolve inside the root, not on the real host. */
	snprintf(p, sizeof(p), "%s/sys/devices/pci0000:00/0000:00:02.0/driver", fx->dir);
	if (symlink("/sys/bus/pci/drivers/bochs-drm", p) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/escape", fx->dir);
	if (symlink("/etc/hostname", p) < 0)
		return -1;
	if (gp_sysfs_open(fx->dir, &fx->sys) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	gp_sysfs_close(fx->sys);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static void test_read(void **state)
{
	struct fx *fx = *state;
	char buf[64];
	uint64_t v;
	int i;

	assert_int_equal(gp_sysfs_read_str(fx->sys, "/sys/bus/pci/devices/0000:00:02.0/class",
					   buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0x030000");
	assert_int_equal(gp_sysfs_read_u64(fx->sys, "sys/bus/pci/devices/0000:00:02.0/class",
					   16, &v), 0);
	assert_int_equal(v, 0x030000);
	assert_int_equal(gp_sysfs_read_int(fx->sys, "/sys/bus/pci/devices/0000:00:02.0/numa_node",
					   &i), 0);
	assert_int_equal(i, -1);
	assert_int_equal(gp_sysfs_read_u64(fx->sys, "/sys/bus/pci/devices/0000:00:02.0/vendor",
					   16, &v), -EINVAL);
	assert_int_equal(gp_sysfs_read_str(fx->sys, "/sys/bus/pci/devices/0000:00:02.0/class",
					   buf, 4), -ENAMETOOLONG);
	assert_int_equal(gp_sysfs_read_str(fx->sys, "/sys/nope", buf, sizeof(buf)), -ENOENT);
}

static void test_links(void **state)
{
	struct fx *fx = *state;
	char buf[256];

	assert_int_equal(gp_sysfs_link_name(fx->sys,
		"/sys/bus/pci/devices/0000:00:02.0/driver", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "bochs-drm");
	assert_true(gp_sysfs_is_dir(fx->sys, "/sys/bus/pci/devices/0000:00:02.0/driver"));
	assert_int_equal(gp_sysfs_resolve(fx->sys, "/sys/bus/pci/devices/0000:00:02.0",
					  buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/sys/devices/pci0000:00/0000:00:02.0");
	/* The absolute link points at a path absent from the fake root. */
	assert_false(gp_sysfs_exists(fx->sys, "/escape"));
	assert_false(gp_sysfs_exists(fx->sys, "/../../etc/hostname"));
}

static void test_list_write(void **state)
{
	struct fx *fx = *state;
	struct gp_strv names = { 0 };
	char buf[64];

	assert_int_equal(gp_sysfs_list(fx->sys, "/sys/devices/pci0000:00/0000:00:02.0", &names), 0);
	assert_int_equal(names.n, 5);
	assert_string_equal(names.v[0], "class");
	assert_string_equal(names.v[4], "vendor");
	gp_strv_clear(&names);
	assert_int_equal(gp_sysfs_list(fx->sys, "/sys/none", &names), -ENOENT);
	assert_int_equal(gp_sysfs_write(fx->sys,
		"/sys/bus/pci/devices/0000:00:02.0/driver_override", "vfio-pci"), 0);
	assert_int_equal(gp_sysfs_read_str(fx->sys,
		"/sys/bus/pci/devices/0000:00:02.0/driver_override", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "vfio-pci");
	assert_int_equal(gp_sysfs_write(fx->sys, "/sys/none/x", "1"), -ENOENT);
}

/* A FIFO where an attribute should be must not block the survey. */
static void test_fifo(void **state)
{
	struct fx *fx = *state;
	char p[512], buf[16];
	size_t got;

	snprintf(p, sizeof(p), "%s/sys/devices/pci0000:00/0000:00:02.0/config", fx->dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(gp_sysfs_read_bin(fx->sys, "/sys/bus/pci/devices/0000:00:02.0/config",
					   buf, sizeof(buf), &got), -EINVAL);
	assert_int_equal(gp_sysfs_read_str(fx->sys, "/sys/bus/pci/devices/0000:00:02.0/config",
					   buf, sizeof(buf)), -EINVAL);
}

static void test_open_missing_root(void **state)
{
	struct gp_sysfs *sys = NULL;

	(void)state;
	assert_int_equal(gp_sysfs_open("/nonexistent/gpupass-root", &sys), -ENOENT);
	assert_null(sys);
	assert_int_equal(gp_sysfs_open("/etc/hostname", &sys), -ENOTDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
		cmocka_unit_test(test_open_missing_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
