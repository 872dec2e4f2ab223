/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what a gpupass-pvd worker takes from outside: the
 * hand-over messages on its channel (with 0, 1 or 2 descriptors of
 * various kinds, chosen by the first byte) and its command line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pvd/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void send_with(int chan, const uint8_t *buf, size_t len, const int *fds, size_t nfd)
{
	union {
		char b[CMSG_SPACE(2 * sizeof(int))];
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
	sendmsg(chan, &msg, MSG_DONTWAIT);
}

static void fuzz_args(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *argv[16];
	struct pvd_worker_args a;
	int argc = 0;

	if (!copy)
		return;
	memcpy(copy, data, size);
	copy[size] = '\0';
	/* NUL-separated words, like a command line */
	for (size_t i = 0; i < size + 1 && argc < 16;) {
		argv[argc++] = copy + i;
		i += strlen(copy + i) + 1;
	}
	pvd_worker_args_parse(argc, argv, &a);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int ch[2], conn[2], pip[2], fds[2], fd = -1;
	uint64_t seq = (size > 1) ? data[1] % 3 : 0;
	size_t nfd = 0;

	if (size < 2)
		return 0;
	fuzz_args(data + 2, size - 2);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ch) < 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, conn) < 0 || pipe(pip) < 0)
		abort();
	switch (data[0] % 4) {
	case 1: fds[0] = conn[0]; nfd = 1; break;
	case 2: fds[0] = pip[0]; nfd = 1; break;
	case 3: fds[0] = conn[0]; fds[1] = pip[1]; nfd = 2; break;
	default: break;
	}
	send_with(ch[0], data + 2, size - 2 > 256 ? 256 : size - 2, fds, nfd);
	if (pvd_handover_recv(ch[1], data[0] >> 2, &seq, &fd) == 0) {
		if (fd < 0)
			abort();
		close(fd);
	}
	close(ch[0]);
	close(ch[1]);
	close(conn[0]);
	close(conn[1]);
	close(pip[0]);
	close(pip[1]);
	return 0;
}
