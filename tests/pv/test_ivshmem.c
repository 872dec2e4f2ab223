/* SPDX-License-Identifier: Apache-2.0 */
/* The ivshmem region (src/transport/ivshmem.c): finding a 1af4:1110 device
 * in a fake sysfs tree (garbage attribute files, odd BAR sizes, missing
 * files), the nonce proof between the guest's and the server's mappings,
 * and the server's refusals (size mismatch, a second session). */
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

#include "transport/transport.h"

static char root[256];

static void put(const char *rel, const char *text)
{
	char p[1024];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void sized(const char *rel, off_t size)
{
	char p[1024];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

/* A device directory with vendor, device and (size > 0) a resource2. */
static void device(const char *addr, const char *vendor, const char *dev, off_t size)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices/%s", root, addr);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "sys/bus/pci/devices/%s/vendor", addr);
	put(p, vendor);
	snprintf(p, sizeof(p), "sys/bus/pci/devices/%s/device", addr);
	put(p, dev);
	if (size > 0) {
		snprintf(p, sizeof(p), "sys/bus/pci/devices/%s/resource2", addr);
		sized(p, size);
	}
}

static int setup(void **state)
{
	char p[512];

	(void)state;
	snprintf(root, sizeof(root), "/tmp/gp-ivshmem-XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(p, sizeof(p), "%s/sys", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys/bus", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys/bus/pci", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices", root);
	mkdir(p, 0755);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_guest_find(void **state)
{
	struct gp_ivshmem *iv = NULL;
	uint64_t size;

	(void)state;
	assert_int_equal(gp_ivshmem_guest_open(root, NULL, &iv), -ENOENT);
	assert_int_equal(gp_ivshmem_guest_open("/nonexistent", NULL, &iv), -ENOENT);
	/* look-alikes and garbage, all skipped */
	device("0000:00:01.0", "0x1234\n", "0x1111\n", 1 << 20);     /* a VGA */
	device("0000:00:02.0", "0x1af4\n", "0x1000\n", 1 << 20);     /* virtio-net */
	device("0000:00:03.0", "0x1af4garbage\n", "0x1110\n", 1 << 20);
	device("0000:00:03.1", "", "0x1110\n", 1 << 20);
	device("0000:00:03.2", "0x1af4\n", "0x11100\n", 1 << 20);    /* above 0xffff */
	device("0000:00:03.3", "0x1af4\n", "\n", 1 << 20);
	device("0000:00:04.0", "0x1af4\n", "0x1110\n", 0);           /* no resource2 */
	device("0000:00:04.1", "0x1af4\n", "0x1110\n", 3 << 20);     /* not a power of two */
	device("0000:00:04.2", "0x1af4\n", "0x1110\n", 64 << 10);    /* too small */
	assert_int_equal(gp_ivshmem_guest_open(root, NULL, &iv), -ENOENT);
	assert_null(iv);
	/* a named device that is not usable: the reason, not -ENOENT */
	assert_int_equal(gp_ivshmem_guest_open(root, "0000:00:04.1", &iv), -EINVAL);
	assert_int_equal(gp_ivshmem_guest_open(root, "../../x", &iv), -EINVAL);
	assert_int_equal(gp_ivshmem_guest_open(root, "", &iv), -EINVAL);
	assert_int_equal(gp_ivshmem_guest_open(root, "..", &iv), -EINVAL);
	/* the real one, after the broken ones in address order */
	device("0000:00:05.0", "0x1af4\n", "0x1110\n", 2 << 20);
	device("0000:00:06.0", "0x1af4\n", "0x1110\n", 4 << 20);
	assert_int_equal(gp_ivshmem_guest_open(root, NULL, &iv), 0);
	assert_string_equal(gp_ivshmem_addr(iv), "0000:00:05.0");
	assert_int_equal(gp_ivshmem_size(iv), 2 << 20);
	assert_non_null(gp_ivshmem_data(iv, &size));
	assert_int_equal(size, (2 << 20) - GP_IVSHMEM_HDR);
	gp_ivshmem_free(iv);
	assert_int_equal(gp_ivshmem_guest_open(root, "0000:00:06.0", &iv), 0);
	assert_int_equal(gp_ivshmem_size(iv), 4 << 20);
	gp_ivshmem_free(iv);
	gp_ivshmem_free(NULL);
}

static void test_nonce(void **state)
{
	struct gp_ivshmem *g = NULL, *h = NULL, *h2 = NULL;
	uint8_t nonce[GP_IVSHMEM_NONCE], other[GP_IVSHMEM_NONCE];
	char path[512];
	uint64_t gs, hs;
	uint8_t *gd, *hd;

	(void)state;
	device("0000:00:05.0", "0x1af4\n", "0x1110\n", 1 << 20);
	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/0000:00:05.0/resource2", root);
	assert_int_equal(gp_ivshmem_guest_open(root, NULL, &g), 0);
	/* the server refuses what is not exactly the guest's region */
	assert_int_equal(gp_ivshmem_host_open(path, 2 << 20, &h), -ERANGE);
	assert_int_equal(gp_ivshmem_host_open(path, 3 << 20, &h), -EINVAL);
	assert_int_equal(gp_ivshmem_host_open(root, 1 << 20, &h), -EISDIR); /* a directory */
	assert_int_equal(gp_ivshmem_host_open("/nonexistent/x", 1 << 20, &h), -ENOENT);
	assert_int_equal(gp_ivshmem_host_open(NULL, 1 << 20, &h), -EINVAL);
	assert_int_equal(gp_ivshmem_host_open(path, 1 << 20, &h), 0);
	/* one session at a time */
	assert_int_equal(gp_ivshmem_host_open(path, 1 << 20, &h2), -EBUSY);
	/* before the guest stamps it: nothing to match */
	memset(other, 0, sizeof(other));
	assert_int_equal(gp_ivshmem_check(h, other), -EKEYREJECTED);
	assert_int_equal(gp_ivshmem_stamp(g, nonce), 0);
	assert_int_equal(gp_ivshmem_check(h, nonce), 0);
	assert_int_equal(gp_ivshmem_stamp(g, other), 0);
	assert_memory_not_equal(nonce, other, sizeof(nonce)); /* fresh each time */
	assert_int_equal(gp_ivshmem_check(h, nonce), -EKEYREJECTED);
	assert_int_equal(gp_ivshmem_check(h, other), 0);
	/* the same memory: data written by one side is seen by the other */
	gd = gp_ivshmem_data(g, &gs);
	hd = gp_ivshmem_data(h, &hs);
	assert_int_equal(gs, hs);
	memset(gd + gs - 100, 0x5a, 100);
	assert_int_equal(hd[hs - 1], 0x5a);
	/* a guest that scribbles over the header: no match, no crash */
	memset(gd - GP_IVSHMEM_HDR, 0xff, GP_IVSHMEM_HDR);
	assert_int_equal(gp_ivshmem_check(h, other), -EKEYREJECTED);
	gp_ivshmem_free(h);
	/* the lock went with it */
	assert_int_equal(gp_ivshmem_host_open(path, 1 << 20, &h2), 0);
	gp_ivshmem_free(h2);
	gp_ivshmem_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_guest_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nonce, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
