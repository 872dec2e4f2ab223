/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest table shared between the supervisor and the workers of
 * gpupass-pvd, and the hand-over of connections to a worker. Both cross a
 * process boundary, so the receiving side checks everything: a worker
 * maps the table only if size and magic are right and accepts only a
 * whole, well-formed hand-over carrying exactly one connected socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "table.h"
#include "transport/transport.h"

uint64_t pvd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int pvd_table_set_ivshmem(struct pvd_guest *g, const char *path)
{
	size_t len = path ? strlen(path) : 0;
	uint32_t seq;

	if (len >= PVD_IVSHMEM_MAX)
		return -ENAMETOOLONG;
	seq = __atomic_load_n(&g->ivshmem_seq, __ATOMIC_RELAXED);
	__atomic_store_n(&g->ivshmem_seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (size_t i = 0; i < PVD_IVSHMEM_MAX; i++)
		__atomic_store_n(&g->ivshmem[i], i < len ? path[i] : '\0', __ATOMIC_RELAXED);
	__atomic_store_n(&g->ivshmem_seq, seq + 2, __ATOMIC_RELEASE);
	return 0;
}

void pvd_table_get_ivshmem(const struct pvd_guest *g, char buf[PVD_IVSHMEM_MAX])
{
	for (;;) {
		uint32_t a = __atomic_load_n(&g->ivshmem_seq, __ATOMIC_ACQUIRE);

		if (a & 1u)
			continue;
		for (size_t i = 0; i < PVD_IVSHMEM_MAX; i++)
			buf[i] = __atomic_load_n(&g->ivshmem[i], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&g->ivshmem_seq, __ATOMIC_RELAXED) == a)
			break;
	}
	/* The table is shared with other processes: never trust its NUL. */
	buf[PVD_IVSHMEM_MAX - 1] = '\0';
}

int pvd_table_create(int *fd, struct pvd_table **out)
{
	struct pvd_table *t;
	int mfd, r;

	mfd = memfd_create("gpupass-pvd-guests", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return -errno;
	if (ftruncate(mfd, sizeof(*t)) < 0)
		goto err_close;
	/* Workers cannot resize it under the others. */
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto err_close;
	t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (t == MAP_FAILED)
		goto err_close;
	t->magic = PVD_TABLE_MAGIC;
	*fd = mfd;
	*out = t;
	return 0;

err_close:
	r = -errno;
	close(mfd);
	return r;
}

int pvd_table_map(int fd, struct pvd_table **out)
{
	struct pvd_table *t;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size != sizeof(*t))
		return -EINVAL;
	t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (t == MAP_FAILED)
		return -errno;
	if (t->magic != PVD_TABLE_MAGIC ||
	    __atomic_load_n(&t->n_guests, __ATOMIC_ACQUIRE) > PVD_MAX_GUESTS) {
		munmap(t, sizeof(*t));
		return -EINVAL;
	}
	*out = t;
	return 0;
}

void pvd_table_unmap(struct pvd_table *t)
{
	if (t)
		munmap(t, sizeof(*t));
}

void pvd_table_clear_usage(struct pvd_guest *g)
{
	/* The dead worker's objects went with its process; what it counted
	 * (and kernels it had in flight) must not hold the quota or the
	 * scheduler. Device time and calls stay: they were used. */
	__atomic_store_n(&g->mem_used, 0, __ATOMIC_RELAXED);
	for (unsigned k = 0; k < PVD_CHARGE_KINDS; k++)
		__atomic_store_n(&g->charged[k], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g->objects, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g->sessions, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g->since, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g->busy, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g->conns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g->received, 0, __ATOMIC_RELAXED);
	pvd_table_set_cmd(g, 0, "");
}

void pvd_table_set_cmd(struct pvd_guest *g, uint64_t start, const char *what)
{
	uint32_t seq = __atomic_load_n(&g->cmd_seq, __ATOMIC_RELAXED);
	size_t len = strnlen(what, PVD_CMD_WHAT_MAX - 1);

	__atomic_store_n(&g->cmd_seq, (seq | 1u) + 0u, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&g->cmd_start_ns, start, __ATOMIC_RELAXED);
	for (size_t i = 0; i < PVD_CMD_WHAT_MAX; i++)
		__atomic_store_n(&g->cmd_what[i], i < len ? what[i] : '\0', __ATOMIC_RELAXED);
	__atomic_store_n(&g->cmd_seq, (seq | 1u) + 1u, __ATOMIC_RELEASE);
}

uint64_t pvd_table_get_cmd(const struct pvd_guest *g, char what[PVD_CMD_WHAT_MAX])
{
	uint64_t start = 0;

	/* The writer is a worker, which a guest's native code may own: a
	 * counter kept odd must not hold the supervisor, so a few tries,
	 * then whatever was read. */
	for (int tries = 0; tries < 64; tries++) {
		uint32_t a = __atomic_load_n(&g->cmd_seq, __ATOMIC_ACQUIRE);

		start = __atomic_load_n(&g->cmd_start_ns, __ATOMIC_RELAXED);
		for (size_t i = 0; i < PVD_CMD_WHAT_MAX; i++)
			what[i] = __atomic_load_n(&g->cmd_what[i], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(a & 1u) && __atomic_load_n(&g->cmd_seq, __ATOMIC_RELAXED) == a)
			break;
	}
	what[PVD_CMD_WHAT_MAX - 1] = '\0';
	return start;
}

int pvd_handover_check(const void *buf, size_t len, int fd, uint32_t slot, uint64_t last_seq)
{
	struct pvd_handover h;
	struct stat st;
	int type = 0;
	socklen_t tl = sizeof(type);

	if (len != sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != PVD_HANDOVER_MAGIC || h.slot != slot || h.seq != last_seq + 1)
		return -EBADMSG;
	/* Only a connected stream socket is a guest's connection. */
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
		return -EBADF;
	return 0;
}

int pvd_handover_send(int chan, uint32_t slot, uint64_t seq, int fd)
{
	struct pvd_handover h = { .magic = PVD_HANDOVER_MAGIC, .slot = slot, .seq = seq };
	return gp_msg_send_fd(chan, &h, sizeof(h), fd);
}

int pvd_handover_recv(int chan, uint32_t slot, uint64_t *last_seq, int *fd)
{
	/* One byte more than a hand-over: a longer record is -EBADMSG. */
	uint8_t buf[sizeof(struct pvd_handover) + 1];
	int got = -1, r;
	ssize_t n = gp_msg_recv_fd(chan, buf, sizeof(buf), &got, MSG_DONTWAIT);

	if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR)
		return -EAGAIN;
	if (n < 0)
		return (int)n;
	r = pvd_handover_check(buf, (size_t)n, got, slot, *last_seq);
	if (r < 0) {
		if (got >= 0)
			close(got);
		return r;
	}
	*last_seq += 1;
	*fd = got;
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int pvd_worker_args_parse(int argc, char **argv, struct pvd_worker_args *a)
{
	uint64_t v;

	/* gpupass-pvd --worker SLOT PPID VERBOSE SPIN_NS SHARED DIR [DEVICE...] */
	memset(a, 0, sizeof(*a));
	if (argc < 8 || strcmp(argv[1], PVD_WORKER_ARG) != 0)
		return -EINVAL;
	if (parse_u64(argv[2], PVD_MAX_GUESTS - 1, &v) < 0)
		return -EINVAL;
	a->slot = (uint32_t)v;
	if (parse_u64(argv[3], INT_MAX, &v) < 0 || v < 1)
		return -EINVAL;
	a->ppid = (pid_t)v;
	if (parse_u64(argv[4], 2, &v) < 0)
		return -EINVAL;
	a->verbose = (int)v;
	if (parse_u64(argv[5], 1000000000ull, &v) < 0)
		return -EINVAL;
	a->spin_ns = v;
	if (parse_u64(argv[6], 1, &v) < 0)
		return -EINVAL;
	a->shared_ok = v == 1;
	a->dir = argv[7];
	if (a->dir[0] != '/' || strlen(a->dir) >= PATH_MAX)
		return -EINVAL;
	a->devices = argv + 8;
	a->n_devices = (size_t)(argc - 8);
	return 0;
}

