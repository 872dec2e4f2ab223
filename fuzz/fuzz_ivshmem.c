/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: a guest's search for its ivshmem device (1af4:1110) in a fake
 * sysfs tree whose vendor and device files hold the fuzz input (split at
 * the first 0x00; the byte after it picks resource2's size), then the
 * server's nonce check on a region whose header is the input too. Nothing
 * may crash; a device is only accepted with exactly the right ids and a
 * power-of-two BAR within limits. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One tree for the whole run; each input rewrites its files. */
static char root[64];

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_ivshmem: cannot remove %s\n", root);
}

static void put(const char *name, const void *p, size_t n)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/0000:00:05.0/%s", root, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	if (n && write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
}

/* Does the header the input writes (from rest + 16, at most 4096 bytes,
 * over a zero-filled file) read as magic "GPIV", version 1, zero nonce? */
static bool header_matches(const uint8_t *rest, size_t rlen)
{
	static const uint8_t want[8 + GP_IVSHMEM_NONCE] = { 'G', 'P', 'I', 'V', 1 };
	uint8_t have[sizeof(want)] = { 0 };

	if (rlen > 16)
		memcpy(have, rest + 16, rlen - 16 < sizeof(have) ? rlen - 16 : sizeof(have));
	return memcmp(have, want, sizeof(want)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t vlen = nul ? (size_t)(nul - data) : size;
	const uint8_t *rest = nul ? nul + 1 : data + size;
	size_t rlen = (size_t)(data + size - rest);
	struct gp_ivshmem *iv = NULL;
	uint8_t nonce[GP_IVSHMEM_NONCE] = { 0 };
	char path[160];
	int fd, r;

	if (!root[0]) {
		snprintf(root, sizeof(root), "/tmp/gp-fuzz-ivshmem-XXXXXX");
		if (!mkdtemp(root))
			abort();
		snprintf(path, sizeof(path), "mkdir -p '%s/sys/bus/pci/devices/0000:00:05.0'", root);
		if (system(path) != 0)
			abort();
		atexit(cleanup);
	}
	put("vendor", data, vlen);
	put("device", rest, rlen > 16 ? 16 : rlen);
	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/0000:00:05.0/resource2", root);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	/* 0.5 to 4 MiB: some powers of two, some not. */
	if (ftruncate(fd, (off_t)((rlen ? rest[0] % 8 + 1 : 2) * (512u << 10))) < 0)
		abort();
	/* The header as a guest might have scribbled it. */
	if (rlen > 16 && pwrite(fd, rest + 16, rlen - 16 > 4096 ? 4096 : rlen - 16, 0) < 0)
		abort();
	close(fd);
	r = gp_ivshmem_guest_open(root, NULL, &iv);
	if (r == 0) {
		uint64_t s = gp_ivshmem_size(iv);

		/* Only a real ivshmem id and a sane BAR get here. */
		if ((s & (s - 1)) || s < GP_IVSHMEM_MIN)
			abort();
		/* The region's first bytes are what the input wrote there,
		 * then the zeros of the new file: the check must accept them
		 * exactly when they are magic, version 1 and the (all-zero)
		 * nonce. (It used to require 8 written bytes, but the zeros
		 * can complete a header: "GPIV\1" alone is a whole one.) */
		if ((gp_ivshmem_check(iv, nonce) == 0) != header_matches(rest, rlen))
			abort();
		gp_ivshmem_free(iv);
	}
	return 0;
}
