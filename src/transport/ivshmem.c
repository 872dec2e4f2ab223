/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A VM's bulk-data region: an ivshmem-plain PCI device (QEMU, vendor
 * 0x1af4 device 0x1110) whose BAR2 is a host file that gpupass-pvd maps
 * too. Commands stay on the VM's stream (virtio-serial); only the data of
 * big transfers goes through the region, so nothing waits on memory shared
 * across the VM boundary.
 *
 * Layout (both sides agree on nothing else):
 *
 *   0      header page: u32 magic "GPIV", u32 version, 32-byte nonce
 *   4096   data: the bulk region of the host-process channel, in the same
 *          two-halves use (offsets in WRITE/READ_BUFFER count from here)
 *
 * Proof that both sides see the same memory: the guest writes a fresh
 * random nonce into the header and sends it in its HELLO; the server reads
 * the header of the file its config names for that guest and uses the
 * region only when the two match. A guest may write anything anywhere at
 * any time: the server copies the header out before comparing, keeps the
 * size it measured itself, and checks every offset and length against it
 * on every use (src/pvd/session.c). One session at a time uses a region
 * (an exclusive flock on the server's open file description): a second
 * connection of the same guest falls back to inline data.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

#define IVS_MAGIC 0x56495047u /* "GPIV" */
#define IVS_VERSION 1u
/* QEMU's ivshmem device ids (docs/specs/ivshmem-spec.rst: "Red Hat,
 * Inc." vendor 0x1af4, device 0x1110). */
#define IVS_VENDOR 0x1af4u
#define IVS_DEVICE 0x1110u

struct ivs_hdr {
	uint32_t magic;
	uint32_t version;
	uint8_t nonce[GP_IVSHMEM_NONCE];
};

struct gp_ivshmem {
	int fd;
	uint8_t *map;
	uint64_t size; /* measured by us, never read from the region */
	char addr[64]; /* guest: PCI address; host: empty */
	int *busy;     /* host, opened from a shared descriptor: its in-use flag */
};

static bool size_ok(uint64_t size)
{
	return size >= GP_IVSHMEM_MIN && size <= GP_IVSHMEM_MAX && (size & (size - 1)) == 0;
}

static int map_fd(int fd, uint64_t size, struct gp_ivshmem **out)
{
	struct gp_ivshmem *iv = calloc(1, sizeof(*iv));

	if (!iv)
		return -ENOMEM;
	iv->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (iv->map == MAP_FAILED) {
		int r = -errno;

		free(iv);
		return r;
	}
	iv->fd = fd;
	iv->size = size;
	*out = iv;
	return 0;
}

/* Reads a small sysfs attribute ("0x1af4\n") as a number. */
static int read_hex(const char *dir, const char *name, unsigned *val)
{
	char p[700], buf[32], *end;
	unsigned long v;
	ssize_t n;
	int fd;

	if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, name) >= sizeof(p))
		return -ENAMETOOLONG;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	buf[n] = '\0';
	errno = 0;
	v = strtoul(buf, &end, 16);
	if (errno || end == buf || (*end && *end != '\n') || v > 0xffff)
		return -EINVAL;
	*val = (unsigned)v;
	return 0;
}

/* Maps BAR2 of the device at @dir (SYSROOT/sys/bus/pci/devices/ADDR). */
static int guest_map(const char *dir, const char *addr, struct gp_ivshmem **out)
{
	char p[700];
	struct stat st;
	int fd, r;

	if ((size_t)snprintf(p, sizeof(p), "%s/resource2", dir) >= sizeof(p))
		return -ENAMETOOLONG;
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* sysfs gives a resource file the size of its BAR. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !size_ok((uint64_t)st.st_size)) {
		r = -EINVAL;
		goto err_close_fd;
	}
	r = map_fd(fd, (uint64_t)st.st_size, out);
	if (r < 0)
		goto err_close_fd;
	snprintf((*out)->addr, sizeof((*out)->addr), "%s", addr);
	return 0;

err_close_fd:
	close(fd);
	return r;
}

int gp_ivshmem_guest_open(const char *sysroot, const char *want, struct gp_ivshmem **out)
{
	char dir[512], dev[600];
	struct dirent **ents = NULL;
	int n, r = -ENOENT;

	if (want && (!*want || strchr(want, '/') || strcmp(want, ".") == 0 ||
		     strcmp(want, "..") == 0 || strlen(want) >= 64))
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s/sys/bus/pci/devices", sysroot ? sysroot : "");
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0)
		return -ENOENT;
	for (int i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		unsigned v = 0, d = 0;

		if (r == -ENOENT && name[0] != '.' && strlen(name) < 64 &&
		    (!want || strcmp(want, name) == 0)) {
			snprintf(dev, sizeof(dev), "%s/%s", dir, name);
			if (read_hex(dev, "vendor", &v) == 0 && read_hex(dev, "device", &d) == 0 &&
			    v == IVS_VENDOR && d == IVS_DEVICE) {
				r = guest_map(dev, name, out);
				/* The first device that maps is ours; one that
				 * does not (no permission) is reported. */
				if (r < 0 && !want && r != -EACCES && r != -EPERM)
					r = -ENOENT;
			}
		}
		free(ents[i]);
	}
	free(ents);
	return r;
}

int gp_ivshmem_stamp(struct gp_ivshmem *iv, uint8_t nonce[GP_IVSHMEM_NONCE])
{
	struct ivs_hdr h = { .magic = IVS_MAGIC, .version = IVS_VERSION };
	size_t got = 0;

	while (got < sizeof(h.nonce)) {
		ssize_t n = getrandom(h.nonce + got, sizeof(h.nonce) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	memcpy(iv->map, &h, sizeof(h));
	/* The server reads it after our HELLO went through a system call
	 * (a full barrier); this one orders our own stores for the record. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	memcpy(nonce, h.nonce, sizeof(h.nonce));
	return 0;
}

int gp_ivshmem_host_open(const char *path, uint64_t size, struct gp_ivshmem **out)
{
	int fd;

	if (!path || !size_ok(size))
		return -EINVAL;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	return gp_ivshmem_host_open_fd(fd, size, NULL, out);
}

int gp_ivshmem_host_open_fd(int fd, uint64_t size, int *busy, struct gp_ivshmem **out)
{
	struct stat st;
	int r;

	if (!size_ok(size)) {
		r = -EINVAL;
		goto err_close_fd;
	}
	/* The file must be exactly what the guest sees as its BAR: a smaller
	 * file would make our mapping fault (SIGBUS) past its end. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = -EINVAL;
		goto err_close_fd;
	}
	if ((uint64_t)st.st_size != size) {
		r = -ERANGE;
		goto err_close_fd;
	}
	/* A descriptor shared by the caller's sessions (dup of one open file):
	 * flock() cannot tell them apart, the flag does; the lock still keeps
	 * other processes (another worker) out. */
	if (busy && __atomic_exchange_n(busy, 1, __ATOMIC_ACQ_REL)) {
		r = -EBUSY;
		goto err_close_fd;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto err_unbusy;
	}
	r = map_fd(fd, size, out);
	if (r < 0)
		goto err_unbusy;
	(*out)->busy = busy;
	return 0;

err_unbusy:
	if (busy) {
		flock(fd, LOCK_UN); /* the open file stays open elsewhere */
		__atomic_store_n(busy, 0, __ATOMIC_RELEASE);
	}
err_close_fd:
	close(fd); /* drops the lock too, unless the file is open elsewhere */
	return r;
}

int gp_ivshmem_check(const struct gp_ivshmem *iv, const uint8_t nonce[GP_IVSHMEM_NONCE])
{
	struct ivs_hdr h;

	/* Copied out once: the guest may be rewriting it as we look. */
	memcpy(&h, iv->map, sizeof(h));
	if (h.magic != IVS_MAGIC || h.version != IVS_VERSION ||
	    memcmp(h.nonce, nonce, sizeof(h.nonce)) != 0)
		return -EKEYREJECTED;
	return 0;
}

void *gp_ivshmem_data(const struct gp_ivshmem *iv, uint64_t *size)
{
	if (size)
		*size = iv->size - GP_IVSHMEM_HDR;
	return iv->map + GP_IVSHMEM_HDR;
}

uint64_t gp_ivshmem_size(const struct gp_ivshmem *iv)
{
	return iv->size;
}

const char *gp_ivshmem_addr(const struct gp_ivshmem *iv)
{
	return iv->addr;
}

void gp_ivshmem_free(struct gp_ivshmem *iv)
{
	if (!iv)
		return;
	munmap(iv->map, iv->size);
	if (iv->busy) {
		/* The open file outlives this descriptor: unlock it by hand. */
		flock(iv->fd, LOCK_UN);
		__atomic_store_n(iv->busy, 0, __ATOMIC_RELEASE);
	}
	close(iv->fd);
	free(iv);
}
