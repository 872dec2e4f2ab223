/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client.h"
#include "transport/channel.h"
#include "transport/transport.h"

#define DEFAULT_SERVER "unix:/run/gpupass/pv.sock"
/* The virtio-serial port gpupass gives each PV VM. */
#define DEFAULT_PORT "org.gpupass.pv.0"
/* Bulk region: two halves, so the server copies one while we fill the other. */
#define BULK_SIZE (32ull << 20)
/* Ids the ICD gives to objects it creates start here (below: the server's). */
#define FIRST_ID 0x10000ull

struct gp_icd_conn {
	/* Held from a request to its reply. Threads that only poll for
	 * completion (gp_icd_call_sync_yield) take it only when no other
	 * thread wants it: @want counts the others, and pollers sleep on it
	 * (a futex) while it is not 0. */
	pthread_mutex_t lock;
	uint32_t want;    /* atomic: threads on their way into @lock for a call */
	uint32_t yielders; /* atomic: pollers asleep on @want */
	struct gp_transport *sock;
	struct gp_transport *ring;
	struct gp_shm *shm;
	int fd;
	char *server;
	uint32_t ndev;
	uint64_t next_id; /* atomic */
	uint32_t next_req;
	int dead; /* atomic: the server went away */
	uint64_t probe;
	bool direct;
	bool shared;
	bool stream; /* no memfd: every call and all data inline on the stream */
	bool serial; /* a virtio-serial port */
	uint8_t *rx;
	struct gp_ivshmem *ivs; /* stream mode: the VM's region, once the server took it */
	uint8_t nonce[GP_IVSHMEM_NONCE];
};

static void conn_dead(struct gp_icd_conn *c, int r)
{
	if (__atomic_exchange_n(&c->dead, 1, __ATOMIC_ACQ_REL) == 0)
		fprintf(stderr, "gpupass: lost gpupass-pvd at %s (%s); OpenCL calls now fail "
			"with CL_DEVICE_NOT_AVAILABLE / CL_OUT_OF_RESOURCES: restart the program "
			"once the server is back\n", c->server, strerror(-r));
}

/* Under Yama's ptrace_scope=1 only a declared process may read our
 * memory: declare the server (SO_PEERCRED of our socket). */
static void allow_server_reads(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.pid > 0)
		prctl(PR_SET_PTRACER, (unsigned long)cr.pid, 0, 0, 0);
}

static const char *prog_name(void)
{
	extern char *program_invocation_short_name;

	return program_invocation_short_name;
}

/* Where to connect: GPUPASS_SERVER, else the virtio-serial port of a VM
 * when there is one, else the local default. */
static int pick_server(const char *addr, char **out)
{
	char path[512];

	if (addr && *addr) {
		*out = strdup(addr);
	} else if (gp_serial_find(getenv("GPUPASS_SYSROOT"), DEFAULT_PORT, path, sizeof(path)) == 0) {
		*out = strdup("serial:" DEFAULT_PORT);
	} else {
		*out = strdup(DEFAULT_SERVER);
	}
	return *out ? 0 : -ENOMEM;
}

/* Opens the channel (any kind, transport/channel.h): @c->fd and @c->sock;
 * @c->stream for channels that carry everything inline (no memfd). */
static int open_channel(struct gp_icd_conn *c)
{
	const char *tls = getenv("GPUPASS_TLS");
	struct gp_dial_opts o = {
		.sysroot = getenv("GPUPASS_SYSROOT"),
		.tls_ca = getenv("GPUPASS_TLS_CA"),
		.tls_cert = getenv("GPUPASS_TLS_CERT"),
		.tls_key = getenv("GPUPASS_TLS_KEY"),
		.token = getenv("GPUPASS_TOKEN"),
		.tls_off = tls && strcmp(tls, "off") == 0,
	};
	struct gp_channel ch;
	char why[512];
	int r;

	r = gp_channel_dial(c->server, &o, &ch, why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "gpupass: cannot reach gpupass-pvd at %s: %s (%s)\n", c->server, why,
			r == -EINVAL || r == -EAFNOSUPPORT ? "check GPUPASS_SERVER" :
			r == -EACCES || r == -EPROTO ?
			"check GPUPASS_TLS_CA, GPUPASS_TLS_CERT and GPUPASS_TLS_KEY" :
			strncmp(c->server, "serial:", 7) == 0 ?
			"is the VM's virtio-serial port there and gpupass-pvd running on the host?" :
			"start gpupass-pvd, or set GPUPASS_SERVER");
		return r;
	}
	c->fd = ch.fd;
	c->stream = ch.stream;
	c->serial = ch.serial;
	r = c->stream ? gp_transport_stream_new(c->fd, &c->sock) : gp_transport_unix_new(c->fd, &c->sock);
	if (r < 0) {
		close(c->fd);
		c->fd = -1;
	}
	return r;
}

/* GPUPASS_DEBUG=1: one line on how big transfers travel. */
__attribute__((format(printf, 1, 2)))
static void debug_line(const char *fmt, ...)
{
	const char *v = getenv("GPUPASS_DEBUG");
	va_list ap;

	if (!v || !*v || strcmp(v, "0") == 0)
		return;
	fprintf(stderr, "gpupass: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Stream mode in a VM: offers the ivshmem region (1af4:1110, BAR2) in the
 * HELLO with a fresh nonce written into it. GPUPASS_IVSHMEM=off: none;
 * =ADDR: that PCI device only. */
static void region_offer(struct gp_icd_conn *c)
{
	const char *want = getenv("GPUPASS_IVSHMEM");
	int r;

	if (want && strcmp(want, "off") == 0) {
		debug_line("bulk data inline (GPUPASS_IVSHMEM=off)");
		return;
	}
	r = gp_ivshmem_guest_open(getenv("GPUPASS_SYSROOT"), want && *want ? want : NULL, &c->ivs);
	if (r == 0)
		r = gp_ivshmem_stamp(c->ivs, c->nonce);
	if (r < 0) {
		gp_ivshmem_free(c->ivs);
		c->ivs = NULL;
		debug_line("bulk data inline: no usable ivshmem region (%s%s)", strerror(-r),
			   r == -EACCES ? "; its resource2 needs read/write access: scripts/guest-setup" : "");
	}
}

/* The server's answer (HELLO flags bit 2): it found our nonce in the file
 * it maps for this VM. Otherwise the region is dropped: data inline. */
static void region_answer(struct gp_icd_conn *c, uint32_t flags)
{
	char sz[32];

	if (!c->ivs)
		return;
	snprintf(sz, sizeof(sz), "%llu MiB", (unsigned long long)(gp_ivshmem_size(c->ivs) >> 20));
	if (flags & 4) {
		debug_line("bulk data through the ivshmem region at %s (%s)", gp_ivshmem_addr(c->ivs), sz);
		return;
	}
	debug_line("bulk data inline: gpupass-pvd did not take the ivshmem region at %s (%s; see its log)",
		   gp_ivshmem_addr(c->ivs), sz);
	gp_ivshmem_free(c->ivs);
	c->ivs = NULL;
}

/* Stream mode: the answer to our HELLO is the HELLO reply with our
 * request id; anything before it (replies a dead process on the same
 * port never read) is skipped. */
static int stream_hello_reply(struct gp_icd_conn *c, uint32_t req_id, struct gp_proto_hdr *h,
			      int timeout_ms)
{
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	int r;

	for (;;) {
		r = gp_stream_find(c->fd, GP_OP_HELLO, hdr, timeout_ms);
		if (r < 0)
			return r;
		if (gp_proto_hdr_unpack(hdr, sizeof(hdr), GP_PROTO_MAX_PAYLOAD, h) < 0)
			continue;
		r = gp_stream_read(c->fd, c->rx, h->len, 5000);
		if (r < 0)
			return r;
		if ((h->flags & GP_PROTO_F_REPLY) && h->req_id == req_id)
			return 0;
	}
}

/* Says hello; in stream mode over a port another process may have left
 * mid-message, retries once after a run of zeros long enough to complete
 * any message the server may still be reading (it then resyncs on our
 * HELLO, see PROTOCOL.md "Stream mode"). */
static int say_hello(struct gp_icd_conn *c, struct gp_proto_hdr *h)
{
	struct gp_proto_hdr q = { .opcode = GP_OP_HELLO, .flags = GP_PROTO_F_SYNC };
	struct gp_enc e;
	int r;

	q.req_id = c->stream ? (uint32_t)getpid() ^ (uint32_t)time(NULL) ^ 0x5a5a0000u : 1;
	gp_enc_init(&e, 4096);
	gp_enc_u32(&e, GP_PROTO_VERSION);
	gp_enc_u64(&e, c->shm ? BULK_SIZE : 0);
	gp_enc_str(&e, prog_name());
	/* A value the server reads back with process_vm_readv: if it can,
	 * big transfers copy straight between our memory and the buffer. */
	c->probe = 0x6770707650524f42ull ^ (uint64_t)(uintptr_t)c;
	gp_enc_u64(&e, c->stream ? 0 : (uint64_t)(uintptr_t)&c->probe);
	gp_enc_u64(&e, c->probe);
	if (c->ivs) {
		/* Stream mode: the VM's ivshmem region, proved by the nonce. */
		gp_enc_u64(&e, gp_ivshmem_size(c->ivs));
		gp_enc_raw(&e, c->nonce, sizeof(c->nonce));
	}
	if (!c->stream)
		allow_server_reads(c->fd);
	r = e.err ? e.err : gp_transport_send(c->sock, &q, e.buf, e.len, c->shm ? gp_shm_fd(c->shm) : -1);
	if (r == 0 && !c->stream)
		r = gp_transport_recv(c->sock, h, c->rx, GP_PROTO_MAX_PAYLOAD, NULL, 10000);
	else if (r == 0)
		r = stream_hello_reply(c, q.req_id, h, c->serial ? 3000 : 10000);
	if (r == -ETIMEDOUT && c->serial) {
		uint8_t *zero = calloc(1, GP_PROTO_MAX_PAYLOAD + GP_PROTO_HDR_SIZE);

		r = zero ? gp_stream_write(c->fd, zero, GP_PROTO_MAX_PAYLOAD + GP_PROTO_HDR_SIZE, 10000)
			 : -ENOMEM;
		free(zero);
		/* A new id: a late answer to the first HELLO (a slow server
		 * freeing a dead program's objects) must be skipped too. */
		q.req_id++;
		if (r == 0)
			r = gp_transport_send(c->sock, &q, e.buf, e.len, -1);
		if (r == 0)
			r = stream_hello_reply(c, q.req_id, h, 15000);
	}
	gp_enc_free(&e);
	return r;
}

int gp_icd_conn_open(struct gp_icd_conn **out)
{
	struct gp_icd_conn *c;
	struct gp_proto_hdr h;
	struct gp_dec d;
	const char *addr;
	cl_int err;
	char *msg = NULL;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->fd = -1;
	c->rx = malloc(GP_PROTO_MAX_PAYLOAD);
	c->next_id = FIRST_ID;
	c->next_req = 2;
	r = pick_server(getenv("GPUPASS_SERVER"), &c->server);
	if (r < 0 || !c->rx) {
		r = -ENOMEM;
		goto err_free;
	}
	addr = c->server;
	r = open_channel(c);
	if (r < 0)
		goto err_free;
	if (!c->stream) {
		r = gp_shm_create(BULK_SIZE, &c->shm);
		if (r < 0) {
			fprintf(stderr, "gpupass: cannot make the shared memory region: %s\n", strerror(-r));
			goto err_free;
		}
	}
	if (c->stream)
		region_offer(c);
	r = say_hello(c, &h);
	if (r < 0) {
		fprintf(stderr, "gpupass: gpupass-pvd at %s did not answer the hello: %s\n", addr,
			r == -EPROTONOSUPPORT ? "it speaks another protocol version" : strerror(-r));
		goto err_free;
	}
	gp_dec_init(&d, c->rx, h.len);
	err = gp_dec_i32(&d);
	msg = gp_dec_strdup(&d, 4096);
	if (!d.err && err != CL_SUCCESS) {
		fprintf(stderr, "gpupass: gpupass-pvd at %s refused this program: %s\n", addr,
			msg ? msg : "?");
		r = -EACCES;
		goto err_free;
	}
	c->ndev = gp_dec_count(&d, 8, 64);
	for (uint32_t i = 0; i < c->ndev; i++)
		gp_dec_u64(&d);
	{
		uint32_t fl = gp_dec_u32(&d);

		/* Stream mode: everything inline, whatever the server says. */
		c->direct = (fl & 1) && !c->stream;
		c->shared = (fl & 2) && !c->stream && !getenv("GPUPASS_NO_SHARED");
		region_answer(c, fl);
	}
	if (d.err) {
		fprintf(stderr, "gpupass: gpupass-pvd at %s sent a malformed hello\n", addr);
		r = -EBADMSG;
		goto err_free;
	}
	free(msg);
	msg = NULL;
	if (c->stream)
		c->ring = c->sock; /* the same transport; freed once */
	else
		r = gp_transport_ring_new(c->shm, GP_RING_CLIENT, c->fd, 150000, &c->ring);
	if (r < 0)
		goto err_free;
	*out = c;
	return 0;

err_free:
	free(msg);
	gp_ivshmem_free(c->ivs);
	gp_transport_free(c->sock);
	gp_shm_free(c->shm);
	free(c->rx);
	free(c->server);
	free(c);
	return r;
}

uint32_t gp_icd_conn_ndevices(const struct gp_icd_conn *c)
{
	return c->ndev;
}

bool gp_icd_conn_direct(const struct gp_icd_conn *c)
{
	return c->direct;
}

bool gp_icd_conn_alive(struct gp_icd_conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };

	if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
		return false;
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
		conn_dead(c, -EPIPE);
		return false;
	}
	return true;
}

bool gp_icd_conn_shared(const struct gp_icd_conn *c)
{
	return c->shared;
}

int gp_icd_recv_fd_locked(struct gp_icd_call *k, int *fd)
{
	struct gp_proto_hdr h;
	uint8_t buf[16];
	int r;

	r = gp_transport_recv(k->c->sock, &h, buf, sizeof(buf), fd, 5000);
	if (r == 0 && *fd < 0)
		r = -EBADMSG;
	if (r < 0)
		conn_dead(k->c, r);
	return r;
}

uint64_t gp_icd_conn_new_id(struct gp_icd_conn *c)
{
	return __atomic_fetch_add(&c->next_id, 1, __ATOMIC_RELAXED);
}

void *gp_icd_conn_bulk(struct gp_icd_conn *c, uint64_t *size)
{
	uint64_t dummy;

	if (c->ivs) /* stream mode with the VM's ivshmem region */
		return gp_ivshmem_data(c->ivs, size ? size : &dummy);
	if (!c->shm) { /* stream mode: no bulk region */
		if (size)
			*size = 0;
		return NULL;
	}
	return gp_shm_bulk(c->shm, size ? size : &dummy);
}

static void futex_wait(uint32_t *addr, uint32_t val)
{
	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* A call's way into the connection: pollers let it go first. Both sides
 * use sequentially consistent atomics (a store, then a load of the
 * other's counter), so either the caller sees the sleeping poller and
 * wakes it, or the poller sees @want at 0 and does not sleep. */
void gp_icd_conn_lock(struct gp_icd_conn *c)
{
	__atomic_add_fetch(&c->want, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&c->lock);
	if (__atomic_sub_fetch(&c->want, 1, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_load_n(&c->yielders, __ATOMIC_SEQ_CST))
		futex_wake_all(&c->want);
}

/* A poller's way in: waits until no other thread wants the connection,
 * and lets go again if one came while it waited for the lock. */
static void conn_lock_yield(struct gp_icd_conn *c)
{
	for (;;) {
		uint32_t v;

		__atomic_add_fetch(&c->yielders, 1, __ATOMIC_SEQ_CST);
		while ((v = __atomic_load_n(&c->want, __ATOMIC_SEQ_CST)) != 0)
			futex_wait(&c->want, v);
		__atomic_sub_fetch(&c->yielders, 1, __ATOMIC_SEQ_CST);
		pthread_mutex_lock(&c->lock);
		if (__atomic_load_n(&c->want, __ATOMIC_SEQ_CST) == 0)
			return;
		pthread_mutex_unlock(&c->lock);
	}
}

void gp_icd_conn_unlock(struct gp_icd_conn *c)
{
	pthread_mutex_unlock(&c->lock);
}

void gp_icd_call_begin(struct gp_icd_conn *c, struct gp_icd_call *k)
{
	k->c = c;
	k->locked = false;
	k->patient = false;
	k->flags = 0;
	gp_enc_init_fixed(&k->e, k->small, sizeof(k->small));
}

void gp_icd_call_begin_heap(struct gp_icd_conn *c, struct gp_icd_call *k)
{
	k->c = c;
	k->locked = false;
	k->patient = false;
	k->flags = 0;
	gp_enc_init(&k->e, GP_PROTO_MAX_PAYLOAD);
}

int gp_icd_send_locked(struct gp_icd_call *k, uint16_t op, bool sync)
{
	struct gp_icd_conn *c = k->c;
	struct gp_proto_hdr h = { .opcode = op, .flags = (sync ? GP_PROTO_F_SYNC : 0) | k->flags };
	int r;

	if (__atomic_load_n(&c->dead, __ATOMIC_ACQUIRE))
		return -EPIPE;
	if (k->e.err)
		return k->e.err;
	h.req_id = c->next_req++;
	r = gp_transport_send(c->ring, &h, k->e.buf, k->e.len, -1);
	if (r < 0)
		conn_dead(c, r);
	return r;
}

cl_int gp_icd_collect_locked(struct gp_icd_call *k, cl_int dead_err)
{
	struct gp_icd_conn *c = k->c;
	struct gp_proto_hdr h;
	int r;

	if (k->patient)
		gp_transport_patient(c->ring);
	r = gp_transport_recv(c->ring, &h, c->rx, GP_PROTO_MAX_PAYLOAD, NULL, -1);
	if (r < 0) {
		conn_dead(c, r);
		return dead_err;
	}
	gp_dec_init(&k->d, c->rx, h.len);
	return gp_dec_i32(&k->d);
}

cl_int gp_icd_call_post(struct gp_icd_call *k, uint16_t op, cl_int dead_err)
{
	int r;

	if (k->e.err)
		return CL_OUT_OF_HOST_MEMORY;
	gp_icd_conn_lock(k->c);
	r = gp_icd_send_locked(k, op, false);
	pthread_mutex_unlock(&k->c->lock);
	return r < 0 ? dead_err : CL_SUCCESS;
}

/* A request and its reply, the connection held in between; a poller
 * (@asked not NULL) takes it only when no other thread wants it, and
 * learns whether one asked for it meanwhile. */
static cl_int call_sync(struct gp_icd_call *k, uint16_t op, cl_int dead_err, bool *asked)
{
	cl_int err;

	gp_dec_init(&k->d, NULL, 0);
	if (k->e.err)
		return CL_OUT_OF_HOST_MEMORY;
	if (asked)
		conn_lock_yield(k->c);
	else
		gp_icd_conn_lock(k->c);
	k->locked = true;
	if (gp_icd_send_locked(k, op, true) < 0)
		return dead_err;
	err = gp_icd_collect_locked(k, dead_err);
	if (asked)
		*asked = __atomic_load_n(&k->c->want, __ATOMIC_SEQ_CST) != 0;
	return err;
}

cl_int gp_icd_call_sync(struct gp_icd_call *k, uint16_t op, cl_int dead_err)
{
	return call_sync(k, op, dead_err, NULL);
}

cl_int gp_icd_call_sync_yield(struct gp_icd_call *k, uint16_t op, cl_int dead_err, bool *asked)
{
	*asked = false;
	return call_sync(k, op, dead_err, asked);
}

void gp_icd_call_end(struct gp_icd_call *k)
{
	if (k->locked)
		pthread_mutex_unlock(&k->c->lock);
	k->locked = false;
	gp_enc_free(&k->e);
}
