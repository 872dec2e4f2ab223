/* SPDX-License-Identifier: Apache-2.0 */
/* Stream mode (src/transport/stream.c): the inline transport, resync on a
 * HELLO through garbage, and finding a virtio-serial port by name in a
 * fake sysfs tree. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "transport/transport.h"

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_round_trip(void **state)
{
	struct gp_transport *a, *b;
	struct gp_proto_hdr h = { .opcode = GP_OP_FINISH, .flags = GP_PROTO_F_SYNC, .req_id = 7 }, g;
	uint8_t buf[64];
	int sv[2], fd;

	(void)state;
	pair(sv);
	assert_int_equal(gp_transport_stream_new(sv[0], &a), 0);
	assert_int_equal(gp_transport_stream_new(sv[1], &b), 0);
	assert_int_equal(gp_transport_send(a, &h, "abcdef", 6, -1), 0);
	assert_int_equal(gp_transport_recv(b, &g, buf, sizeof(buf), &fd, 1000), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(g.opcode, GP_OP_FINISH);
	assert_int_equal(g.req_id, 7);
	assert_int_equal(g.len, 6);
	assert_memory_equal(buf, "abcdef", 6);
	/* a byte stream carries no descriptors */
	assert_int_equal(gp_transport_send(a, &h, NULL, 0, 0), -EOPNOTSUPP);
	/* nothing there: a timeout, not a hang */
	assert_int_equal(gp_transport_recv(b, &g, buf, sizeof(buf), NULL, 50), -ETIMEDOUT);
	/* more than the receiver's room: refused before reading it */
	assert_int_equal(gp_transport_send(a, &h, "abcdef", 6, -1), 0);
	assert_int_equal(gp_transport_recv(b, &g, buf, 4, NULL, 1000), -EMSGSIZE);
	gp_transport_free(a);
	/* peer gone */
	assert_int_equal(gp_transport_recv(b, &g, buf, sizeof(buf), NULL, 1000), -EPIPE);
	gp_transport_free(b);
}

static void test_garbage_rejected(void **state)
{
	struct gp_transport *b;
	struct gp_proto_hdr g;
	uint8_t junk[GP_PROTO_HDR_SIZE], buf[16];
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(gp_transport_stream_new(sv[1], &b), 0);
	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(write(sv[0], junk, sizeof(junk)), (ssize_t)sizeof(junk));
	assert_int_equal(gp_transport_recv(b, &g, buf, sizeof(buf), NULL, 1000), -EBADMSG);
	/* a header, then a payload that stops short: broken, not a hang */
	{
		struct gp_proto_hdr h = { .magic = GP_PROTO_MAGIC, .version = GP_PROTO_VERSION,
					  .opcode = GP_OP_SYNC, .len = 8 };
		uint8_t hdr[GP_PROTO_HDR_SIZE];

		gp_proto_hdr_pack(&h, hdr);
		assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
		assert_int_equal(write(sv[0], "abc", 3), 3);
		close(sv[0]);
		assert_int_equal(gp_transport_recv(b, &g, buf, sizeof(buf), NULL, 1000), -EPIPE);
	}
	gp_transport_free(b);
}

static void test_find_hello(void **state)
{
	struct gp_proto_hdr h = { .magic = GP_PROTO_MAGIC, .version = GP_PROTO_VERSION,
				  .opcode = GP_OP_HELLO, .flags = GP_PROTO_F_SYNC, .req_id = 99,
				  .len = 3 }, other = h, g;
	uint8_t hdr[GP_PROTO_HDR_SIZE], got[GP_PROTO_HDR_SIZE], noise[300];
	char payload[4] = "";
	int sv[2];

	(void)state;
	pair(sv);
	/* noise, the tail of a dead program's message, another opcode's
	 * header, half a HELLO signature, then the HELLO */
	for (size_t i = 0; i < sizeof(noise); i++)
		noise[i] = (uint8_t)(i * 7 + 0x47);
	assert_int_equal(write(sv[0], noise, sizeof(noise)), (ssize_t)sizeof(noise));
	other.opcode = GP_OP_FINISH;
	gp_proto_hdr_pack(&other, hdr);
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	gp_proto_hdr_pack(&h, hdr);
	assert_int_equal(write(sv[0], hdr, 5), 5);
	assert_int_equal(write(sv[0], hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	assert_int_equal(write(sv[0], "xyz", 3), 3);
	assert_int_equal(gp_stream_find(sv[1], GP_OP_HELLO, got, 1000), 0);
	assert_int_equal(gp_proto_hdr_unpack(got, sizeof(got), 4096, &g), 0);
	assert_int_equal(g.opcode, GP_OP_HELLO);
	assert_int_equal(g.req_id, 99);
	/* it stopped right after the header: the payload is next */
	assert_int_equal(gp_stream_read(sv[1], payload, 3, 1000), 0);
	assert_string_equal(payload, "xyz");
	/* none to find: a timeout; the peer gone: -EPIPE */
	assert_int_equal(write(sv[0], noise, 100), 100);
	assert_int_equal(gp_stream_find(sv[1], GP_OP_HELLO, got, 100), -ETIMEDOUT);
	close(sv[0]);
	assert_int_equal(gp_stream_find(sv[1], GP_OP_HELLO, got, 1000), -EPIPE);
	close(sv[1]);
}

static void put(const char *root, const char *rel, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void mk(const char *root, const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static void test_serial_find(void **state)
{
	char root[] = "/tmp/gp-serial-XXXXXX", path[600], small[8];

	(void)state;
	assert_non_null(mkdtemp(root));
	/* no virtio-ports at all */
	assert_int_equal(gp_serial_find(root, "org.gpupass.pv.0", path, sizeof(path)), -ENOENT);
	mk(root, "sys");
	mk(root, "sys/class");
	mk(root, "sys/class/virtio-ports");
	mk(root, "sys/class/virtio-ports/vport0p1");
	mk(root, "sys/class/virtio-ports/vport0p2");
	mk(root, "sys/class/virtio-ports/vport1p1");
	mk(root, "sys/class/virtio-ports/vport1p2"); /* no name file */
	put(root, "sys/class/virtio-ports/vport0p1/name", "org.qemu.guest_agent.0\n");
	put(root, "sys/class/virtio-ports/vport0p2/name", "org.gpupass.pv.00\n"); /* a longer name */
	put(root, "sys/class/virtio-ports/vport1p1/name", "org.gpupass.pv.0\n");
	assert_int_equal(gp_serial_find(root, "org.gpupass.pv.0", path, sizeof(path)), 0);
	assert_true(strlen(path) > strlen(root));
	assert_string_equal(path + strlen(root), "/dev/vport1p1");
	assert_int_equal(gp_serial_find(root, "org.gpupass.pv.1", path, sizeof(path)), -ENOENT);
	assert_int_equal(gp_serial_find(root, "", path, sizeof(path)), -EINVAL);
	assert_int_equal(gp_serial_find(root, "../x", path, sizeof(path)), -EINVAL);
	assert_int_equal(gp_serial_find(root, NULL, path, sizeof(path)), -EINVAL);
	assert_int_equal(gp_serial_find(root, "org.gpupass.pv.0", small, sizeof(small)), -ENAMETOOLONG);
	/* garbage in a name file: no match, no crash */
	put(root, "sys/class/virtio-ports/vport1p1/name", "\x01\xff\n\n  ");
	assert_int_equal(gp_serial_find(root, "org.gpupass.pv.0", path, sizeof(path)), -ENOENT);
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_garbage_rejected),
		cmocka_unit_test(test_find_hello),
		cmocka_unit_test(test_serial_find),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
