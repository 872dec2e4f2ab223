/* SPDX-License-Identifier: Apache-2.0 */
/* Stream mode input from a hostile guest (a virtio-serial port): the HELLO
 * resync scanner and the inline transport's framing, on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/transport.h"

static uint8_t buf[GP_PROTO_MAX_PAYLOAD];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_transport *t;
	struct gp_proto_hdr h;
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	int sv[2];

	if (size > 16384 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	if (size && write(sv[0], data, size) != (ssize_t)size)
		abort();
	close(sv[0]);
	/* the server's resync: hunt, then read the payload the header says */
	while (gp_stream_find(sv[1], GP_OP_HELLO, hdr, 0) == 0) {
		if (gp_proto_hdr_unpack(hdr, sizeof(hdr), GP_PROTO_MAX_PAYLOAD, &h) < 0)
			continue;
		if (gp_stream_read(sv[1], buf, h.len, 0) < 0)
			break;
	}
	close(sv[1]);
	/* the same bytes as a stream of frames */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	if (size && write(sv[0], data, size) != (ssize_t)size)
		abort();
	close(sv[0]);
	if (gp_transport_stream_new(sv[1], &t) < 0) {
		close(sv[1]);
		return 0;
	}
	while (gp_transport_recv(t, &h, buf, sizeof(buf), NULL, 0) == 0) {
	}
	gp_transport_free(t);
	return 0;
}
