/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared-memory channel: one memfd made by the client and passed to
 * the server over the unix socket (SCM_RIGHTS). Layout, all offsets fixed:
 *
 *   0      header page: magic, version, ring size, bulk size, then the
 *          control block of each ring (head, tail, futex words)
 *   4096   request ring (client -> server), GP_SHM_RING_SIZE bytes
 *   +ring  reply ring (server -> client), GP_SHM_RING_SIZE bytes
 *   +ring  bulk region (buffer data), size chosen by the client
 *
 * Each ring is single-producer single-consumer; head and tail count bytes
 * and only grow. A message is the 24-byte header then its payload, padded
 * to 8 bytes. A waiter spins for a short while (a shared-memory round trip
 * costs well under a microsecond) and then sleeps on a futex word that the
 * producer bumps, waking it only when the waiter said it sleeps, so an
 * idle peer costs no CPU and a busy one no system call.
 *
 * The server treats everything in the mapping as hostile: sizes are read
 * once at attach time and kept privately, head/tail are range-checked,
 * headers are copied out before they are checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

#define SHM_MAGIC 0x48535047u /* "GPSH" */
#define SHM_VERSION 1u
#define SHM_HDR_PAGE 4096u

/* The control block of one ring, in shared memory. Producer and consumer
 * fields sit on their own cache lines. */
struct ring_ctl {
	uint64_t head; /* producer: bytes published */
	uint8_t pad0[56];
	uint64_t tail; /* consumer: bytes consumed */
	uint8_t pad1[56];
	uint32_t seq;           /* futex: bumped by the producer */
	uint32_t waiting;       /* consumer sleeps (or is about to) */
	uint32_t space_seq;     /* futex: bumped by the consumer */
	uint32_t space_waiting; /* producer sleeps waiting for room */
	uint8_t pad2[112];
};
_Static_assert(sizeof(struct ring_ctl) == 256, "ring control block is 256 bytes");

struct shm_hdr {
	uint32_t magic;
	uint32_t version;
	uint64_t ring_size;
	uint64_t bulk_size;
	uint8_t pad[232];
	struct ring_ctl req;
	struct ring_ctl rsp;
};
_Static_assert(sizeof(struct shm_hdr) <= SHM_HDR_PAGE, "header fits its page");

struct gp_shm {
	int fd;
	uint8_t *map;
	uint64_t size;
	uint64_t ring_size; /* private copies, never re-read from the map */
	uint64_t bulk_size;
};

static uint64_t total_size(uint64_t ring, uint64_t bulk)
{
	return SHM_HDR_PAGE + 2 * ring + bulk;
}

static int shm_map(int fd, uint64_t size, struct gp_shm **out)
{
	struct gp_shm *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s->map == MAP_FAILED) {
		int r = -errno;

		free(s);
		return r;
	}
	s->fd = fd;
	s->size = size;
	*out = s;
	return 0;
}

int gp_shm_create(uint64_t bulk_size, struct gp_shm **out)
{
	uint64_t size = total_size(GP_SHM_RING_SIZE, bulk_size);
	struct shm_hdr *h;
	struct gp_shm *s;
	int fd, r;

	if (bulk_size > GP_SHM_MAX_BULK || bulk_size % 4096)
		return -EINVAL;
	fd = memfd_create("gpupass-pv", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto err_close_fd;
	}
	/* The size can no longer change under the server's mapping. */
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	r = shm_map(fd, size, &s);
	if (r < 0)
		goto err_close_fd;
	h = (struct shm_hdr *)s->map;
	h->magic = SHM_MAGIC;
	h->version = SHM_VERSION;
	h->ring_size = GP_SHM_RING_SIZE;
	h->bulk_size = bulk_size;
	s->ring_size = GP_SHM_RING_SIZE;
	s->bulk_size = bulk_size;
	*out = s;
	return 0;

err_close_fd:
	close(fd);
	return r;
}

int gp_shm_attach(int fd, struct gp_shm **out)
{
	struct shm_hdr hdr;
	struct gp_shm *s;
	struct stat st;
	int seals, r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)SHM_HDR_PAGE)
		return -EINVAL;
	/* Only a memfd sealed against shrinking is safe to map: otherwise the
	 * client could truncate it and make the server fault (SIGBUS). */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		return -EINVAL;
	if (pread(fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		return -EINVAL;
	if (hdr.magic != SHM_MAGIC || hdr.version != SHM_VERSION ||
	    hdr.ring_size != GP_SHM_RING_SIZE || hdr.bulk_size > GP_SHM_MAX_BULK ||
	    hdr.bulk_size % 4096 ||
	    (uint64_t)st.st_size != total_size(hdr.ring_size, hdr.bulk_size))
		return -EINVAL;
	r = shm_map(fd, (uint64_t)st.st_size, &s);
	if (r < 0)
		return r;
	s->ring_size = hdr.ring_size;
	s->bulk_size = hdr.bulk_size;
	*out = s;
	return 0;
}

void gp_shm_free(struct gp_shm *shm)
{
	if (!shm)
		return;
	munmap(shm->map, shm->size);
	close(shm->fd);
	free(shm);
}

int gp_shm_fd(const struct gp_shm *shm) { return shm->fd; }
uint64_t gp_shm_size(const struct gp_shm *shm) { return shm->size; }

void *gp_shm_bulk(const struct gp_shm *shm, uint64_t *size)
{
	if (size)
		*size = shm->bulk_size;
	return shm->map + SHM_HDR_PAGE + 2 * shm->ring_size;
}

/* ---- the ring transport ---- */

struct ring_transport {
	struct gp_transport base;
	struct gp_shm *shm;
	struct ring_ctl *tx, *rx;
	uint8_t *tx_data, *rx_data;
	uint64_t size;
	uint64_t tx_head; /* private copies of our own counters */
	uint64_t rx_tail;
	int alive_fd;
	uint64_t spin_ns;
	bool patient; /* the next recv sleeps without spinning first */
	int intr;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void futex_wait(uint32_t *word, uint32_t val, int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	/* Not FUTEX_PRIVATE: the word is shared with another process. */
	syscall(SYS_futex, word, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void futex_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static bool peer_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	if (fd < 0)
		return false;
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL));
}

enum wait_what { WAIT_DATA, WAIT_SPACE };

/* Bytes readable (WAIT_DATA) or writable (WAIT_SPACE); UINT64_MAX if the
 * peer's counter is out of range, which only a broken peer can cause. */
static uint64_t ring_level(struct ring_transport *t, enum wait_what what)
{
	uint64_t used;

	if (what == WAIT_DATA) {
		used = __atomic_load_n(&t->rx->head, __ATOMIC_ACQUIRE) - t->rx_tail;
		return used > t->size ? UINT64_MAX : used;
	}
	used = t->tx_head - __atomic_load_n(&t->tx->tail, __ATOMIC_ACQUIRE);
	return used > t->size ? UINT64_MAX : t->size - used;
}

static int ring_wait(struct ring_transport *t, enum wait_what what, uint64_t need,
		     int timeout_ms, uint64_t spin_ns)
{
	struct ring_ctl *c = what == WAIT_DATA ? t->rx : t->tx;
	uint32_t *seq = what == WAIT_DATA ? &c->seq : &c->space_seq;
	uint32_t *waiting = what == WAIT_DATA ? &c->waiting : &c->space_waiting;
	uint64_t start = now_ns(), lvl;
	unsigned spins = 0;

	for (;;) {
		lvl = ring_level(t, what);
		if (lvl == UINT64_MAX)
			return -EBADMSG;
		if (lvl >= need)
			return 0;
		if (__atomic_load_n(&t->intr, __ATOMIC_ACQUIRE))
			return -EINTR;
		if (timeout_ms == 0)
			return -ETIMEDOUT;
		if ((++spins & 63) != 0 || now_ns() - start < spin_ns) {
			/* On a busy host the peer (or the device's threads) may
			 * need this core: give it up now and then while spinning. */
			if ((spins & 1023) == 0)
				sched_yield();
			else
				cpu_relax();
			continue;
		}
		uint32_t s = __atomic_load_n(seq, __ATOMIC_SEQ_CST);

		__atomic_store_n(waiting, 1, __ATOMIC_SEQ_CST);
		lvl = ring_level(t, what);
		if (lvl == UINT64_MAX || lvl >= need) {
			__atomic_store_n(waiting, 0, __ATOMIC_SEQ_CST);
			continue;
		}
		futex_wait(seq, s, 100);
		__atomic_store_n(waiting, 0, __ATOMIC_SEQ_CST);
		if (peer_gone(t->alive_fd))
			return -EPIPE;
		if (timeout_ms >= 0 && now_ns() - start >= (uint64_t)timeout_ms * 1000000ull)
			return -ETIMEDOUT;
	}
}

static void ring_copy_in(struct ring_transport *t, uint64_t pos, const void *src, size_t n)
{
	uint64_t off = pos % t->size, first = t->size - off;

	if (n <= first) {
		memcpy(t->tx_data + off, src, n);
	} else {
		memcpy(t->tx_data + off, src, first);
		memcpy(t->tx_data, (const uint8_t *)src + first, n - first);
	}
}

static void ring_copy_out(struct ring_transport *t, uint64_t pos, void *dst, size_t n)
{
	uint64_t off = pos % t->size, first = t->size - off;

	if (n <= first) {
		memcpy(dst, t->rx_data + off, n);
	} else {
		memcpy(dst, t->rx_data + off, first);
		memcpy((uint8_t *)dst + first, t->rx_data, n - first);
	}
}

static uint64_t pad8(uint64_t n) { return (n + 7) & ~7ull; }

static int ring_send(struct gp_transport *base, const struct gp_proto_hdr *h,
		     const void *payload, size_t len, int fd)
{
	struct ring_transport *t = (struct ring_transport *)base;
	struct gp_proto_hdr hh = *h;
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	uint64_t total = pad8(GP_PROTO_HDR_SIZE + len);
	int r;

	if (fd >= 0)
		return -EOPNOTSUPP; /* descriptors travel on the socket only */
	if (len > GP_PROTO_MAX_PAYLOAD || total > t->size)
		return -EMSGSIZE;
	r = ring_wait(t, WAIT_SPACE, total, -1, t->spin_ns);
	if (r < 0)
		return r;
	hh.magic = GP_PROTO_MAGIC;
	hh.version = GP_PROTO_VERSION;
	hh.len = (uint32_t)len;
	hh.reserved = 0;
	gp_proto_hdr_pack(&hh, hdr);
	ring_copy_in(t, t->tx_head, hdr, sizeof(hdr));
	if (len)
		ring_copy_in(t, t->tx_head + GP_PROTO_HDR_SIZE, payload, len);
	t->tx_head += total;
	__atomic_store_n(&t->tx->head, t->tx_head, __ATOMIC_RELEASE);
	__atomic_add_fetch(&t->tx->seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&t->tx->waiting, __ATOMIC_SEQ_CST))
		futex_wake(&t->tx->seq);
	return 0;
}

static int ring_recv(struct gp_transport *base, struct gp_proto_hdr *h, void *buf,
		     size_t cap, int *fd, int timeout_ms)
{
	struct ring_transport *t = (struct ring_transport *)base;
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	uint64_t avail, total;
	int r;

	if (fd)
		*fd = -1;
	r = ring_wait(t, WAIT_DATA, GP_PROTO_HDR_SIZE, timeout_ms, t->patient ? 0 : t->spin_ns);
	t->patient = false;
	if (r < 0)
		return r;
	avail = ring_level(t, WAIT_DATA);
	ring_copy_out(t, t->rx_tail, hdr, sizeof(hdr));
	r = gp_proto_hdr_unpack(hdr, sizeof(hdr), cap, h);
	if (r < 0)
		return r;
	total = pad8(GP_PROTO_HDR_SIZE + (uint64_t)h->len);
	/* A producer publishes whole messages: less than that is corruption. */
	if (avail < total)
		return -EBADMSG;
	if (h->len)
		ring_copy_out(t, t->rx_tail + GP_PROTO_HDR_SIZE, buf, h->len);
	t->rx_tail += total;
	__atomic_store_n(&t->rx->tail, t->rx_tail, __ATOMIC_RELEASE);
	__atomic_add_fetch(&t->rx->space_seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&t->rx->space_waiting, __ATOMIC_SEQ_CST))
		futex_wake(&t->rx->space_seq);
	return 0;
}

static void ring_interrupt(struct gp_transport *base)
{
	struct ring_transport *t = (struct ring_transport *)base;

	__atomic_store_n(&t->intr, 1, __ATOMIC_RELEASE);
	/* Wake ourselves wherever we sleep; bumping the words makes a racing
	 * futex_wait return at once. */
	__atomic_add_fetch(&t->rx->seq, 1, __ATOMIC_SEQ_CST);
	futex_wake(&t->rx->seq);
	__atomic_add_fetch(&t->tx->space_seq, 1, __ATOMIC_SEQ_CST);
	futex_wake(&t->tx->space_seq);
}

static void ring_free(struct gp_transport *base)
{
	free(base);
}

static void ring_patient(struct gp_transport *base)
{
	((struct ring_transport *)base)->patient = true;
}

static const struct gp_transport_ops ring_ops = {
	.name = "shm-ring",
	.send = ring_send,
	.recv = ring_recv,
	.interrupt = ring_interrupt,
	.patient = ring_patient,
	.free = ring_free,
};

int gp_transport_ring_new(struct gp_shm *shm, enum gp_ring_side side, int alive_fd,
			  uint64_t spin_ns, struct gp_transport **out)
{
	struct shm_hdr *h = (struct shm_hdr *)shm->map;
	uint8_t *req = shm->map + SHM_HDR_PAGE, *rsp = req + shm->ring_size;
	struct ring_transport *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->base.ops = &ring_ops;
	t->shm = shm;
	t->size = shm->ring_size;
	t->alive_fd = alive_fd;
	t->spin_ns = spin_ns;
	if (side == GP_RING_CLIENT) {
		t->tx = &h->req;
		t->tx_data = req;
		t->rx = &h->rsp;
		t->rx_data = rsp;
	} else {
		t->tx = &h->rsp;
		t->tx_data = rsp;
		t->rx = &h->req;
		t->rx_data = req;
	}
	/* Start from where the rings are now (both 0 on a fresh region). */
	t->tx_head = __atomic_load_n(&t->tx->head, __ATOMIC_ACQUIRE);
	t->rx_tail = __atomic_load_n(&t->rx->tail, __ATOMIC_ACQUIRE);
	*out = &t->base;
	return 0;
}
