/* SPDX-License-Identifier: Apache-2.0 */
#include "proto.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Little-endian fields (PROTOCOL.md). Whole-word copies with a byte-order
 * conversion: the compiler makes each one load or store (plus a byte swap
 * on a big-endian host); a byte loop cost ~70 instructions a field, a
 * tenth of a pipelined enqueue's cost on each side. */
static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	uint64_t v64 = htole64(v);
	uint32_t v32 = htole32((uint32_t)v);
	uint16_t v16 = htole16((uint16_t)v);

	switch (n) {
	case 8: memcpy(p, &v64, 8); break;
	case 4: memcpy(p, &v32, 4); break;
	case 2: memcpy(p, &v16, 2); break;
	default: p[0] = (uint8_t)v; break;
	}
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;

	switch (n) {
	case 8: memcpy(&v64, p, 8); return le64toh(v64);
	case 4: memcpy(&v32, p, 4); return le32toh(v32);
	case 2: memcpy(&v16, p, 2); return le16toh(v16);
	default: return p[0];
	}
}

void gp_proto_hdr_pack(const struct gp_proto_hdr *h, uint8_t out[GP_PROTO_HDR_SIZE])
{
	put_le(out + 0, h->magic, 4);
	put_le(out + 4, h->version, 2);
	put_le(out + 6, h->opcode, 2);
	put_le(out + 8, h->flags, 4);
	put_le(out + 12, h->req_id, 4);
	put_le(out + 16, h->len, 4);
	put_le(out + 20, h->reserved, 4);
}

int gp_proto_hdr_unpack(const uint8_t *in, size_t len, size_t max_payload,
			struct gp_proto_hdr *h)
{
	struct gp_proto_hdr t;

	if (!in || len < GP_PROTO_HDR_SIZE)
		return -EBADMSG;
	t.magic = (uint32_t)get_le(in, 4);
	t.version = (uint16_t)get_le(in + 4, 2);
	t.opcode = (uint16_t)get_le(in + 6, 2);
	t.flags = (uint32_t)get_le(in + 8, 4);
	t.req_id = (uint32_t)get_le(in + 12, 4);
	t.len = (uint32_t)get_le(in + 16, 4);
	t.reserved = (uint32_t)get_le(in + 20, 4);
	if (t.magic != GP_PROTO_MAGIC || t.reserved != 0)
		return -EBADMSG;
	if (t.flags & ~(GP_PROTO_F_SYNC | GP_PROTO_F_REPLY | GP_PROTO_F_STAGED))
		return -EBADMSG;
	if (t.version != GP_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (t.len > max_payload)
		return -EMSGSIZE;
	*h = t;
	return 0;
}

void gp_enc_init(struct gp_enc *e, size_t limit)
{
	memset(e, 0, sizeof(*e));
	e->owned = true;
	e->limit = limit;
}

void gp_enc_init_fixed(struct gp_enc *e, void *buf, size_t cap)
{
	memset(e, 0, sizeof(*e));
	e->buf = buf;
	e->cap = cap;
	e->limit = cap;
}

void gp_enc_reset(struct gp_enc *e)
{
	e->len = 0;
	e->err = 0;
}

void gp_enc_free(struct gp_enc *e)
{
	if (e->owned)
		free(e->buf);
	e->buf = NULL;
	e->len = e->cap = 0;
}

void *gp_enc_reserve(struct gp_enc *e, size_t n)
{
	void *p;

	if (e->err)
		return NULL;
	if (n > e->limit || e->len > e->limit - n) {
		e->err = -EMSGSIZE;
		return NULL;
	}
	if (e->len + n > e->cap) {
		size_t cap = e->cap ? e->cap : 256;
		uint8_t *nb;

		if (!e->owned) {
			e->err = -EMSGSIZE;
			return NULL;
		}
		while (cap < e->len + n)
			cap *= 2;
		nb = realloc(e->buf, cap);
		if (!nb) {
			e->err = -ENOMEM;
			return NULL;
		}
		e->buf = nb;
		e->cap = cap;
	}
	p = e->buf + e->len;
	e->len += n;
	return p;
}

static void enc_le(struct gp_enc *e, uint64_t v, unsigned n)
{
	uint8_t *p = gp_enc_reserve(e, n);

	if (p)
		put_le(p, v, n);
}

void gp_enc_u8(struct gp_enc *e, uint8_t v) { enc_le(e, v, 1); }
void gp_enc_u16(struct gp_enc *e, uint16_t v) { enc_le(e, v, 2); }
void gp_enc_u32(struct gp_enc *e, uint32_t v) { enc_le(e, v, 4); }
void gp_enc_u64(struct gp_enc *e, uint64_t v) { enc_le(e, v, 8); }
void gp_enc_i32(struct gp_enc *e, int32_t v) { enc_le(e, (uint32_t)v, 4); }
void gp_enc_i64(struct gp_enc *e, int64_t v) { enc_le(e, (uint64_t)v, 8); }

void gp_enc_raw(struct gp_enc *e, const void *p, size_t n)
{
	void *d;

	if (n == 0)
		return;
	d = gp_enc_reserve(e, n);
	if (d)
		memcpy(d, p, n);
}

void gp_enc_blob(struct gp_enc *e, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		if (!e->err)
			e->err = -EMSGSIZE;
		return;
	}
	gp_enc_u32(e, (uint32_t)n);
	gp_enc_raw(e, p, n);
}

void gp_enc_str(struct gp_enc *e, const char *s)
{
	gp_enc_blob(e, s, s ? strlen(s) : 0);
}

void gp_dec_init(struct gp_dec *d, const void *p, size_t len)
{
	d->p = p;
	d->len = p ? len : 0;
	d->off = 0;
	d->err = 0;
}

static const uint8_t *dec_take(struct gp_dec *d, size_t n)
{
	const uint8_t *p;

	if (d->err)
		return NULL;
	if (n > d->len - d->off) {
		d->err = -EBADMSG;
		return NULL;
	}
	p = d->p + d->off;
	d->off += n;
	return p;
}

static uint64_t dec_le(struct gp_dec *d, unsigned n)
{
	const uint8_t *p = dec_take(d, n);

	return p ? get_le(p, n) : 0;
}

uint8_t gp_dec_u8(struct gp_dec *d) { return (uint8_t)dec_le(d, 1); }
uint16_t gp_dec_u16(struct gp_dec *d) { return (uint16_t)dec_le(d, 2); }
uint32_t gp_dec_u32(struct gp_dec *d) { return (uint32_t)dec_le(d, 4); }
uint64_t gp_dec_u64(struct gp_dec *d) { return dec_le(d, 8); }
int32_t gp_dec_i32(struct gp_dec *d) { return (int32_t)(uint32_t)dec_le(d, 4); }
int64_t gp_dec_i64(struct gp_dec *d) { return (int64_t)dec_le(d, 8); }

const void *gp_dec_raw(struct gp_dec *d, size_t n)
{
	static const uint8_t empty[1];

	if (n == 0)
		return d->err ? NULL : empty;
	return dec_take(d, n);
}

const void *gp_dec_blob(struct gp_dec *d, size_t max, size_t *n)
{
	uint32_t l = gp_dec_u32(d);
	const void *p;

	if (d->err)
		return NULL;
	if (l > max) {
		d->err = -EBADMSG;
		return NULL;
	}
	p = gp_dec_raw(d, l);
	if (p && n)
		*n = l;
	return p;
}

char *gp_dec_strdup(struct gp_dec *d, size_t max)
{
	size_t n = 0;
	const char *p = gp_dec_blob(d, max, &n);
	char *s;

	if (!p)
		return NULL;
	if (memchr(p, '\0', n)) {
		d->err = -EBADMSG;
		return NULL;
	}
	s = malloc(n + 1);
	if (!s) {
		d->err = -ENOMEM;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

uint32_t gp_dec_count(struct gp_dec *d, size_t elem, uint32_t max)
{
	uint32_t n = gp_dec_u32(d);

	if (d->err)
		return 0;
	if (n > max || (elem && n > gp_dec_left(d) / elem)) {
		d->err = -EBADMSG;
		return 0;
	}
	return n;
}

int gp_dec_finish(struct gp_dec *d)
{
	if (!d->err && d->off != d->len)
		d->err = -EBADMSG;
	return d->err;
}

const char *gp_proto_op_name(uint16_t op)
{
	static const char *const names[] = {
		[GP_OP_HELLO] = "hello",
		[GP_OP_STATUS] = "status",
		[GP_OP_GET_INFO] = "get-info",
		[GP_OP_CREATE_CONTEXT] = "create-context",
		[GP_OP_CREATE_QUEUE] = "create-queue",
		[GP_OP_CREATE_BUFFER] = "create-buffer",
		[GP_OP_CREATE_SUBBUFFER] = "create-subbuffer",
		[GP_OP_CREATE_PROGRAM_SOURCE] = "create-program-source",
		[GP_OP_CREATE_PROGRAM_BINARY] = "create-program-binary",
		[GP_OP_BUILD_PROGRAM] = "build-program",
		[GP_OP_CREATE_KERNEL] = "create-kernel",
		[GP_OP_RELEASE] = "release",
		[GP_OP_SET_KERNEL_ARG] = "set-kernel-arg",
		[GP_OP_ENQUEUE_NDRANGE] = "enqueue-ndrange",
		[GP_OP_WRITE_BUFFER] = "write-buffer",
		[GP_OP_READ_BUFFER] = "read-buffer",
		[GP_OP_COPY_BUFFER] = "copy-buffer",
		[GP_OP_FILL_BUFFER] = "fill-buffer",
		[GP_OP_MARKER] = "marker",
		[GP_OP_BARRIER] = "barrier",
		[GP_OP_FLUSH] = "flush",
		[GP_OP_FINISH] = "finish",
		[GP_OP_WAIT_EVENTS] = "wait-events",
		[GP_OP_CREATE_USER_EVENT] = "create-user-event",
		[GP_OP_SET_USER_EVENT_STATUS] = "set-user-event-status",
		[GP_OP_CREATE_KERNELS_IN_PROGRAM] = "create-kernels-in-program",
		[GP_OP_SYNC] = "sync",
		[GP_OP_COPY_BUFFER_RECT] = "copy-buffer-rect",
		[GP_OP_CREATE_SAMPLER] = "create-sampler",
		[GP_OP_CLONE_KERNEL] = "clone-kernel",
		[GP_OP_CREATE_IMAGE] = "create-image",
		[GP_OP_IMAGE_FORMATS] = "image-formats",
		[GP_OP_WRITE_IMAGE] = "write-image",
		[GP_OP_READ_IMAGE] = "read-image",
		[GP_OP_COPY_IMAGE] = "copy-image",
		[GP_OP_FILL_IMAGE] = "fill-image",
		[GP_OP_COMPILE_PROGRAM] = "compile-program",
		[GP_OP_LINK_PROGRAM] = "link-program",
		[GP_OP_CREATE_PROGRAM_BUILTIN] = "create-program-builtin",
		[GP_OP_WAIT_POLL] = "wait-poll",
		[GP_OP_STAGE] = "stage",
		[GP_OP_CREATE_SUB_DEVICES] = "create-sub-devices",
	};

	if (op < sizeof(names) / sizeof(names[0]) && names[op])
		return names[op];
	return "?";
}

const char *gp_proto_kind_name(uint32_t kind)
{
	static const char *const names[] = {
		"none", "platform", "device", "context", "queue", "memory object",
		"program", "kernel", "event", "sampler",
	};

	return kind <= GP_KIND_MAX ? names[kind] : "?";
}

uint32_t gp_cl_type_size(const char *t, unsigned addr_bits)
{
	static const struct {
		const char *name;
		uint32_t size;
	} base[] = {
		{ "char", 1 }, { "uchar", 1 }, { "short", 2 }, { "ushort", 2 }, { "half", 2 },
		{ "int", 4 },  { "uint", 4 },  { "float", 4 }, { "long", 8 },   { "ulong", 8 },
		{ "double", 8 },
	};
	size_t n = 0;
	unsigned long vec = 1;

	if (strcmp(t, "size_t") == 0 || strcmp(t, "ptrdiff_t") == 0 || strcmp(t, "intptr_t") == 0 ||
	    strcmp(t, "uintptr_t") == 0)
		return addr_bits == 32 ? 4 : addr_bits == 64 ? 8 : 0;
	while (t[n] >= 'a' && t[n] <= 'z')
		n++;
	if (t[n]) {
		char *end;

		vec = strtoul(t + n, &end, 10);
		if (*end || (vec != 2 && vec != 3 && vec != 4 && vec != 8 && vec != 16))
			return 0;
	}
	/* 3-component vectors take the room of 4 (OpenCL C 3.0, 6.3.5). */
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		if (strlen(base[i].name) == n && strncmp(base[i].name, t, n) == 0)
			return base[i].size * (uint32_t)(vec == 3 ? 4 : vec);
	return 0;
}
