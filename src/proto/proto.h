/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PV wire format, shared by gpupass-pvd and libgpupass-icd.so.
 *
 * Every message is a 24-byte header then a payload. All fields are
 * little-endian and fixed-width; nothing on the wire is a pointer, an enum
 * or a size_t. Payloads are read through a cursor (struct gp_dec) that
 * checks every length against what is left before it is used, so a
 * truncated or hostile message can only make the decoder report -EBADMSG.
 * See PROTOCOL.md for the message catalogue and how to add a call.
 */
#ifndef GP_PROTO_PROTO_H
#define GP_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GP_PROTO_MAGIC 0x56505047u /* "GPPV" read as little-endian bytes */
#define GP_PROTO_VERSION 1u
#define GP_PROTO_HDR_SIZE 24u
/* The largest payload either side accepts; bigger data goes through the
 * shared bulk region or is fetched in slices. */
#define GP_PROTO_MAX_PAYLOAD (1u << 20)
/* Strings (kernel names, build options, config names) are bounded too. */
#define GP_PROTO_MAX_STR (1u << 16)

/* Header flags. */
#define GP_PROTO_F_SYNC 0x1u  /* the sender waits for a reply */
#define GP_PROTO_F_REPLY 0x2u /* this message is a reply */
/* Its data fields are u64 lengths of consecutive bytes of the session's
 * staging buffer (filled by STAGE messages just before), not blobs. */
#define GP_PROTO_F_STAGED 0x4u
/* The most a staging buffer holds: program sources and binaries larger
 * than one message go through it. */
#define GP_PROTO_MAX_STAGE (64u << 20)
/* Entries of a sub-device partition list (CREATE_SUB_DEVICES). */
#define GP_PROTO_MAX_PARTITION 64u

/* The header as the C side sees it. On the wire it is written field by
 * field (gp_proto_hdr_pack), never by copying this struct. */
struct gp_proto_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t opcode;
	uint32_t flags;
	uint32_t req_id;
	uint32_t len; /* payload bytes after the header */
	uint32_t reserved; /* must be 0 */
};
_Static_assert(sizeof(struct gp_proto_hdr) == GP_PROTO_HDR_SIZE,
	       "the header is 24 bytes on the wire");

/* Handle kinds: every handle on the wire is a u64 id that the session's
 * table maps to an object of exactly one kind. */
#define GP_KIND_NONE 0u
#define GP_KIND_PLATFORM 1u
#define GP_KIND_DEVICE 2u
#define GP_KIND_CONTEXT 3u
#define GP_KIND_QUEUE 4u
#define GP_KIND_MEM 5u
#define GP_KIND_PROGRAM 6u
#define GP_KIND_KERNEL 7u
#define GP_KIND_EVENT 8u
#define GP_KIND_SAMPLER 9u
#define GP_KIND_MAX 9u

/* Opcodes (u16 on the wire). Numbers are stable: only append. */
#define GP_OP_HELLO 1u
#define GP_OP_STATUS 2u
#define GP_OP_GET_INFO 3u
#define GP_OP_CREATE_CONTEXT 4u
#define GP_OP_CREATE_QUEUE 5u
#define GP_OP_CREATE_BUFFER 6u
#define GP_OP_CREATE_SUBBUFFER 7u
#define GP_OP_CREATE_PROGRAM_SOURCE 8u
#define GP_OP_CREATE_PROGRAM_BINARY 9u
#define GP_OP_BUILD_PROGRAM 10u
#define GP_OP_CREATE_KERNEL 11u
#define GP_OP_RELEASE 12u
#define GP_OP_SET_KERNEL_ARG 13u
#define GP_OP_ENQUEUE_NDRANGE 14u
#define GP_OP_WRITE_BUFFER 15u
#define GP_OP_READ_BUFFER 16u
#define GP_OP_COPY_BUFFER 17u
#define GP_OP_FILL_BUFFER 18u
#define GP_OP_MARKER 19u
#define GP_OP_BARRIER 20u
#define GP_OP_FLUSH 21u
#define GP_OP_FINISH 22u
#define GP_OP_WAIT_EVENTS 23u
#define GP_OP_CREATE_USER_EVENT 24u
#define GP_OP_SET_USER_EVENT_STATUS 25u
#define GP_OP_CREATE_KERNELS_IN_PROGRAM 26u
#define GP_OP_SYNC 27u /* no-op round trip: returns the pending error */
#define GP_OP_COPY_BUFFER_RECT 28u
#define GP_OP_CREATE_SAMPLER 29u
#define GP_OP_CLONE_KERNEL 30u
#define GP_OP_CREATE_IMAGE 31u
#define GP_OP_IMAGE_FORMATS 32u
#define GP_OP_WRITE_IMAGE 33u
#define GP_OP_READ_IMAGE 34u
#define GP_OP_COPY_IMAGE 35u /* image->image, image->buffer, buffer->image */
#define GP_OP_FILL_IMAGE 36u
#define GP_OP_COMPILE_PROGRAM 37u
#define GP_OP_LINK_PROGRAM 38u
#define GP_OP_CREATE_PROGRAM_BUILTIN 39u
#define GP_OP_WAIT_POLL 40u /* a bounded wait: the session never blocks for long */
#define GP_OP_STAGE 41u /* a slice of data for the next message (F_STAGED) */
#define GP_OP_CREATE_SUB_DEVICES 42u
#define GP_OP_MAX 42u

/* GET_INFO selectors: which clGet*Info the server calls. */
#define GP_INFO_PLATFORM 1u
#define GP_INFO_DEVICE 2u
#define GP_INFO_CONTEXT 3u
#define GP_INFO_QUEUE 4u
#define GP_INFO_MEM 5u
#define GP_INFO_PROGRAM 6u
#define GP_INFO_PROGRAM_BUILD 7u  /* handle: program, aux: device */
#define GP_INFO_KERNEL 8u
#define GP_INFO_KERNEL_WORK_GROUP 9u /* handle: kernel, aux: device */
#define GP_INFO_KERNEL_ARG 10u    /* handle: kernel, aux: argument index */
#define GP_INFO_EVENT 11u
#define GP_INFO_EVENT_PROFILING 12u
#define GP_INFO_PROGRAM_BINARY 13u /* handle: program, aux: device index */
#define GP_INFO_SAMPLER 14u
#define GP_INFO_IMAGE 15u
#define GP_INFO_MAX 15u

/* Packs @h into 24 bytes at @out. */
void gp_proto_hdr_pack(const struct gp_proto_hdr *h, uint8_t out[GP_PROTO_HDR_SIZE]);

/* Unpacks and checks a header: -EBADMSG (short, bad magic, reserved not
 * 0), -EPROTONOSUPPORT (version), -EMSGSIZE (payload above @max_payload). */
int gp_proto_hdr_unpack(const uint8_t *in, size_t len, size_t max_payload,
			struct gp_proto_hdr *h);

/* A growable (or fixed, when made with gp_enc_init_fixed) output buffer.
 * Errors are sticky: after the first failure every put is a no-op and
 * gp_enc_error() says why, so call sites check once at the end. */
struct gp_enc {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t limit; /* largest payload allowed */
	bool owned;
	int err;
};

void gp_enc_init(struct gp_enc *e, size_t limit);
void gp_enc_init_fixed(struct gp_enc *e, void *buf, size_t cap);
void gp_enc_reset(struct gp_enc *e);
void gp_enc_free(struct gp_enc *e);
void gp_enc_u8(struct gp_enc *e, uint8_t v);
void gp_enc_u16(struct gp_enc *e, uint16_t v);
void gp_enc_u32(struct gp_enc *e, uint32_t v);
void gp_enc_u64(struct gp_enc *e, uint64_t v);
void gp_enc_i32(struct gp_enc *e, int32_t v);
void gp_enc_i64(struct gp_enc *e, int64_t v);
/* Raw bytes, no length prefix (the length is a field before them). */
void gp_enc_raw(struct gp_enc *e, const void *p, size_t n);
/* u32 length then bytes. */
void gp_enc_blob(struct gp_enc *e, const void *p, size_t n);
/* A string as a blob without its NUL; NULL encodes as length 0. */
void gp_enc_str(struct gp_enc *e, const char *s);
/* Reserves @n bytes and returns where to write them, or NULL. */
void *gp_enc_reserve(struct gp_enc *e, size_t n);
static inline int gp_enc_error(const struct gp_enc *e) { return e->err; }

/* A read cursor over one payload. Every get checks the remaining length;
 * on a shortfall it returns 0/NULL and sets err = -EBADMSG (sticky). */
struct gp_dec {
	const uint8_t *p;
	size_t len;
	size_t off;
	int err;
};

void gp_dec_init(struct gp_dec *d, const void *p, size_t len);
uint8_t gp_dec_u8(struct gp_dec *d);
uint16_t gp_dec_u16(struct gp_dec *d);
uint32_t gp_dec_u32(struct gp_dec *d);
uint64_t gp_dec_u64(struct gp_dec *d);
int32_t gp_dec_i32(struct gp_dec *d);
int64_t gp_dec_i64(struct gp_dec *d);
/* @n raw bytes, or NULL. */
const void *gp_dec_raw(struct gp_dec *d, size_t n);
/* u32 length (at most @max) then bytes; *n gets the length. */
const void *gp_dec_blob(struct gp_dec *d, size_t max, size_t *n);
/* A blob that must hold no NUL, copied into a new NUL-terminated string
 * (free() it); NULL with err set on error (-ENOMEM if out of memory). */
char *gp_dec_strdup(struct gp_dec *d, size_t max);
/* u32 count of @elem-byte items, checked against what is left and @max. */
uint32_t gp_dec_count(struct gp_dec *d, size_t elem, uint32_t max);
/* Marks the cursor failed unless everything was consumed. */
int gp_dec_finish(struct gp_dec *d);
static inline int gp_dec_error(const struct gp_dec *d) { return d->err; }
static inline size_t gp_dec_left(const struct gp_dec *d) { return d->len - d->off; }

/* Name of an opcode for log lines ("?" if unknown). */
const char *gp_proto_op_name(uint16_t op);
/* Name of a handle kind for log lines. */
const char *gp_proto_kind_name(uint32_t kind);

/* The size of a kernel argument of the built-in scalar or vector type
 * named @t, as CL_KERNEL_ARG_TYPE_NAME gives it (OpenCL C 3.0, 6.3.1-
 * 6.3.2); size_t, ptrdiff_t, intptr_t, uintptr_t from @addr_bits (0:
 * unknown). 0 when it is not one (a struct, a typedef: not checked). */
uint32_t gp_cl_type_size(const char *t, unsigned addr_bits);

#endif
