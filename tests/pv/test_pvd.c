/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass-pvd's handle table and configuration parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/proto.h"
#include "pvd/config.h"
#include "pvd/handles.h"
#include "pvd/table.h"

static void test_handles(void **state)
{
	struct gp_handles *h;
	struct gp_handle *e, out;
	int x;

	assert_int_equal(gp_handles_new(0, &h), 0);
	assert_int_equal(gp_handles_add(h, 0x10000, GP_KIND_MEM, &x, 64), 0);
	assert_int_equal(gp_handles_add(h, 0x10000, GP_KIND_MEM, &x, 64), -EEXIST);
	assert_int_equal(gp_handles_add(h, 0, GP_KIND_MEM, &x, 0), -EEXIST);
	assert_int_equal(gp_handles_add(h, 5, GP_KIND_MAX + 1, &x, 0), -EEXIST);
	assert_int_equal(gp_handles_get(h, 0x10000, GP_KIND_MEM, &e), 0);
	assert_ptr_equal(e->obj, &x);
	assert_int_equal(e->bytes, 64);
	assert_int_equal(gp_handles_get(h, 0x10000, GP_KIND_KERNEL, &e), -EPERM); /* kind checked */
	assert_int_equal(gp_handles_get(h, 0x10001, GP_KIND_MEM, &e), -ENOENT);
	/* many entries, removals and re-adds (growth, tombstones) */
	for (uint64_t i = 1; i <= 5000; i++)
		assert_int_equal(gp_handles_add(h, 0x20000 + i, GP_KIND_EVENT, &x, 0), 0);
	for (uint64_t i = 1; i <= 5000; i += 2)
		assert_int_equal(gp_handles_remove(h, 0x20000 + i, &out), 0);
	assert_int_equal(gp_handles_remove(h, 0x20001, &out), -ENOENT);
	assert_int_equal(gp_handles_count(h), 2501);
	for (uint64_t i = 2; i <= 5000; i += 2)
		assert_int_equal(gp_handles_get(h, 0x20000 + i, GP_KIND_EVENT, &e), 0);
	gp_handles_free(h);
	assert_int_equal(gp_handles_new(2, &h), 0);
	assert_int_equal(gp_handles_add(h, 1, GP_KIND_DEVICE, &x, 0), 0);
	assert_int_equal(gp_handles_add(h, 2, GP_KIND_DEVICE, &x, 0), 0);
	assert_int_equal(gp_handles_add(h, 3, GP_KIND_DEVICE, &x, 0), -ENOSPC); /* max_objects */
	gp_handles_free(h);
	gp_handles_free(NULL);
}

static void test_config(void **state)
{
	struct gp_pvd_config c = { 0 };
	struct gp_pvd_guest_cfg *g;

	assert_int_equal(gp_pvd_config_parse(
		"[server]\nlisten = unix:/run/a.sock\nlisten = unix:/run/b.sock\ndevices = pocl, all\n"
		"[guest vm1]\nsocket = /run/vm1.sock\nmemory_max = 512M\nmax_objects = 100\nweight = 2\n"
		"ivshmem = /var/lib/gpupass/vm1.shm\n"
		"[guest alice]\nuid = 1000   # by its user id\nmemory_max = 2G\t# two\n"
		"[guest default]\n", &c), 0);
	assert_int_equal(c.listen.n, 2);
	assert_string_equal(c.listen.v[1], "unix:/run/b.sock");
	assert_int_equal(c.devices.n, 1);
	assert_int_equal(c.n_guests, 3);
	g = gp_pvd_config_guest(&c, "vm1");
	assert_non_null(g);
	assert_string_equal(g->socket, "/run/vm1.sock");
	assert_int_equal(g->memory_max, 512ull << 20);
	assert_int_equal(g->max_objects, 100);
	assert_int_equal(g->weight, 2);
	assert_string_equal(g->ivshmem, "/var/lib/gpupass/vm1.shm");
	assert_int_equal(g->socket_uid, -1);
	g = gp_pvd_config_guest(&c, "alice");
	assert_null(g->ivshmem);
	assert_int_equal(g->uid, 1000);
	assert_int_equal(g->memory_max, 2ull << 30);
	assert_int_equal(gp_pvd_config_guest(&c, "default")->weight, 1);
	assert_null(gp_pvd_config_guest(&c, "bob"));
	gp_pvd_config_clear(&c);
}

/* The watchdog's keys (issue 10): durations, the defaults, sizes. */
static void test_config_watchdog(void **state)
{
	struct gp_pvd_config c = { 0 };
	struct gp_pvd_guest_cfg *g;
	uint64_t ms = 0;

	assert_int_equal(gp_pvd_config_parse(
		"[guest a]\ncommand_timeout = 500ms\nbuild_timeout = 2m\nbuild_memory_max = 512M\n"
		"[guest b]\ncommand_timeout = 30\n[guest c]\n", &c), 0);
	g = gp_pvd_config_guest(&c, "a");
	assert_int_equal(g->command_timeout_ms, 500);
	assert_int_equal(g->build_timeout_ms, 120000);
	assert_int_equal(g->build_memory_max, 512ull << 20);
	assert_int_equal(gp_pvd_config_guest(&c, "b")->command_timeout_ms, 30000);
	g = gp_pvd_config_guest(&c, "c");
	assert_int_equal(g->command_timeout_ms, GP_PVD_COMMAND_TIMEOUT_MS);
	assert_int_equal(g->build_timeout_ms, GP_PVD_BUILD_TIMEOUT_MS);
	assert_int_equal(g->build_memory_max, GP_PVD_BUILD_MEMORY_MAX);
	gp_pvd_config_clear(&c);
	assert_int_equal(gp_pvd_parse_duration("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(gp_pvd_parse_duration("2min", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(gp_pvd_parse_duration("18446744073709551615h", &ms), -ERANGE);
	assert_int_equal(gp_pvd_parse_duration("5 s", &ms), -EINVAL);
	assert_int_equal(gp_pvd_parse_duration("-1s", &ms), -EINVAL);
}

static void test_config_garbage(void **state)
{
	static const char *const bad[] = {
		"[guest x]\nmemory_max = lots\n",
		"[guest x]\nmemory_max = -1G\n",
		"[guest x]\nweight = 0\n",
		"[guest x]\nweight = 1001\n",
		"[guest x]\nuid = root\n",
		"[guest x]\nmax_objects = 99999999999\n",
		"[guest x]\ncolour = blue\n",
		"[guest ]\nweight = 1\n",
		"[server]\nlisten = tcp:1.2.3.4:5\n",
		"[server]\nport = 5\n",
		"[nonsense]\na = b\n",
		"no section = 1\n",
		"[server\nlisten = unix:/x\n",
		"[guest x]\nivshmem = relative/file\n",
		"[guest x]\nivshmem =\n",
		"[guest x]\nivshmem = ~/x\n",
		"[server]\nivshmem = /x\n",
		/* worker_uids: uid 0, inverted, too small, not numbers */
		"[server]\nworker_uids = 0-2000\n",
		"[server]\nworker_uids = 400000-300000\n",
		"[server]\nworker_uids = 400000-400100\n",
		"[server]\nworker_uids = 400000\n",
		"[server]\nworker_uids = a-b\n",
		"[server]\nsandbox_paths = /opt/x:relative\n",
		"[guest x]\ncommand_timeout = 0\n",
		"[guest x]\ncommand_timeout = 99ms\n",
		"[guest x]\ncommand_timeout = 25h\n",
		"[guest x]\ncommand_timeout = soon\n",
		"[guest x]\ncommand_timeout = 3d\n",
		"[guest x]\nbuild_timeout = 0s\n",
		"[guest x]\nbuild_memory_max = 255M\n",
		"[guest x]\nbuild_memory_max = lots\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gp_pvd_config c = { 0 };

		assert_int_equal(gp_pvd_config_parse(bad[i], &c), -EINVAL);
		assert_non_null(c.error);
		gp_pvd_config_clear(&c);
	}
}

/* Configurations that must be refused, each with the line to change and
 * what is wrong: before, each of these was taken silently (the second
 * guest got the first's connections, the last duplicate key won, the text
 * after a NUL byte vanished). */
static void test_config_refusals(void **state)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "[guest a]\nsocket = /run/x.sock\n[guest b]\nsocket = /run//x.sock\n",
		  "<config>:4: guest b has the same socket as guest a (line 2)" },
		{ "[guest a]\nsocket = /run/gp/../x.sock\n[guest b]\nsocket = /run/./x.sock\n",
		  "<config>:4: guest b has the same socket as guest a (line 2)" },
		{ "[server]\nlisten = unix:/run/pv.sock\n[guest a]\nsocket = /run/pv.sock\n",
		  "<config>:4: guest a: socket /run/pv.sock is also [server] listen" },
		{ "[guest a]\nuid = 1000\n\n[guest b]\nweight = 2\nuid = 1000\n",
		  "<config>:6: guest b has the same uid as guest a (line 2)" },
		{ "[guest a]\ncid = 3\n[guest b]\ncid = 3\n",
		  "<config>:4: guest b has the same cid as guest a (line 2)" },
		{ "[guest a]\ntoken = 0123456789abcdef\n[guest b]\ntoken = 0123456789abcdef\n",
		  "<config>:4: guest b has the same token as guest a (line 2)" },
		{ "[guest a]\ntls_peer_sha256 = " "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
		  "[guest b]\ntls_peer_sha256 = " "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF\n",
		  "<config>:4: guest b has the same tls_peer_sha256 as guest a (line 2)" },
		{ "[guest a]\nivshmem = /run/a.shm\n[guest b]\nivshmem = /run/a.shm\n",
		  "<config>:4: guest b has the same ivshmem as guest a (line 2)" },
		{ "[guest a]\nmemory_max = 1G\n# comment\nmemory_max = 2G\n",
		  "<config>:4: [guest a] memory_max is set twice (first on line 2): keep one" },
		{ "[server]\ndevices = pocl\ndevices = nv\n",
		  "<config>:3: [server] devices is set twice (first on line 2)" },
		{ "[guest a]\nweight = 2\n[guest b]\n[guest a]\nweight = 3\n",
		  "<config>:4: [guest a] appears twice (first on line 1): merge the two sections" },
		{ "[guest default.1000]\nweight = 2\n",
		  "<config>:1: [guest default.1000]: names that begin with 'default.' are" },
		{ "[guest a]\nweight = 2\n\n[guest b\n",
		  "<config>:4: syntax error" },
		{ "[guest a]\nuid = 4294967295\n", "<config>:2: guest a: uid '4294967295' is not a user id" },
		{ "[guest a]\nsocket = /run/a\nsocket_owner = no-such-user-gp\n",
		  "<config>:3: guest a: socket_owner 'no-such-user-gp' is no user of this host" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gp_pvd_config c = { 0 };

		assert_int_equal(gp_pvd_config_parse(bad[i].text, &c), -EINVAL);
		assert_non_null(c.error);
		if (strncmp(c.error, bad[i].want, strlen(bad[i].want)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, c.error, bad[i].want);
		gp_pvd_config_clear(&c);
	}
}

/* From a file: a NUL byte is refused with its line (getdelim stopped at
 * it, and the rest, [guest b] included, was lost); an empty file or one
 * of comments means the defaults, said by a flag the server logs; a
 * directory says so. */
static void test_config_file(void **state)
{
	char dir[] = "/tmp/gp-cfg-XXXXXX", path[64];
	static const char nul[] = "[guest a]\nweight = 2\nuid = 7\0\n[guest b]\nuid = 7\n";
	struct gp_pvd_config c = { 0 };
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pvd.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(nul, 1, sizeof(nul) - 1, f), sizeof(nul) - 1);
	fclose(f);
	assert_int_equal(gp_pvd_config_load(path, &c), -EINVAL);
	assert_non_null(strstr(c.error, "pvd.conf:3: a NUL byte"));
	gp_pvd_config_clear(&c);

	f = fopen(path, "w");
	fputs("# nothing yet\n\n  ; still nothing\n", f);
	fclose(f);
	assert_int_equal(gp_pvd_config_load(path, &c), 0);
	assert_true(c.defaulted);
	assert_non_null(gp_pvd_config_guest(&c, "default"));
	assert_int_equal(c.listen.n, 1);
	assert_string_equal(c.listen.v[0], GP_PVD_DEFAULT_LISTEN);
	gp_pvd_config_clear(&c);

	f = fopen(path, "w");
	fclose(f);
	assert_int_equal(gp_pvd_config_load(path, &c), 0);
	assert_true(c.defaulted);
	gp_pvd_config_clear(&c);

	/* A file with [server] alone is a configuration with no guests. */
	f = fopen(path, "w");
	fputs("# none\n[server]\n", f);
	fclose(f);
	assert_int_equal(gp_pvd_config_load(path, &c), 0);
	assert_false(c.defaulted);
	assert_int_equal(c.n_guests, 0);
	gp_pvd_config_clear(&c);

	f = fopen(path, "w");
	fputs("[guest a]\nweight = 2\nsocket = /run/a.sock\nsocket_owner = root\n", f);
	fclose(f);
	assert_int_equal(gp_pvd_config_load(path, &c), 0);
	assert_false(c.defaulted);
	assert_int_equal(gp_pvd_config_guest(&c, "a")->weight, 2);
	assert_int_equal(gp_pvd_config_guest(&c, "a")->socket_uid, 0);
	gp_pvd_config_clear(&c);

	assert_int_equal(gp_pvd_config_load(dir, &c), -EISDIR);
	gp_pvd_config_clear(&c);
	unlink(path);
	rmdir(dir);
}

/* [server] worker_uids and sandbox_paths (sandbox.c uses them). */
static void test_config_sandbox(void **state)
{
	struct gp_pvd_config c = { 0 };

	(void)state;
	assert_int_equal(gp_pvd_config_parse("[server]\nworker_uids = 500000-501023\n"
					     "sandbox_paths = /opt/v:/usr/share/foo\n", &c), 0);
	assert_int_equal(c.worker_uid_first, 500000);
	assert_int_equal(c.worker_uid_last, 501023);
	assert_int_equal(c.sandbox_paths.n, 2);
	assert_string_equal(c.sandbox_paths.v[1], "/usr/share/foo");
	gp_pvd_config_clear(&c);
	/* default: 0-0, sandbox.c takes GP_PVD_WORKER_UID_FIRST..LAST */
	assert_int_equal(gp_pvd_config_parse("[guest a]\nweight = 2\n", &c), 0);
	assert_int_equal(c.worker_uid_first, 0);
	assert_true(GP_PVD_WORKER_UID_LAST - GP_PVD_WORKER_UID_FIRST + 1 >= GP_PVD_WORKER_UIDS_MIN);
	gp_pvd_config_clear(&c);
}

/* Sends @len bytes with @nfd descriptors, as a supervisor (or anything
 * else on the channel) could. */
static void send_raw(int chan, const void *buf, size_t len, const int *fds, size_t nfd)
{
	union {
		char b[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	memset(&u, 0, sizeof(u));
	if (nfd) {
		struct cmsghdr *c;

		msg.msg_control = u.b;
		msg.msg_controllen = CMSG_SPACE(nfd * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfd * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfd * sizeof(int));
	}
	assert_int_equal(sendmsg(chan, &msg, 0), (ssize_t)len);
}

/* The lowest free descriptor: unchanged after a refused message means
 * whatever it carried was closed. */
static int next_fd(void)
{
	int fd = dup(0);

	close(fd);
	return fd;
}

static void test_handover(void **state)
{
	int ch[2], conn[2], pip[2], fd = -1, free_fd;
	uint64_t seq = 0;
	struct pvd_handover h = { .magic = PVD_HANDOVER_MAGIC, .slot = 3, .seq = 1 };
	uint8_t junk[64];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ch), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, conn), 0);
	assert_int_equal(pipe(pip), 0);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EAGAIN);
	/* a good one */
	assert_int_equal(pvd_handover_send(ch[0], 3, 1, conn[0]), 0);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), 0);
	assert_int_equal(seq, 1);
	assert_true(fd >= 0 && fd != conn[0]);
	/* the received fd is the same connection */
	assert_int_equal(write(fd, "x", 1), 1);
	assert_int_equal(read(conn[1], junk, 1), 1);
	close(fd);
	free_fd = next_fd();
	/* wrong slot, replayed or skipped sequence, bad magic */
	h.seq = 2;
	h.slot = 4;
	send_raw(ch[0], &h, sizeof(h), &conn[0], 1);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADMSG);
	h.slot = 3;
	h.seq = 1;
	send_raw(ch[0], &h, sizeof(h), &conn[0], 1);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADMSG);
	h.seq = 7;
	send_raw(ch[0], &h, sizeof(h), &conn[0], 1);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADMSG);
	h.seq = 2;
	h.magic ^= 1;
	send_raw(ch[0], &h, sizeof(h), &conn[0], 1);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADMSG);
	h.magic = PVD_HANDOVER_MAGIC;
	/* short, long, empty-ish */
	send_raw(ch[0], &h, sizeof(h) - 1, &conn[0], 1);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADMSG);
	memset(junk, 0xa5, sizeof(junk));
	memcpy(junk, &h, sizeof(h));
	send_raw(ch[0], junk, sizeof(junk), &conn[0], 1);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADMSG);
	send_raw(ch[0], junk, 1, NULL, 0);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADMSG);
	/* no fd, a pipe, a datagram socket, a regular file, two fds */
	send_raw(ch[0], &h, sizeof(h), NULL, 0);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADF);
	send_raw(ch[0], &h, sizeof(h), &pip[0], 1);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADF);
	{
		int dg[2], file = memfd_create("x", 0), two[2] = { conn[0], pip[1] };

		assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, dg), 0);
		send_raw(ch[0], &h, sizeof(h), &dg[0], 1);
		assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADF);
		send_raw(ch[0], &h, sizeof(h), &file, 1);
		assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADF);
		send_raw(ch[0], &h, sizeof(h), two, 2);
		assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EBADMSG);
		close(dg[0]);
		close(dg[1]);
		close(file);
	}
	/* nothing received was kept: every refused descriptor was closed */
	assert_int_equal(next_fd(), free_fd);
	assert_int_equal(seq, 1);
	/* and the channel still works */
	assert_int_equal(pvd_handover_send(ch[0], 3, 2, conn[0]), 0);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), 0);
	assert_int_equal(seq, 2);
	close(fd);
	/* the supervisor's end closed */
	close(ch[0]);
	assert_int_equal(pvd_handover_recv(ch[1], 3, &seq, &fd), -EPIPE);
	close(ch[1]);
	close(conn[0]);
	close(conn[1]);
	close(pip[0]);
	close(pip[1]);
}

static void test_table(void **state)
{
	struct pvd_table *t, *t2;
	int fd, bad;

	(void)state;
	assert_int_equal(pvd_table_create(&fd, &t), 0);
	t->guests[0].objects = 5;
	t->n_guests = 1;
	assert_int_equal(pvd_table_map(fd, &t2), 0);
	assert_int_equal(t2->guests[0].objects, 5); /* the same memory */
	t2->guests[0].mem_used = 77;
	assert_int_equal(t->guests[0].mem_used, 77);
	pvd_table_clear_usage(&t->guests[0]);
	assert_int_equal(t2->guests[0].mem_used, 0);
	assert_int_equal(t2->guests[0].objects, 0);
	/* sealed: cannot be resized under the workers */
	assert_int_not_equal(ftruncate(fd, 4096), 0);
	t->n_guests = PVD_MAX_GUESTS + 1;
	assert_int_equal(pvd_table_map(fd, &t2 /* unchanged on error */), -EINVAL);
	t->n_guests = 1;
	t->magic = 0;
	pvd_table_unmap(t2);
	assert_int_equal(pvd_table_map(fd, &t2), -EINVAL);
	pvd_table_unmap(t);
	close(fd);
	/* wrong size, not a regular file, closed */
	bad = memfd_create("small", 0);
	assert_int_equal(ftruncate(bad, 100), 0);
	assert_int_equal(pvd_table_map(bad, &t2), -EINVAL);
	close(bad);
	assert_int_equal(pvd_table_map(fd, &t2), -EBADF);
	{
		int p[2];

		assert_int_equal(pipe(p), 0);
		assert_int_equal(pvd_table_map(p[0], &t2), -EINVAL);
		close(p[0]);
		close(p[1]);
	}
}

static void test_worker_args(void **state)
{
	struct pvd_worker_args a;
	char *good[] = { "gpupass-pvd", "--worker", "5", "1234", "1", "100000", "1", "/var/x", "GPU", NULL };
	char *bad[][8] = {
		{ "p", "--worker", "-1", "1", "0", "0", "0", "/d" },
		{ "p", "--worker", "1024", "1", "0", "0", "0", "/d" },
		{ "p", "--worker", "1x", "1", "0", "0", "0", "/d" },
		{ "p", "--worker", "", "1", "0", "0", "0", "/d" },
		{ "p", "--worker", "1", "0", "0", "0", "0", "/d" },
		{ "p", "--worker", "1", "99999999999", "0", "0", "0", "/d" },
		{ "p", "--worker", "1", "1", "3", "0", "0", "/d" },
		{ "p", "--worker", "1", "1", "0", "+5", "0", "/d" },
		{ "p", "--worker", "1", "1", "0", "2000000000", "0", "/d" },
		{ "p", "--worker", "1", "1", "0", "0", "0", "rel" },
		{ "p", "--nope", "1", "1", "0", "0", "0", "/d" },
		{ "p", "--worker", "1", "1", "0", "0", "2", "/d" },
	};

	(void)state;
	assert_int_equal(pvd_worker_args_parse(9, good, &a), 0);
	assert_true(a.shared_ok);
	assert_int_equal(a.slot, 5);
	assert_int_equal(a.ppid, 1234);
	assert_int_equal(a.verbose, 1);
	assert_int_equal(a.spin_ns, 100000);
	assert_string_equal(a.dir, "/var/x");
	assert_int_equal(a.n_devices, 1);
	assert_string_equal(a.devices[0], "GPU");
	assert_int_equal(pvd_worker_args_parse(7, good, &a), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pvd_worker_args_parse(8, bad[i], &a), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handles),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_config_garbage),
		cmocka_unit_test(test_config_refusals),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_config_watchdog),
		cmocka_unit_test(test_handover),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_worker_args),
		cmocka_unit_test(test_config_sandbox),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
