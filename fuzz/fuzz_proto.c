/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the PV wire decoder: the header check, the field
 * cursor driven by the input itself, and the server side of the
 * shared-memory ring reading whatever a hostile guest wrote into it
 * (message bytes and the ring's head counter).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/proto.h"
#include "transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fields(const uint8_t *data, size_t size)
{
	struct gp_dec d;
	size_t n;

	if (size < 1)
		return;
	/* The first bytes choose which getters run, on the rest. */
	size_t prog = data[0] % 16 + 1;

	if (size < 1 + prog)
		return;
	gp_dec_init(&d, data + 1 + prog, size - 1 - prog);
	for (size_t i = 0; i < prog; i++) {
		switch (data[1 + i] % 9) {
		case 0: gp_dec_u8(&d); break;
		case 1: gp_dec_u16(&d); break;
		case 2: gp_dec_u32(&d); break;
		case 3: gp_dec_u64(&d); break;
		case 4: gp_dec_blob(&d, data[1 + i], &n); break;
		case 5: free(gp_dec_strdup(&d, 1u << 16)); break;
		case 6: gp_dec_count(&d, 8, 4096); break;
		case 7: gp_dec_raw(&d, data[1 + i] / 9); break;
		default: gp_dec_finish(&d); break;
		}
	}
}

static void fuzz_ring(const uint8_t *data, size_t size)
{
	static struct gp_shm *cs, *ss;
	static struct gp_transport *srv;
	static uint8_t *buf;
	struct gp_proto_hdr h;
	uint64_t bulk;
	uint8_t *ring;

	if (!cs) {
		/* One region for the whole run: the server transport's view is
		 * rebuilt per input. */
		if (gp_shm_create(4096, &cs) < 0 || gp_shm_attach(dup(gp_shm_fd(cs)), &ss) < 0)
			abort();
		buf = malloc(GP_PROTO_MAX_PAYLOAD);
	}
	if (size < 8)
		return;
	/* The request ring sits right after the 4 KiB header page. */
	ring = (uint8_t *)gp_shm_bulk(cs, &bulk) - 2 * GP_SHM_RING_SIZE;
	memset(ring, 0, 4096);
	memcpy(ring, data + 8, size - 8 < GP_SHM_RING_SIZE ? size - 8 : GP_SHM_RING_SIZE);
	/* head (first field of the request ring's control block, at 256) */
	memcpy((uint8_t *)gp_shm_bulk(cs, &bulk) - 2 * GP_SHM_RING_SIZE - 4096 + 256, data, 8);
	/* tail and the rest start from 0 for each input */
	memset((uint8_t *)gp_shm_bulk(cs, &bulk) - 2 * GP_SHM_RING_SIZE - 4096 + 256 + 64, 0, 8);
	if (gp_transport_ring_new(ss, GP_RING_SERVER, -1, 0, &srv) < 0)
		abort();
	for (int i = 0; i < 8; i++)
		if (gp_transport_recv(srv, &h, buf, GP_PROTO_MAX_PAYLOAD, NULL, 0) < 0)
			break;
	gp_transport_free(srv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_proto_hdr h;

	gp_proto_hdr_unpack(data, size, GP_PROTO_MAX_PAYLOAD, &h);
	fuzz_fields(data, size);
	fuzz_ring(data, size);
	return 0;
}
