/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Talks the PV protocol directly (no ICD) to check what the server
 * enforces: per-session handles (isolation), handle kinds, and that a
 * malformed message ends only the session that sent it.
 * Usage: pv_raw SOCKET
 *        pv_raw garbage VICTIM_SOCKET ATTACKER_SOCKET SEED COUNT: COUNT
 *        messages of random opcodes whose fields are drawn from live ids,
 *        small and huge numbers and random bytes, sent by a session of
 *        the attacker (a new one each time the server ends it), while a
 *        session of the victim holds a buffer whose data must survive.
 */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "transport/transport.h"
#include "pvtest.h"

struct sess {
	struct gp_transport *sock, *ring;
	struct gp_shm *shm;
	uint8_t *rx;
	uint32_t req;
};

static int sess_open(const char *path, struct sess *s)
{
	struct gp_proto_hdr h = { .opcode = GP_OP_HELLO, .flags = GP_PROTO_F_SYNC, .req_id = 1 };
	struct gp_enc e;
	struct gp_dec d;
	int fd, r;

	memset(s, 0, sizeof(*s));
	s->rx = malloc(GP_PROTO_MAX_PAYLOAD);
	if ((r = gp_unix_connect(path, &fd)) < 0 || (r = gp_transport_unix_new(fd, &s->sock)) < 0 ||
	    (r = gp_shm_create(1 << 20, &s->shm)) < 0)
		return r;
	gp_enc_init(&e, 4096);
	gp_enc_u32(&e, GP_PROTO_VERSION);
	gp_enc_u64(&e, 1 << 20);
	gp_enc_str(&e, "pv_raw");
	gp_enc_u64(&e, 0);
	gp_enc_u64(&e, 0);
	r = gp_transport_send(s->sock, &h, e.buf, e.len, gp_shm_fd(s->shm));
	gp_enc_free(&e);
	if (r == 0)
		r = gp_transport_recv(s->sock, &h, s->rx, GP_PROTO_MAX_PAYLOAD, NULL, 5000);
	if (r < 0)
		return r;
	gp_dec_init(&d, s->rx, h.len);
	if (gp_dec_i32(&d) != 0)
		return -EACCES;
	s->req = 2;
	return gp_transport_ring_new(s->shm, GP_RING_CLIENT, fd, 100000, &s->ring);
}

static void sess_close(struct sess *s)
{
	gp_transport_free(s->ring);
	gp_transport_free(s->sock);
	gp_shm_free(s->shm);
	free(s->rx);
}

/* Sends @e as @op; with @sync, returns the reply's CL error (or -errno of
 * the transport) and leaves the rest of the reply in *d. */
static int call(struct sess *s, uint16_t op, struct gp_enc *e, bool sync, struct gp_dec *d)
{
	struct gp_proto_hdr h = { .opcode = op, .flags = sync ? GP_PROTO_F_SYNC : 0,
				  .req_id = s->req++ };
	struct gp_dec tmp;
	int r = gp_transport_send(s->ring, &h, e->buf, e->len, -1);

	gp_enc_reset(e);
	if (r < 0 || !sync)
		return r;
	r = gp_transport_recv(s->ring, &h, s->rx, GP_PROTO_MAX_PAYLOAD, NULL, 5000);
	if (r < 0)
		return r;
	if (!d)
		d = &tmp;
	gp_dec_init(d, s->rx, h.len);
	return gp_dec_i32(d);
}

static int get_info(struct sess *s, uint32_t sel, uint64_t id, uint32_t param, uint64_t *val)
{
	struct gp_enc e;
	struct gp_dec d;
	size_t n = 0;
	const void *p;
	int r;

	gp_enc_init(&e, 4096);
	gp_enc_u32(&e, sel);
	gp_enc_u64(&e, id);
	gp_enc_u64(&e, 0);
	gp_enc_u32(&e, param);
	gp_enc_u64(&e, 0);
	gp_enc_u32(&e, 64);
	r = call(s, GP_OP_GET_INFO, &e, true, &d);
	gp_enc_free(&e);
	if (r == 0) {
		gp_dec_u64(&d);
		p = gp_dec_blob(&d, 64, &n);
		*val = 0;
		if (p && n <= 8)
			memcpy(val, p, n);
	}
	return r;
}

/* CREATE_SUB_DEVICES of @dev: @np partition properties, @m new ids. */
static int subdev(struct gp_enc *e, struct sess *s, uint64_t dev, const int64_t *props, uint32_t np,
		  const uint64_t *ids, uint32_t m, struct gp_dec *d)
{
	gp_enc_u64(e, dev);
	gp_enc_u32(e, np);
	for (uint32_t i = 0; i < np; i++)
		gp_enc_u64(e, (uint64_t)props[i]);
	gp_enc_u32(e, m);
	for (uint32_t i = 0; i < m; i++)
		gp_enc_u64(e, ids[i]);
	return call(s, GP_OP_CREATE_SUB_DEVICES, e, true, d);
}

#define CTX 0x10000u
#define BUF 0x10001u

/* xorshift64*: the same messages for the same seed. */
static uint64_t rnd(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 0x2545F4914F6CDD1Dull;
}

/* One field value: an id the session may hold, a device, a size, a
 * boundary, or noise. */
static uint64_t field(uint64_t *st)
{
	static const uint64_t special[] = { 0, 1, 2, 3, 4, 16, 64, 4096, 65536, 1u << 20,
					     0xffffffffu, 0x7fffffffffffffffull, UINT64_MAX };
	uint64_t r = rnd(st);

	switch (r % 5) {
	case 0: return 0x10000 + (r >> 8) % 24; /* ids this session may have made */
	case 1: return 1 + (r >> 8) % 2;         /* the device, or no device */
	case 2: return special[(r >> 8) % (sizeof(special) / sizeof(special[0]))];
	case 3: return (r >> 8) % 256;
	default: return rnd(st);
	}
}

/* Messages that decode (the layouts of session.c), as fields: width 4 or
 * 8, 'b' a blob of @v bytes, 's' a string; width 0 ends them. The attack mutates a
 * few fields of one at a time, so most get past the decoder into the
 * checks and the OpenCL calls behind it. */
struct fld {
	char w;
	uint64_t v;
};
#define MAXF 20
static const struct tmpl {
	uint16_t op;
	struct fld f[MAXF];
} tmpls[] = {
	{ GP_OP_CREATE_CONTEXT, { { 8, 0x10000 }, { 4, 1 }, { 8, 1 } } },
	{ GP_OP_CREATE_BUFFER, { { 8, 0x10001 }, { 8, 0x10000 }, { 8, CL_MEM_READ_WRITE }, { 8, 4096 }, { 4, 0 } } },
	{ GP_OP_CREATE_SUBBUFFER, { { 8, 0x10003 }, { 8, 0x10001 }, { 8, CL_MEM_READ_WRITE }, { 8, 0 }, { 8, 1024 } } },
	{ GP_OP_CREATE_QUEUE, { { 8, 0x10002 }, { 8, 0x10000 }, { 8, 1 }, { 8, 0 } } },
	{ GP_OP_WRITE_BUFFER, { { 8, 0x10002 }, { 8, 0x10001 }, { 8, 0 }, { 8, 16 }, { 4, 0 }, { 4, 1 }, { 8, 0 }, { 'b', 16 }, { 4, 0 }, { 8, 0 } } },
	{ GP_OP_READ_BUFFER, { { 8, 0x10002 }, { 8, 0x10001 }, { 8, 0 }, { 8, 64 }, { 4, 0 }, { 8, 0 }, { 4, 0 }, { 8, 0 } } },
	{ GP_OP_COPY_BUFFER, { { 8, 0x10002 }, { 8, 0x10001 }, { 8, 0x10003 }, { 8, 0 }, { 8, 0 }, { 8, 256 }, { 4, 0 }, { 8, 0x10004 } } },
	{ GP_OP_FILL_BUFFER, { { 8, 0x10002 }, { 8, 0x10001 }, { 'b', 4 }, { 8, 0 }, { 8, 64 }, { 4, 0 }, { 8, 0 } } },
	{ GP_OP_GET_INFO, { { 4, GP_INFO_MEM }, { 8, 0x10001 }, { 8, 0 }, { 4, CL_MEM_SIZE }, { 8, 0 }, { 4, 64 } } },
	{ GP_OP_GET_INFO, { { 4, GP_INFO_DEVICE }, { 8, 1 }, { 8, 0 }, { 4, CL_DEVICE_NAME }, { 8, 0 }, { 4, 256 } } },
	{ GP_OP_WAIT_POLL, { { 4, 1 }, { 8, 0x10004 }, { 4, 1000 } } },
	{ GP_OP_MARKER, { { 8, 0x10002 }, { 4, 0 }, { 8, 0x10005 } } },
	{ GP_OP_FINISH, { { 8, 0x10002 } } },
	{ GP_OP_RELEASE, { { 8, 0x10003 } } },
	{ GP_OP_CREATE_USER_EVENT, { { 8, 0x10006 }, { 8, 0x10000 } } },
	{ GP_OP_SET_USER_EVENT_STATUS, { { 8, 0x10006 }, { 4, CL_COMPLETE } } },
	{ GP_OP_CREATE_PROGRAM_SOURCE, { { 8, 0x10007 }, { 8, 0x10000 }, { 's', 0 } } },
	{ GP_OP_BUILD_PROGRAM, { { 8, 0x10007 }, { 4, 1 }, { 8, 1 }, { 's', 1 } } },
	{ GP_OP_CREATE_KERNEL, { { 8, 0x10008 }, { 8, 0x10007 }, { 's', 2 } } },
	{ GP_OP_SET_KERNEL_ARG, { { 8, 0x10008 }, { 4, 0 }, { 4, 1 }, { 8, 0x10001 }, { 'b', 0 } } },
	{ GP_OP_SET_KERNEL_ARG, { { 8, 0x10008 }, { 4, 1 }, { 4, 0 }, { 8, 4 }, { 'b', 4 } } },
	{ GP_OP_ENQUEUE_NDRANGE, { { 8, 0x10002 }, { 8, 0x10008 }, { 4, 1 }, { 4, 0 }, { 4, 0 }, { 8, 0 }, { 8, 0 }, { 8, 0 }, { 8, 64 }, { 8, 1 }, { 8, 1 }, { 8, 1 }, { 8, 1 }, { 8, 1 }, { 4, 0 }, { 8, 0x10009 } } },
	{ GP_OP_CREATE_SUB_DEVICES, { { 8, 1 }, { 4, 2 }, { 8, CL_DEVICE_PARTITION_EQUALLY }, { 8, 1 }, { 4, 0 } } },
	{ GP_OP_STAGE, { { 8, 0 }, { 8, 16 }, { 'b', 16 } } },
};

static void template_body(struct gp_enc *e, uint64_t *st, struct gp_proto_hdr *h)
{
	static const char *strs[] = { "__kernel void k(__global int *a, int v) { a[get_global_id(0)] = v; }",
				      "", "k" };
	const struct tmpl *t = &tmpls[rnd(st) % (sizeof(tmpls) / sizeof(tmpls[0]))];
	int nf = 0, muts = 1 + (int)(rnd(st) % 3);
	struct fld f[MAXF];

	while (nf < MAXF && t->f[nf].w)
		nf++; /* a template's fields end at the first width 0 */
	memcpy(f, t->f, sizeof(f));
	for (int m = 0; m < muts; m++) {
		int i = (int)(rnd(st) % (unsigned)nf);

		if (f[i].w == 4 || f[i].w == 8)
			f[i].v = field(st);
	}
	h->opcode = t->op;
	for (int i = 0; i < nf; i++) {
		uint8_t junk[256];

		if (f[i].w == 8) {
			gp_enc_u64(e, f[i].v);
		} else if (f[i].w == 4) {
			gp_enc_u32(e, (uint32_t)f[i].v);
		} else if (f[i].w == 's') {
			gp_enc_str(e, strs[f[i].v % 3]);
		} else {
			size_t len = f[i].v < sizeof(junk) ? (size_t)f[i].v : sizeof(junk);

			for (size_t j = 0; j < len; j++)
				junk[j] = (uint8_t)rnd(st);
			gp_enc_blob(e, junk, len);
		}
	}
}

static int garbage(const char *victim, const char *attacker, uint64_t seed, long count)
{
	struct sess v, g;
	struct gp_enc e;
	uint64_t st = seed ? seed : 1, val = 0;
	long ended = 0, answered = 0;
	int data[256], back[256];
	bool open_g = false;

	gp_enc_init(&e, GP_PROTO_MAX_PAYLOAD);
	EQ(sess_open(victim, &v), 0, "victim session");
	gp_enc_u64(&e, CTX);
	gp_enc_u32(&e, 1);
	gp_enc_u64(&e, 1);
	EQ(call(&v, GP_OP_CREATE_CONTEXT, &e, true, NULL), CL_SUCCESS, "victim context");
	for (int i = 0; i < 256; i++)
		data[i] = i * 31 + 7;
	gp_enc_u64(&e, BUF);
	gp_enc_u64(&e, CTX);
	gp_enc_u64(&e, CL_MEM_READ_WRITE);
	gp_enc_u64(&e, sizeof(data));
	gp_enc_u32(&e, 0);
	EQ(call(&v, GP_OP_CREATE_BUFFER, &e, true, NULL), CL_SUCCESS, "victim buffer");
	gp_enc_u64(&e, 0);
	gp_enc_u64(&e, BUF);
	gp_enc_u64(&e, 0);
	gp_enc_u64(&e, sizeof(data));
	gp_enc_u32(&e, 0);
	gp_enc_u32(&e, 1);
	gp_enc_u64(&e, 0);
	gp_enc_blob(&e, data, sizeof(data));
	gp_enc_u32(&e, 0);
	gp_enc_u64(&e, 0);
	EQ(call(&v, GP_OP_WRITE_BUFFER, &e, true, NULL), CL_SUCCESS, "victim data written");
	if (t_fail)
		return t_done();
	for (long i = 0; i < count; i++) {
		struct gp_proto_hdr h = { 0 };
		bool sync;
		int r;

		if (!open_g) {
			if (sess_open(attacker, &g) < 0) {
				OK(0, "attacker session %ld could not say hello", ended);
				break;
			}
			open_g = true;
		}
		h.flags = rnd(&st) % 4 ? GP_PROTO_F_SYNC : 0;
		if (rnd(&st) % 50 == 0)
			h.flags |= GP_PROTO_F_STAGED;
		h.req_id = g.req++;
		template_body(&e, &st, &h);
		sync = h.flags & GP_PROTO_F_SYNC;
		r = gp_transport_send(g.ring, &h, e.buf, e.len, -1);
		gp_enc_reset(&e);
		if (r == 0 && sync)
			r = gp_transport_recv(g.ring, &h, g.rx, GP_PROTO_MAX_PAYLOAD, NULL, 20000);
		if (r == -ETIMEDOUT) {
			OK(0, "message %ld (opcode %u) got no answer in 20 s", i, h.opcode);
			break;
		}
		if (r < 0) {
			sess_close(&g);
			open_g = false;
			ended++;
		} else if (sync) {
			answered++;
		}
	}
	if (open_g)
		sess_close(&g);
	OK(1, "%ld mutated messages: %ld answered, %ld sessions ended by the server", count, answered,
	   ended);
	gp_enc_u64(&e, 0x10002);
	gp_enc_u64(&e, CTX);
	gp_enc_u64(&e, 1);
	gp_enc_u64(&e, 0);
	EQ(call(&v, GP_OP_CREATE_QUEUE, &e, true, NULL), CL_SUCCESS, "victim queue after the attack");
	gp_enc_u64(&e, 0x10002);
	gp_enc_u64(&e, BUF);
	gp_enc_u64(&e, 0);
	gp_enc_u64(&e, sizeof(back));
	gp_enc_u32(&e, 0);
	gp_enc_u64(&e, 0);
	gp_enc_u32(&e, 0);
	gp_enc_u64(&e, 0);
	{
		struct gp_dec d;
		size_t n = 0;
		const void *p;

		EQ(call(&v, GP_OP_READ_BUFFER, &e, true, &d), CL_SUCCESS, "victim reads its buffer");
		p = gp_dec_blob(&d, sizeof(back), &n);
		OK(p && n == sizeof(back) && memcpy(back, p, n) && memcmp(back, data, n) == 0,
		   "the victim's data is intact (%zu bytes)", n);
	}
	EQ(get_info(&v, GP_INFO_MEM, BUF, CL_MEM_SIZE, &val), CL_SUCCESS, "victim buffer info");
	EQ(val, sizeof(data), "its size");
	sess_close(&v);
	gp_enc_free(&e);
	return t_done();
}

int main(int argc, char **argv)
{
	struct sess a, b, c;
	struct gp_enc e;
	uint64_t v = 0;
	int r;

	if (argc == 6 && strcmp(argv[1], "garbage") == 0)
		return garbage(argv[2], argv[3], strtoull(argv[4], NULL, 0), strtol(argv[5], NULL, 0));
	if (argc != 2) {
		fprintf(stderr, "usage: pv_raw SOCKET | pv_raw garbage VICTIM ATTACKER SEED COUNT\n");
		return 2;
	}
	gp_enc_init(&e, GP_PROTO_MAX_PAYLOAD);
	EQ(sess_open(argv[1], &a), 0, "session A says hello");
	EQ(sess_open(argv[1], &b), 0, "session B says hello");
	if (t_fail)
		return t_done();

	gp_enc_u64(&e, CTX);
	gp_enc_u32(&e, 1);
	gp_enc_u64(&e, 1);
	EQ(call(&a, GP_OP_CREATE_CONTEXT, &e, true, NULL), CL_SUCCESS, "A creates a context");
	gp_enc_u64(&e, BUF);
	gp_enc_u64(&e, CTX);
	gp_enc_u64(&e, CL_MEM_READ_WRITE);
	gp_enc_u64(&e, 4096);
	gp_enc_u32(&e, 0);
	EQ(call(&a, GP_OP_CREATE_BUFFER, &e, true, NULL), CL_SUCCESS, "A creates a buffer");
	EQ(get_info(&a, GP_INFO_MEM, BUF, CL_MEM_SIZE, &v), CL_SUCCESS, "A reads its buffer's size");
	EQ(v, 4096, "buffer size");

	/* isolation: B names A's ids */
	EQ(get_info(&b, GP_INFO_MEM, BUF, CL_MEM_SIZE, &v), CL_INVALID_MEM_OBJECT, "B cannot see A's buffer id");
	gp_enc_u64(&e, 0x20000);
	gp_enc_u64(&e, CTX);
	gp_enc_u64(&e, 1);
	gp_enc_u64(&e, 0);
	EQ(call(&b, GP_OP_CREATE_QUEUE, &e, true, NULL), CL_INVALID_CONTEXT, "B cannot use A's context id");
	gp_enc_u64(&e, BUF);
	call(&b, GP_OP_RELEASE, &e, false, NULL);
	gp_enc_u64(&e, 0x20001);
	gp_enc_u64(&e, CTX);
	gp_enc_u64(&e, 0);
	gp_enc_u64(&e, 64);
	gp_enc_u32(&e, 0);
	EQ(call(&b, GP_OP_CREATE_BUFFER, &e, true, NULL), CL_INVALID_CONTEXT, "B cannot make a buffer in A's context");
	EQ(get_info(&a, GP_INFO_MEM, BUF, CL_MEM_SIZE, &v), CL_SUCCESS, "A's buffer survives B's release of its id");

	/* handle kinds */
	EQ(get_info(&a, GP_INFO_MEM, CTX, CL_MEM_SIZE, &v), CL_INVALID_MEM_OBJECT, "a context id is not a buffer");
	EQ(get_info(&a, GP_INFO_KERNEL, BUF, CL_KERNEL_NUM_ARGS, &v), CL_INVALID_KERNEL, "a buffer id is not a kernel");
	EQ(get_info(&a, GP_INFO_DEVICE, CTX, CL_DEVICE_TYPE, &v), CL_INVALID_DEVICE, "a context id is not a device");
	EQ(get_info(&a, GP_INFO_MEM, BUF, CL_MEM_HOST_PTR, &v), CL_INVALID_VALUE, "host pointers never leave the server");
	EQ(get_info(&a, 999, BUF, 0, &v), CL_INVALID_VALUE, "unknown info selector");
	gp_enc_u64(&e, 0x10002);
	gp_enc_u64(&e, BUF); /* a buffer where a context belongs */
	gp_enc_u64(&e, 1);
	gp_enc_u64(&e, 0);
	EQ(call(&a, GP_OP_CREATE_QUEUE, &e, true, NULL), CL_INVALID_CONTEXT, "a buffer id is not a context");

	/* quota-free big request: a size the host cannot give fails cleanly */
	gp_enc_u64(&e, 0x10003);
	gp_enc_u64(&e, CTX);
	gp_enc_u64(&e, 0);
	gp_enc_u64(&e, UINT64_MAX);
	gp_enc_u32(&e, 0);
	r = call(&a, GP_OP_CREATE_BUFFER, &e, true, NULL);
	OK(r == CL_INVALID_BUFFER_SIZE || r == CL_MEM_OBJECT_ALLOCATION_FAILURE, "2^64-1 byte buffer refused (%d)", r);

	/* malformed messages end only their own session */
	gp_enc_u64(&e, 0x20002);
	gp_enc_u8(&e, 1); /* truncated CREATE_BUFFER */
	call(&b, GP_OP_CREATE_BUFFER, &e, false, NULL);
	EQ(get_info(&b, GP_INFO_DEVICE, 1, CL_DEVICE_TYPE, &v), -EPIPE, "B's session ended after a truncated message");
	EQ(sess_open(argv[1], &c), 0, "session C says hello");
	gp_enc_u32(&e, 0);
	EQ(call(&c, 999, &e, true, NULL), -EPIPE, "C's session ended after an unknown opcode");
	sess_close(&c);
	EQ(sess_open(argv[1], &c), 0, "session C again");
	gp_enc_u64(&e, CTX); /* an id that is not fresh: already used */
	gp_enc_u32(&e, 1);
	gp_enc_u64(&e, 1);
	EQ(call(&c, GP_OP_CREATE_CONTEXT, &e, true, NULL), CL_SUCCESS, "C may use the same id value as A (its own table)");
	gp_enc_u64(&e, CTX);
	gp_enc_u32(&e, 1);
	gp_enc_u64(&e, 1);
	EQ(call(&c, GP_OP_CREATE_CONTEXT, &e, true, NULL), -EPIPE, "reusing a live id ends the session");
	gp_enc_u64(&e, 0x10009);
	gp_enc_u64(&e, 1); /* device 1, not a context */
	gp_enc_u64(&e, 0);
	gp_enc_u64(&e, 64);
	gp_enc_u32(&e, 0);
	EQ(call(&a, GP_OP_CREATE_BUFFER, &e, true, NULL), CL_INVALID_CONTEXT,
	   "A still served after B and C broke the rules (a device id is not a context)");
	/* images, waits and compilation: kinds, isolation, malformed fields */
	{
		struct sess f;
		struct gp_dec d;

		gp_enc_u64(&e, 0x10010);
		gp_enc_u64(&e, CTX);
		gp_enc_u64(&e, CL_MEM_READ_WRITE);
		gp_enc_u32(&e, CL_RGBA);
		gp_enc_u32(&e, CL_UNSIGNED_INT8);
		gp_enc_u32(&e, CL_MEM_OBJECT_IMAGE2D);
		gp_enc_u64(&e, 16);
		gp_enc_u64(&e, 8);
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 0);
		EQ(call(&a, GP_OP_CREATE_IMAGE, &e, true, &d), CL_SUCCESS, "A creates a 16x8 image");
		EQ(gp_dec_u64(&d), 4, "element size in the reply");
		OK(gp_dec_u64(&d) >= 16 * 8 * 4, "image size in the reply");
		EQ(get_info(&a, GP_INFO_IMAGE, 0x10010, CL_IMAGE_WIDTH, &v), CL_SUCCESS, "image info");
		EQ(v, 16, "image width");
		EQ(get_info(&a, GP_INFO_IMAGE, BUF, CL_IMAGE_WIDTH, &v), CL_INVALID_MEM_OBJECT,
		   "a buffer has no image info");
		EQ(get_info(&a, GP_INFO_IMAGE, 0x10010, CL_IMAGE_BUFFER, &v), CL_INVALID_VALUE,
		   "an image's buffer handle never leaves the server");
		EQ(get_info(&b, GP_INFO_IMAGE, 0x10010, CL_IMAGE_WIDTH, &v), -EPIPE,
		   "(B's session is over)");
		EQ(sess_open(argv[1], &f), 0, "session F says hello");
		EQ(get_info(&f, GP_INFO_IMAGE, 0x10010, CL_IMAGE_WIDTH, &v), CL_INVALID_MEM_OBJECT,
		   "F cannot see A's image");
		/* READ_IMAGE of a region larger than one reply: refused, not sent */
		gp_enc_u64(&e, 0x10011);
		gp_enc_u64(&e, CTX);
		gp_enc_u64(&e, 1);
		gp_enc_u64(&e, 0);
		EQ(call(&a, GP_OP_CREATE_QUEUE, &e, true, NULL), CL_SUCCESS, "A creates a queue");
		gp_enc_u64(&e, 0x10011);
		gp_enc_u64(&e, 0x10010);
		for (int i = 0; i < 3; i++)
			gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 1u << 20);
		gp_enc_u64(&e, 1u << 20);
		gp_enc_u64(&e, 1);
		gp_enc_u32(&e, 0);
		gp_enc_u64(&e, 0);
		EQ(call(&a, GP_OP_READ_IMAGE, &e, true, NULL), CL_INVALID_VALUE,
		   "image read bigger than a reply refused");
		/* WAIT_POLL on A's queue-less ids from F, and a bad timeout */
		gp_enc_u32(&e, 1);
		gp_enc_u64(&e, BUF);
		gp_enc_u32(&e, 1000);
		EQ(call(&a, GP_OP_WAIT_POLL, &e, true, NULL), CL_INVALID_EVENT, "a buffer id is not an event");
		gp_enc_u32(&e, 0);
		gp_enc_u32(&e, 1000);
		EQ(call(&a, GP_OP_WAIT_POLL, &e, true, &d), CL_INVALID_VALUE, "wait for nothing");
		EQ(gp_dec_u32(&d), 1, "and the wait is over (never an endless poll)");
		/* COMPILE_PROGRAM with a header name leaving the scratch dir */
		{
			static const char src[] = "int f(void) { return 1; }";

			gp_enc_u64(&e, 0x10012);
			gp_enc_u64(&e, CTX);
			gp_enc_blob(&e, src, sizeof(src) - 1);
			EQ(call(&a, GP_OP_CREATE_PROGRAM_SOURCE, &e, true, NULL), CL_SUCCESS, "program");
			gp_enc_u64(&e, 0x10012);
			gp_enc_u32(&e, 0);
			gp_enc_str(&e, "");
			gp_enc_u32(&e, 1);
			gp_enc_u64(&e, 0x10012);
			gp_enc_str(&e, "a/../../../tmp/x.h");
			EQ(call(&a, GP_OP_COMPILE_PROGRAM, &e, true, NULL), CL_INVALID_VALUE,
			   "header name with .. refused by the server");
			gp_enc_u64(&e, 0x10012);
			gp_enc_u32(&e, 0);
			gp_enc_str(&e, "");
			gp_enc_u32(&e, 1);
			gp_enc_u64(&e, 0x10012);
			gp_enc_str(&e, "/etc/passwd");
			EQ(call(&a, GP_OP_COMPILE_PROGRAM, &e, true, NULL), CL_INVALID_VALUE,
			   "absolute header name refused by the server");
		}
		/* a WAIT_POLL timeout beyond the bound and a WRITE_IMAGE whose data
		 * length is not the region's: malformed, F's session ends */
		gp_enc_u32(&e, 0);
		gp_enc_u32(&e, 10000000);
		EQ(call(&f, GP_OP_WAIT_POLL, &e, true, NULL), -EPIPE, "F's session ended on a 10 s poll");
		sess_close(&f);
		EQ(sess_open(argv[1], &f), 0, "session G says hello");
		gp_enc_u64(&e, 0x10000);
		gp_enc_u32(&e, 1);
		gp_enc_u64(&e, 1);
		EQ(call(&f, GP_OP_CREATE_CONTEXT, &e, true, NULL), CL_SUCCESS, "G creates a context");
		gp_enc_u64(&e, 0x10001);
		gp_enc_u64(&e, 0x10000);
		gp_enc_u64(&e, CL_MEM_READ_WRITE);
		gp_enc_u32(&e, CL_RGBA);
		gp_enc_u32(&e, CL_UNSIGNED_INT8);
		gp_enc_u32(&e, CL_MEM_OBJECT_IMAGE2D);
		gp_enc_u64(&e, 4);
		gp_enc_u64(&e, 4);
		for (int i = 0; i < 5; i++)
			gp_enc_u64(&e, 0);
		EQ(call(&f, GP_OP_CREATE_IMAGE, &e, true, NULL), CL_SUCCESS, "G creates a 4x4 image");
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 0x10001);
		for (int i = 0; i < 3; i++)
			gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 4);
		gp_enc_u64(&e, 4);
		gp_enc_u64(&e, 1);
		gp_enc_u32(&e, 1);
		gp_enc_blob(&e, "short", 5); /* 64 bytes due */
		gp_enc_u32(&e, 0);
		gp_enc_u64(&e, 0);
		EQ(call(&f, GP_OP_WRITE_IMAGE, &e, true, NULL), -EPIPE,
		   "G's session ended on image data shorter than the region");
		sess_close(&f);
		EQ(get_info(&a, GP_INFO_IMAGE, 0x10010, CL_IMAGE_WIDTH, &v), CL_SUCCESS,
		   "A's image intact after F and G broke the rules");
	}
	/* sub-devices: malformed partitions are CL errors, bad ids end the
	 * session, and a parent released before its children harms nothing */
	{
		struct sess h;
		struct gp_dec d;
		int64_t eq1[] = { CL_DEVICE_PARTITION_EQUALLY, 1 };
		int64_t bad[] = { CL_DEVICE_PARTITION_BY_COUNTS, 1, -5, 0 };
		uint64_t ids2[] = { 0x10100, 0x10101 };

		EQ(sess_open(argv[1], &h), 0, "session H says hello");
		EQ(subdev(&e, &h, 1, eq1, 2, ids2, 0, &d), CL_SUCCESS, "H asks how many sub-devices");
		v = gp_dec_u32(&d);
		OK(v >= 1, "the partition gives %llu", (unsigned long long)v);
		EQ(subdev(&e, &h, 1, bad, 4, ids2, 0, NULL), CL_INVALID_VALUE, "a negative count refused");
		EQ(subdev(&e, &h, 1, eq1, 1, ids2, 0, NULL), CL_INVALID_VALUE, "a list cut short refused");
		EQ(subdev(&e, &h, BUF, eq1, 2, ids2, 0, NULL), CL_INVALID_DEVICE,
		   "A's buffer id is not H's device");
		if (v == 2) {
			uint64_t kid[] = { 0x10200 }, dup[] = { 0x10102, 0x10102 };

			EQ(subdev(&e, &h, 1, eq1, 2, kid, 1, NULL), CL_INVALID_VALUE,
			   "one id for two sub-devices refused");
			EQ(subdev(&e, &h, 1, eq1, 2, ids2, 2, NULL), CL_SUCCESS, "H makes two sub-devices");
			EQ(get_info(&h, GP_INFO_DEVICE, ids2[1], CL_DEVICE_MAX_COMPUTE_UNITS, &v),
			   CL_SUCCESS, "a sub-device's info");
			EQ(v, 1, "its compute units");
			EQ(get_info(&a, GP_INFO_DEVICE, ids2[1], CL_DEVICE_MAX_COMPUTE_UNITS, &v),
			   CL_INVALID_DEVICE, "A cannot see H's sub-device");
			EQ(subdev(&e, &h, ids2[0], eq1, 2, kid, 0, &d), CL_DEVICE_PARTITION_FAILED,
			   "a 1-unit sub-device cannot be split further");
			gp_enc_u64(&e, 1); /* the root device: not the guest's to release */
			call(&h, GP_OP_RELEASE, &e, false, NULL);
			EQ(get_info(&h, GP_INFO_DEVICE, 1, CL_DEVICE_TYPE, &v), CL_SUCCESS,
			   "the root device survives a release of its id");
			gp_enc_u64(&e, ids2[0]);
			call(&h, GP_OP_RELEASE, &e, false, NULL);
			EQ(get_info(&h, GP_INFO_DEVICE, ids2[0], CL_DEVICE_TYPE, &v), CL_INVALID_DEVICE,
			   "a released sub-device is gone");
			EQ(subdev(&e, &h, 1, eq1, 2, dup, 2, NULL), -EPIPE,
			   "the same new id twice ends the session");
		}
		sess_close(&h);
	}
	/* staging (data larger than one message): slices out of order, over
	 * the limit, a staged message without its data or of the wrong kind
	 * end the session; a staged source used as it should works */
	{
		struct sess st;
		static const char src[] = "__kernel void k(__global int *a) { a[0] = 1; }";
		struct gp_proto_hdr h = { .opcode = GP_OP_CREATE_PROGRAM_SOURCE,
					  .flags = GP_PROTO_F_SYNC | GP_PROTO_F_STAGED };
		struct gp_dec d;

		EQ(sess_open(argv[1], &st), 0, "session S says hello");
		gp_enc_u64(&e, CTX);
		gp_enc_u32(&e, 1);
		gp_enc_u64(&e, 1);
		EQ(call(&st, GP_OP_CREATE_CONTEXT, &e, true, NULL), CL_SUCCESS, "S creates a context");
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, sizeof(src) - 1);
		gp_enc_blob(&e, src, 10);
		call(&st, GP_OP_STAGE, &e, false, NULL);
		gp_enc_u64(&e, 10);
		gp_enc_u64(&e, sizeof(src) - 1);
		gp_enc_blob(&e, src + 10, sizeof(src) - 11);
		call(&st, GP_OP_STAGE, &e, false, NULL);
		gp_enc_u64(&e, 0x10050);
		gp_enc_u64(&e, CTX);
		gp_enc_u64(&e, sizeof(src) - 1);
		h.req_id = st.req++;
		EQ(gp_transport_send(st.ring, &h, e.buf, e.len, -1), 0, "staged source sent");
		gp_enc_reset(&e);
		EQ(gp_transport_recv(st.ring, &h, st.rx, GP_PROTO_MAX_PAYLOAD, NULL, 5000), 0, "reply");
		gp_dec_init(&d, st.rx, h.len);
		EQ(gp_dec_i32(&d), CL_SUCCESS, "a program from two staged slices");
		EQ(get_info(&st, GP_INFO_PROGRAM, 0x10050, CL_PROGRAM_REFERENCE_COUNT, &v), CL_SUCCESS,
		   "the program is S's");
		/* the staging is gone once used: the same staged message again */
		gp_enc_u64(&e, 0x10051);
		gp_enc_u64(&e, CTX);
		gp_enc_u64(&e, sizeof(src) - 1);
		h.flags = GP_PROTO_F_SYNC | GP_PROTO_F_STAGED;
		h.req_id = st.req++;
		gp_transport_send(st.ring, &h, e.buf, e.len, -1);
		gp_enc_reset(&e);
		EQ(get_info(&st, GP_INFO_DEVICE, 1, CL_DEVICE_TYPE, &v), -EPIPE,
		   "a staged message with nothing staged ends the session");
		sess_close(&st);

		EQ(sess_open(argv[1], &st), 0, "session S2 says hello");
		gp_enc_u64(&e, 4);
		gp_enc_u64(&e, 100);
		gp_enc_blob(&e, src, 4);
		call(&st, GP_OP_STAGE, &e, false, NULL);
		EQ(get_info(&st, GP_INFO_DEVICE, 1, CL_DEVICE_TYPE, &v), -EPIPE,
		   "a first slice not at offset 0 ends the session");
		sess_close(&st);

		EQ(sess_open(argv[1], &st), 0, "session S3 says hello");
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, (uint64_t)GP_PROTO_MAX_STAGE + 1);
		gp_enc_blob(&e, src, 4);
		call(&st, GP_OP_STAGE, &e, false, NULL);
		EQ(get_info(&st, GP_INFO_DEVICE, 1, CL_DEVICE_TYPE, &v), -EPIPE,
		   "staging more than 64 MiB ends the session");
		sess_close(&st);

		EQ(sess_open(argv[1], &st), 0, "session S4 says hello");
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 4);
		gp_enc_blob(&e, src, 8);
		call(&st, GP_OP_STAGE, &e, false, NULL);
		EQ(get_info(&st, GP_INFO_DEVICE, 1, CL_DEVICE_TYPE, &v), -EPIPE,
		   "a slice past the staged total ends the session");
		sess_close(&st);

		EQ(sess_open(argv[1], &st), 0, "session S5 says hello");
		gp_enc_u64(&e, 0);
		gp_enc_u64(&e, 8);
		gp_enc_blob(&e, src, 8);
		call(&st, GP_OP_STAGE, &e, false, NULL);
		gp_enc_u32(&e, GP_INFO_DEVICE);
		gp_enc_u64(&e, 1);
		gp_enc_u64(&e, 0);
		gp_enc_u32(&e, CL_DEVICE_TYPE);
		gp_enc_u64(&e, 0);
		gp_enc_u32(&e, 64);
		h.opcode = GP_OP_GET_INFO;
		h.flags = GP_PROTO_F_SYNC | GP_PROTO_F_STAGED;
		h.req_id = st.req++;
		gp_transport_send(st.ring, &h, e.buf, e.len, -1);
		gp_enc_reset(&e);
		EQ(gp_transport_recv(st.ring, &h, st.rx, GP_PROTO_MAX_PAYLOAD, NULL, 5000), -EPIPE,
		   "staged data for a call that takes none ends the session");
		sess_close(&st);
		EQ(get_info(&a, GP_INFO_MEM, BUF, CL_MEM_SIZE, &v), CL_SUCCESS,
		   "A's objects intact after S broke the staging rules");
	}
	/* garbage written straight into the shared ring, with a head counter
	 * that claims more than the ring holds */
	sess_close(&c);
	EQ(sess_open(argv[1], &c), 0, "session D says hello");
	{
		uint64_t bulk_size, head = (uint64_t)GP_SHM_RING_SIZE * 3;
		uint8_t *bulk = gp_shm_bulk(c.shm, &bulk_size);
		uint8_t *ring = bulk - 2 * (uint64_t)GP_SHM_RING_SIZE;
		uint8_t *ctl = ring - 4096 + 256; /* the request ring's control block */

		for (int i = 0; i < 4096; i++)
			ring[i] = (uint8_t)(i * 131 + 7);
		__atomic_store_n((uint64_t *)ctl, head, __ATOMIC_RELEASE);
	}
	usleep(300000); /* the server notices within its 100 ms futex timeout */
	EQ(get_info(&c, GP_INFO_DEVICE, 1, CL_DEVICE_TYPE, &v), -EPIPE, "D's session ended after garbage in the ring");
	EQ(get_info(&a, GP_INFO_MEM, BUF, CL_MEM_SIZE, &v), CL_SUCCESS, "A's objects are intact");
	EQ(v, 4096, "A's buffer size");
	sess_close(&c);
	sess_close(&b);
	sess_close(&a);
	gp_enc_free(&e);
	return t_done();
}
