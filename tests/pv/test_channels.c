/* SPDX-License-Identifier: Apache-2.0 */
/* Channel addresses (transport/addr), the TLS helpers that parse outside
 * input, the plain-TCP relay, and the config keys of the channels. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "pvd/config.h"
#include "transport/addr.h"
#include "transport/channel.h"
#include "transport/tls.h"
#include "transport/transport.h"

static void test_addr_good(void **state)
{
	struct gp_addr a;

	assert_int_equal(gp_addr_parse("unix:/run/gpupass/pv.sock", false, &a), 0);
	assert_int_equal(a.kind, GP_ADDR_UNIX);
	assert_string_equal(a.text, "/run/gpupass/pv.sock");
	assert_int_equal(gp_addr_parse("unix-stream:/x", false, &a), 0);
	assert_int_equal(a.kind, GP_ADDR_UNIX_STREAM);
	assert_int_equal(gp_addr_parse("serial:org.gpupass.pv.0", false, &a), 0);
	assert_int_equal(a.kind, GP_ADDR_SERIAL);
	assert_string_equal(a.text, "org.gpupass.pv.0");
	assert_int_equal(gp_addr_parse("vsock:2:5555", false, &a), 0);
	assert_int_equal(a.kind, GP_ADDR_VSOCK);
	assert_int_equal(a.cid, 2);
	assert_int_equal(a.port, 5555);
	assert_int_equal(gp_addr_parse("vsock:4294967294:4294967294", false, &a), 0);
	assert_int_equal(a.cid, 4294967294u);
	/* a listener may leave the CID out: any */
	assert_int_equal(gp_addr_parse("vsock:5555", true, &a), 0);
	assert_int_equal(a.cid, GP_ADDR_CID_ANY);
	assert_int_equal(a.port, 5555);
	assert_int_equal(gp_addr_parse("tcp:127.0.0.1:7000", false, &a), 0);
	assert_int_equal(a.kind, GP_ADDR_TCP);
	assert_string_equal(a.text, "127.0.0.1");
	assert_int_equal(a.port, 7000);
	assert_true(gp_addr_is_loopback(&a));
	assert_int_equal(gp_addr_parse("tcp:[::1]:65535", true, &a), 0);
	assert_string_equal(a.text, "::1");
	assert_int_equal(a.port, 65535);
	assert_true(gp_addr_is_loopback(&a));
	assert_int_equal(gp_addr_parse("tcp:127.255.0.9:1", true, &a), 0);
	assert_true(gp_addr_is_loopback(&a));
	assert_int_equal(gp_addr_parse("tcp:gpu-host.example.org:5556", false, &a), 0);
	assert_string_equal(a.text, "gpu-host.example.org");
	assert_false(gp_addr_is_loopback(&a));
	/* names never count as loopback: they resolve where they like */
	assert_int_equal(gp_addr_parse("tcp:localhost:5556", false, &a), 0);
	assert_false(gp_addr_is_loopback(&a));
	assert_int_equal(gp_addr_parse("tcp:0.0.0.0:5556", true, &a), 0);
	assert_false(gp_addr_is_loopback(&a));
	assert_int_equal(gp_addr_parse("tcp:[::]:5556", true, &a), 0);
	assert_false(gp_addr_is_loopback(&a));
	assert_int_equal(gp_addr_parse("tcp:128.0.0.1:5556", true, &a), 0);
	assert_false(gp_addr_is_loopback(&a));
}

static void test_addr_garbage(void **state)
{
	static const char *const bad[] = {
		"", ":", "unix:", "unix", "vsock:", "vsock::", "vsock:1:", "vsock::5",
		"vsock:-1:5", "vsock:1:5:6", "vsock:4294967295:5", "vsock:1:4294967295",
		"vsock:1:99999999999", "vsock:01:5", "vsock: 1:5", "vsock:1:5 ", "vsock:0x10:5",
		"tcp:", "tcp:host", "tcp:host:", "tcp::5", "tcp:host:0", "tcp:host:65536",
		"tcp:host:-1", "tcp:host:5x", "tcp:ho st:5", "tcp:[::1:5", "tcp:[::1]5",
		"tcp:[]:5", "tcp:[nothex]:5", "tcp:::1:5", "tcp:.host:5", "tcp:host.:5",
		"tcp:a..b:5", "tcp:-a:5", "tcp:host/x:5", "tcp:h\xc3\xa9:5", "serial:",
		"serial:a/b", "UNIX:/x",
		/* longer than sun_path (108 bytes) */
		("unix:/0123456789012345678901234567890123456789012345678901234567890123456789"
		 "01234567890123456789012345678901234567890123456789"),
	};
	static const char *const unknown[] = { "http://x", "ftp:x", "vsockx:1:2", "tcp6:[::1]:5" };
	struct gp_addr a = { .port = 4242 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = gp_addr_parse(bad[i], false, &a);

		if (r != -EINVAL && r != -EAFNOSUPPORT)
			fail_msg("'%s' parsed (%d)", bad[i], r);
		assert_int_equal(a.port, 4242); /* untouched on failure */
	}
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		assert_int_equal(gp_addr_parse(unknown[i], false, &a), -EAFNOSUPPORT);
	assert_int_equal(gp_addr_parse(NULL, false, &a), -EINVAL);
	/* kinds that are for one side only */
	assert_int_equal(gp_addr_parse("vsock:5555", false, &a), -EINVAL);
	assert_int_equal(gp_addr_parse("serial:org.gpupass.pv.0", true, &a), -EINVAL);
	assert_int_equal(gp_addr_parse("unix-stream:/x", true, &a), -EINVAL);
	assert_int_equal(a.port, 4242);
}

static void test_sha256_token(void **state)
{
	uint8_t fp[32];
	static const char *const bad[] = {
		"", "08", "zz83D98C770A089D0EF236D6E149178CC6B6BDA72A436FF8FAF4B9BE5D6C6536",
		"0883D98C770A089D0EF236D6E149178CC6B6BDA72A436FF8FAF4B9BE5D6C65",
		"0883D98C770A089D0EF236D6E149178CC6B6BDA72A436FF8FAF4B9BE5D6C653600",
		"08::83", "08:83:D9:8C:77:0A:08:9D:0E:F2:36:D6:E1:49:17:8C:C6:B6:BD:A7:2A:43:6F:F8:FA:F4:B9:BE:5D:6C:65:36:",
	};

	assert_int_equal(gp_tls_parse_sha256(
		"08:83:D9:8C:77:0A:08:9D:0E:F2:36:D6:E1:49:17:8C:C6:B6:BD:A7:2A:43:6F:F8:FA:F4:B9:BE:5D:6C:65:36",
		fp), 0);
	assert_int_equal(fp[0], 0x08);
	assert_int_equal(fp[31], 0x36);
	assert_int_equal(gp_tls_parse_sha256(
		"0883d98c770a089d0ef236d6e149178cc6b6bda72a436ff8faf4b9be5d6c6536", fp), 0);
	assert_int_equal(fp[2], 0xd9);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(gp_tls_parse_sha256(bad[i], fp), -EINVAL);
	assert_true(gp_tls_token_equal("secret-token-0123", "secret-token-0123"));
	assert_false(gp_tls_token_equal("secret-token-0123", "secret-token-0124"));
	assert_false(gp_tls_token_equal("secret-token-0123", "secret-token-012"));
	assert_false(gp_tls_token_equal("", "x"));
}

/* The plain (loopback) TCP path of the relay and the preamble, over a
 * socketpair: what the client sends arrives whole and in order. */
static void test_plain_preamble_relay(void **state)
{
	char token[GP_TLS_TOKEN_MAX + 1], buf[64];
	struct gp_tls *cli, *srv;
	int net[2], plain[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, net), 0);
	/* the server's acknowledgement is written before the client reads it:
	 * a socketpair buffers it, so one thread does both sides */
	assert_int_equal(write(net[1], GP_TLS_AUTH_ACK, 8), 8);
	assert_int_equal(gp_tls_connect(NULL, net[0], "127.0.0.1", "tok-0123456789abcdef", 1000,
					&cli, NULL, 0), 0);
	assert_int_equal(gp_tls_accept(NULL, net[1], 1000, &srv, NULL, 0), 0);
	/* reads the preamble, answers with a second ack (read below) */
	assert_int_equal(gp_tls_recv_auth(srv, token, 1000), 0);
	assert_string_equal(token, "tok-0123456789abcdef");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, plain), 0);
	assert_int_equal(write(plain[0], "hello", 5), 5);
	close(plain[0]);
	/* relays "hello" from the plain side to the network, then ends at
	 * the plain side's close */
	assert_int_equal(gp_tls_relay(srv, plain[1]), 0);
	assert_int_equal(gp_tls_read(cli, buf, 8, 1000), 0);
	assert_memory_equal(buf, GP_TLS_AUTH_ACK, 8);
	assert_int_equal(gp_tls_read(cli, buf, 5, 1000), 0);
	assert_memory_equal(buf, "hello", 5);
	gp_tls_free(srv);
	assert_int_equal(gp_tls_read(cli, buf, 1, 1000), -EPIPE);
	gp_tls_free(cli);
}

static void test_preamble_garbage(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
	} bad[] = {
		{ "GPPVAUTX\0\0", 10 },
		{ "GPPVAUTH\x01\x01", 10 },          /* 257 bytes announced */
		{ "GPPVAUTH\x03\0a\0b", 13 },        /* a NUL inside */
		{ "GPPVAUTH\x05\0ab", 12 },          /* ends early */
		{ "\x16\x03\x01\x02\0", 5 },         /* a TLS hello on a plain port */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char token[GP_TLS_TOKEN_MAX + 1];
		struct gp_tls *srv;
		int net[2], r;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, net), 0);
		assert_int_equal(write(net[0], bad[i].bytes, bad[i].len), (ssize_t)bad[i].len);
		close(net[0]);
		assert_int_equal(gp_tls_accept(NULL, net[1], 1000, &srv, NULL, 0), 0);
		r = gp_tls_recv_auth(srv, token, 1000);
		if (r != -EBADMSG && r != -EPIPE)
			fail_msg("preamble %zu: %d", i, r);
		gp_tls_free(srv);
	}
}

static void test_dial_refusals(void **state)
{
	struct gp_dial_opts o = { .tls_off = true };
	struct gp_channel ch = { .fd = -7 };
	char why[256];

	assert_int_equal(gp_channel_dial("nonsense", &o, &ch, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "tcp:HOST:PORT"));
	assert_int_equal(gp_channel_dial("gopher:x", &o, &ch, why, sizeof(why)), -EAFNOSUPPORT);
	/* plain TCP to a name or a remote host: refused before any packet */
	assert_int_equal(gp_channel_dial("tcp:192.0.2.1:5556", &o, &ch, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "GPUPASS_TLS=off"));
	assert_int_equal(gp_channel_dial("tcp:localhost:5556", &o, &ch, why, sizeof(why)), -EPERM);
	assert_int_equal(gp_channel_dial("unix:/nonexistent/gpupass.sock", NULL, &ch, why,
					 sizeof(why)), -ENOENT);
	/* a CA file that is not there */
	o.tls_off = false;
	o.tls_ca = "/nonexistent/ca.pem";
	assert_int_equal(gp_channel_dial("tcp:127.0.0.1:1", &o, &ch, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "/nonexistent/ca.pem"));
	assert_int_equal(ch.fd, -7); /* untouched */
}

static void test_config_channels(void **state)
{
	struct gp_pvd_config c = { 0 };
	struct gp_pvd_guest_cfg *g;

	assert_int_equal(gp_pvd_config_parse(
		"[server]\nlisten = vsock:5555\nlisten = tcp:0.0.0.0:5556\nlisten = tcp:127.0.0.1:5557\n"
		"tls_cert = /etc/s.crt\ntls_key = /etc/s.key\ntls_ca = /etc/ca.crt\n"
		"[guest vm3]\ncid = 3\n"
		"[guest lab]\ntls_peer_sha256 = 0883d98c770a089d0ef236d6e149178cc6b6bda72a436ff8faf4b9be5d6c6536\n"
		"token = 0123456789abcdef\n", &c), 0);
	assert_int_equal(c.listen.n, 3);
	assert_string_equal(c.tls_cert, "/etc/s.crt");
	assert_string_equal(c.tls_key, "/etc/s.key");
	assert_string_equal(c.tls_ca, "/etc/ca.crt");
	g = gp_pvd_config_guest(&c, "vm3");
	assert_int_equal(g->cid, 3);
	assert_false(g->has_peer_sha256);
	assert_string_equal(g->token, "");
	g = gp_pvd_config_guest(&c, "lab");
	assert_int_equal(g->cid, -1);
	assert_true(g->has_peer_sha256);
	assert_int_equal(g->peer_sha256[0], 0x08);
	assert_string_equal(g->token, "0123456789abcdef");
	/* a caller that replaces the listen lines checks again */
	gp_strv_clear(&c.listen);
	gp_strv_push(&c.listen, "tcp:10.0.0.1:5");
	assert_int_equal(gp_pvd_config_check(&c), 0); /* TLS is set */
	free(c.tls_cert);
	free(c.tls_key);
	free(c.tls_ca);
	c.tls_cert = c.tls_key = c.tls_ca = NULL;
	assert_int_equal(gp_pvd_config_check(&c), -EINVAL);
	assert_non_null(strstr(c.error, "plain TCP is only allowed on a loopback address"));
	gp_pvd_config_clear(&c);
	/* plain TCP on loopback is fine */
	assert_int_equal(gp_pvd_config_parse("[server]\nlisten = tcp:[::1]:5\n[guest default]\n", &c), 0);
	gp_pvd_config_clear(&c);
}

static void test_config_channels_garbage(void **state)
{
	static const char *const bad[] = {
		"[server]\nlisten = tcp:0.0.0.0:5556\n",
		"[server]\nlisten = tcp:localhost:5556\n",
		"[server]\nlisten = tcp:0.0.0.0:5556\ntls_cert = /a\n",
		"[server]\ntls_key = /a\n",
		"[server]\ntls_ca = /a\n",
		"[server]\ntls_cert =\n",
		"[server]\nlisten = vsock:\n",
		"[server]\nlisten = vsock:1:2:3\n",
		"[server]\nlisten = serial:org.gpupass.pv.0\n",
		"[server]\nlisten = unix-stream:/x\n",
		"[guest x]\ncid = 0\n",
		"[guest x]\ncid = 4294967295\n",
		"[guest x]\ncid = three\n",
		"[guest x]\ncid = -3\n",
		"[guest x]\ntls_peer_sha256 = 08:83\n",
		"[guest x]\ntoken = short\n",
		"[guest x]\ntoken = 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		"0123456789abcdef0123456789abcdef0123456789abcdef\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gp_pvd_config c = { 0 };

		if (gp_pvd_config_parse(bad[i], &c) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(c.error);
		gp_pvd_config_clear(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_good),
		cmocka_unit_test(test_addr_garbage),
		cmocka_unit_test(test_sha256_token),
		cmocka_unit_test(test_plain_preamble_relay),
		cmocka_unit_test(test_preamble_garbage),
		cmocka_unit_test(test_dial_refusals),
		cmocka_unit_test(test_config_channels),
		cmocka_unit_test(test_config_channels_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
