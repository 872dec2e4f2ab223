/* SPDX-License-Identifier: Apache-2.0 */
/* The [guest NAME] editor of gpupass-pvd's config: other sections and
 * lines stay byte for byte, odd spacing and look-alike names, garbage. */
#include <errno.h>
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

#include "host/pvconf.h"

static char path[64];

static void put_file(const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static char *get_file(void)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	int fd;

	(void)state;
	strcpy(path, "/tmp/gp-test-pvconf-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void test_put_remove(void **state)
{
	static const char other[] = "; comment\n[server]\nlisten = unix:/x\n\n"
				    "[guest p10]\nsocket = /p10\n";

	(void)state;
	/* No file: created with the section alone. */
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), 0);
	assert_int_equal(gp_pvconf_remove_guest(path, "p1"), 0);
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s/p1.sock", 0, 1, NULL), 0);
	assert_string_equal(get_file(), "[guest p1]\nsocket = /s/p1.sock\nweight = 1\n");
	assert_int_equal(gp_pvconf_remove_guest(path, "p1"), 0);
	/* Not an empty file, which gpupass-pvd would take for its defaults
	 * (every local user a guest): a config with no guests. */
	assert_string_equal(get_file(), "# no guests: gpupass vm create adds [guest NAME] sections "
			    "here\n[server]\n");
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), 0);
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s/p1.sock", 0, 1, NULL), 0);
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), 1);
	assert_int_equal(gp_pvconf_remove_guest(path, "p1"), 0);

	/* Others intact; a look-alike name (p10) is not ours. */
	put_file(other, strlen(other));
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s/p1.sock", 2ull << 30, 7, NULL), 0);
	assert_string_equal(get_file(), "; comment\n[server]\nlisten = unix:/x\n\n"
			    "[guest p10]\nsocket = /p10\n\n"
			    "[guest p1]\nsocket = /s/p1.sock\nmemory_max = 2147483648\nweight = 7\n");
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), 1);
	assert_int_equal(gp_pvconf_has_guest(path, "p"), 0);
	/* Replaced, not duplicated. */
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s/p1.sock", 0, 9, NULL), 0);
	assert_string_equal(get_file(), "; comment\n[server]\nlisten = unix:/x\n\n"
			    "[guest p10]\nsocket = /p10\n\n"
			    "[guest p1]\nsocket = /s/p1.sock\nweight = 9\n");
	assert_int_equal(gp_pvconf_remove_guest(path, "p1"), 0);
	assert_string_equal(get_file(), "; comment\n[server]\nlisten = unix:/x\n\n"
			    "[guest p10]\nsocket = /p10\n\n");
}

/* The ivshmem region's file goes into the section as `ivshmem = FILE`
 * (the key gpupass-pvd reads), last; "" or NULL leave it out. */
static void test_ivshmem(void **state)
{
	(void)state;
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s/p1.sock", 1ull << 30, 2,
					     "/s/p1.shm"), 0);
	assert_string_equal(get_file(), "[guest p1]\nsocket = /s/p1.sock\nmemory_max = 1073741824\n"
			    "weight = 2\nivshmem = /s/p1.shm\n");
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s/p1.sock", 0, 2, ""), 0);
	assert_string_equal(get_file(), "[guest p1]\nsocket = /s/p1.sock\nweight = 2\n");
}

/* The region's file: sparse, of the size asked, resized in place, 0660;
 * never through a symlink, never a directory; size 0 refused. */
static void test_shm_file(void **state)
{
	char shm[128], link[128];
	struct stat sb;

	(void)state;
	snprintf(shm, sizeof(shm), "%s.shm", path);
	snprintf(link, sizeof(link), "%s.lnk", path);
	assert_int_equal(gp_pv_shm_create(shm, 64ull << 20), 0);
	assert_int_equal(stat(shm, &sb), 0);
	assert_int_equal(sb.st_size, 64ll << 20);
	assert_true(sb.st_blocks * 512 < (1 << 20)); /* sparse */
	assert_int_equal(sb.st_mode & 07777, 0660);
	assert_int_equal(gp_pv_shm_create(shm, 2ull << 20), 0);
	assert_int_equal(stat(shm, &sb), 0);
	assert_int_equal(sb.st_size, 2ll << 20);
	assert_int_equal(gp_pv_shm_create(shm, 0), -EINVAL);
	assert_int_equal(symlink(shm, link), 0);
	assert_int_equal(gp_pv_shm_create(link, 1ull << 20), -ELOOP);
	assert_int_equal(stat(shm, &sb), 0);
	assert_int_equal(sb.st_size, 2ll << 20);
	assert_true(gp_pv_shm_create("/tmp", 1ull << 20) < 0);
	unlink(link);
	unlink(shm);
}

static void test_spacing_and_garbage(void **state)
{
	static const char odd[] = "[  guest\t p1 ]\nsocket=/old\n[guest p2]\nweight=2";
	static const char junk[] = "\x01\xff[\n[guest\n]]]\n[guest p1\nx\0y\n";

	(void)state;
	/* inih trims the section name: "[  guest\t p1 ]" is p1's. A last line
	 * without '\n' gets one. */
	put_file(odd, strlen(odd));
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), 1);
	assert_int_equal(gp_pvconf_remove_guest(path, "p1"), 0);
	assert_string_equal(get_file(), "[guest p2]\nweight=2\n");
	/* Garbage: no crash, a section never found in it; a NUL byte (not
	 * text) makes the file off limits, without it put works. */
	put_file(junk, sizeof(junk) - 1);
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), -EINVAL);
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s", 0, 1, NULL), -EINVAL);
	assert_memory_equal(get_file(), junk, 26);
	put_file(junk, 26);
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), 0);
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s", 0, 1, NULL), 0);
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), 1);
	assert_int_equal(gp_pvconf_remove_guest(path, "p1"), 0);
	assert_int_equal(gp_pvconf_has_guest(path, "p1"), 0);
	/* Bad values are refused and change nothing. */
	put_file(odd, strlen(odd));
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s\nweight = 1000", 0, 1, NULL), -EINVAL);
	assert_int_equal(gp_pvconf_put_guest(path, "p]1", "/s", 0, 1, NULL), -EINVAL);
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s", 0, 0, NULL), -EINVAL);
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s", 0, 1001, NULL), -EINVAL);
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s", 0, 1, "/r.shm\nweight = 9"), -EINVAL);
	assert_int_equal(gp_pvconf_put_guest(path, "p1", "/s", 0, 1, "/r.shm;x"), -EINVAL);
	assert_string_equal(get_file(), odd);
	/* A directory where the file should be: an error, not a crash. */
	assert_true(gp_pvconf_put_guest("/", "p1", "/s", 0, 1, NULL) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spacing_and_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ivshmem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shm_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
