/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A guest that opens many sessions, or stages uploads it never uses,
 * talking the PV protocol directly (issue 10):
 *   pv_flood stage SOCKET N MIB   N sessions each stage MIB MiB and go idle
 *                                 ("ready"; waits for a line on stdin), then
 *                                 each uses its staging for a program:
 *                                 those beyond memory_max get
 *                                 CL_OUT_OF_RESOURCES, the rest succeed
 *   pv_flood sessions SOCKET N    N sessions opened one after the other and
 *                                 kept: prints how many were served and how
 *                                 many refused (and why); "ready", waits for
 *                                 a line; then the first one still works
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

/* 0: served; 1: refused (@why gets the reason); -errno: no answer. */
static int sess_open(const char *path, struct sess *s, char *why, size_t cap)
{
	struct gp_proto_hdr h = { .opcode = GP_OP_HELLO, .flags = GP_PROTO_F_SYNC, .req_id = 1 };
	struct gp_enc e;
	struct gp_dec d;
	int fd, r;

	memset(s, 0, sizeof(*s));
	s->rx = malloc(GP_PROTO_MAX_PAYLOAD);
	if ((r = gp_unix_connect(path, &fd)) < 0)
		return r;
	if ((r = gp_transport_unix_new(fd, &s->sock)) < 0) {
		close(fd);
		return r;
	}
	if ((r = gp_shm_create(1 << 16, &s->shm)) < 0)
		return r;
	gp_enc_init(&e, 4096);
	gp_enc_u32(&e, GP_PROTO_VERSION);
	gp_enc_u64(&e, 1 << 16);
	gp_enc_str(&e, "pv_flood");
	gp_enc_u64(&e, 0);
	gp_enc_u64(&e, 0);
	r = gp_transport_send(s->sock, &h, e.buf, e.len, gp_shm_fd(s->shm));
	gp_enc_free(&e);
	if (r == 0)
		r = gp_transport_recv(s->sock, &h, s->rx, GP_PROTO_MAX_PAYLOAD, NULL, 15000);
	if (r < 0)
		return r;
	gp_dec_init(&d, s->rx, h.len);
	if (gp_dec_i32(&d) != 0) {
		char *m = gp_dec_strdup(&d, 4096);

		snprintf(why, cap, "%s", m ? m : "?");
		free(m);
		return 1;
	}
	s->req = 2;
	return gp_transport_ring_new(s->shm, GP_RING_CLIENT, fd, 100000, &s->ring);
}

static void sess_close(struct sess *s)
{
	gp_transport_free(s->ring);
	gp_transport_free(s->sock);
	gp_shm_free(s->shm);
	free(s->rx);
	memset(s, 0, sizeof(*s));
}

static int call(struct sess *s, uint16_t op, uint32_t flags, struct gp_enc *e, bool sync)
{
	struct gp_proto_hdr h = { .opcode = op, .flags = flags | (sync ? GP_PROTO_F_SYNC : 0),
				  .req_id = s->req++ };
	struct gp_dec d;
	int r = gp_transport_send(s->ring, &h, e->buf, e->len, -1);

	gp_enc_reset(e);
	if (r < 0 || !sync)
		return r;
	r = gp_transport_recv(s->ring, &h, s->rx, GP_PROTO_MAX_PAYLOAD, NULL, 60000);
	if (r < 0)
		return r;
	gp_dec_init(&d, s->rx, h.len);
	return gp_dec_i32(&d);
}

#define CTX 0x10000u
#define PROG 0x10001u

static int make_context(struct sess *s)
{
	struct gp_enc e;
	int r;

	gp_enc_init(&e, 64);
	gp_enc_u64(&e, CTX);
	gp_enc_u32(&e, 1);
	gp_enc_u64(&e, 1);
	r = call(s, GP_OP_CREATE_CONTEXT, 0, &e, true);
	gp_enc_free(&e);
	return r;
}

static void wait_line(void)
{
	char line[16];

	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
}

static int stage(const char *path, int n, int mib)
{
	static const char body[] = "\n__kernel void k(__global int *a) { a[0] = 1; }\n";
	uint64_t total = (uint64_t)mib << 20, slice = GP_PROTO_MAX_PAYLOAD - 4096;
	struct sess *s = calloc((size_t)n, sizeof(*s));
	char *src = malloc(total), why[512];
	int made = 0, refused = 0, other = 0;
	struct gp_enc e;

	memset(src, 'x', total);
	memcpy(src, "/*", 2);
	memcpy(src + total - sizeof(body) - 1, "*/", 2);
	memcpy(src + total - sizeof(body) + 1, body, sizeof(body) - 1);
	gp_enc_init(&e, GP_PROTO_MAX_PAYLOAD);
	for (int i = 0; i < n; i++) {
		int r = sess_open(path, &s[i], why, sizeof(why));

		if (r != 0 || make_context(&s[i]) != 0) {
			printf("Bail out! session %d: %d %s\n", i, r, r == 1 ? why : "");
			return 1;
		}
		for (uint64_t off = 0; off < total; off += slice) {
			uint64_t len = total - off < slice ? total - off : slice;

			gp_enc_u64(&e, off);
			gp_enc_u64(&e, total);
			gp_enc_blob(&e, src + off, (size_t)len);
			if (call(&s[i], GP_OP_STAGE, 0, &e, false) < 0) {
				printf("Bail out! session %d: STAGE not sent\n", i);
				return 1;
			}
		}
		/* No round trip here: any other message would drop the
		 * staging (the test watches the server's call count). */
	}
	OK(1, "%d sessions each staged %d MiB and went idle", n, mib);
	wait_line();
	for (int i = 0; i < n; i++) {
		int r;

		gp_enc_u64(&e, PROG);
		gp_enc_u64(&e, CTX);
		gp_enc_u64(&e, total);
		r = call(&s[i], GP_OP_CREATE_PROGRAM_SOURCE, GP_PROTO_F_STAGED, &e, true);
		if (r == CL_SUCCESS)
			made++;
		else if (r == CL_OUT_OF_RESOURCES)
			refused++;
		else
			other++;
		printf("# session %d: program from its staging: %d\n", i, r);
		sess_close(&s[i]);
	}
	OK(made >= 1 && refused >= 1 && other == 0,
	   "programs from the staged data: %d made, %d refused with CL_OUT_OF_RESOURCES, %d other",
	   made, refused, other);
	gp_enc_free(&e);
	free(src);
	free(s);
	return 0;
}

static int sessions(const char *path, int n)
{
	struct sess *s = calloc((size_t)n, sizeof(*s));
	int served = 0, refused = 0, lost = 0, first_refused = -1;
	char why[512] = "", first_why[512] = "";

	for (int i = 0; i < n; i++) {
		int r = sess_open(path, &s[i], why, sizeof(why));

		if (r == 0) {
			served++;
			if (first_refused >= 0)
				printf("# session %d served after %d was refused\n", i, first_refused);
			continue;
		}
		if (r == 1) {
			refused++;
			if (first_refused < 0) {
				first_refused = i;
				snprintf(first_why, sizeof(first_why), "%s", why);
			}
		} else {
			lost++;
		}
		sess_close(&s[i]);
	}
	printf("# %d sessions: %d served, %d refused (first: %d, \"%s\"), %d without an answer\n", n,
	       served, refused, first_refused, first_why, lost);
	printf("served %d refused %d lost %d\n", served, refused, lost);
	OK(refused == 0 || strstr(first_why, "max_sessions") != NULL,
	   "the refusal names max_sessions: \"%s\"", first_why);
	wait_line();
	OK(served > 0 && make_context(&s[0]) == 0, "the first session still works");
	for (int i = 0; i < n; i++)
		if (s[i].sock)
			sess_close(&s[i]);
	free(s);
	return 0;
}

int main(int argc, char **argv)
{
	int r = 2;

	if (argc == 5 && strcmp(argv[1], "stage") == 0)
		r = stage(argv[2], atoi(argv[3]), atoi(argv[4]));
	else if (argc == 4 && strcmp(argv[1], "sessions") == 0)
		r = sessions(argv[2], atoi(argv[3]));
	else
		fprintf(stderr, "usage: pv_flood stage SOCKET N MIB | sessions SOCKET N\n");
	return r ? r : t_done();
}
