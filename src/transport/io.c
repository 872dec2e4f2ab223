/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one full-read / full-write loop of every stream transport: unix
 * sockets (blocking or not), virtio-serial character devices (opened
 * non-blocking), socketpairs of the TCP relay. Waits go through poll().
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdt.h"

int gp_fd_wait(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	if (p.revents & events)
		return 0;
	/* POLLHUP / POLLERR alone: a socket whose peer is gone, a virtio
	 * port whose host side is closed. */
	return -EPIPE;
}

/* Errors that mean the other end went away. */
static int gone(int e)
{
	return (e == ECONNRESET || e == EPIPE) ? -EPIPE : -e;
}

/* One transfer of at most @len bytes in direction @out: recv()/send()
 * with MSG_DONTWAIT whatever the descriptor's mode (send() with
 * MSG_NOSIGNAL: a peer that hung up must be -EPIPE, not a SIGPIPE that
 * kills the guest program); a virtio port is a character device:
 * read()/write(), opened non-blocking. */
static ssize_t xfer_once(int fd, char *p, size_t len, bool out)
{
	ssize_t n = out ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
			: recv(fd, p, len, MSG_DONTWAIT);

	if (n < 0 && errno == ENOTSOCK)
		n = out ? write(fd, p, len) : read(fd, p, len);
	return n;
}

static int xfer_all(int fd, char *p, size_t len, int timeout_ms, bool out)
{
	ssize_t n;
	int r;

	while (len > 0) {
		n = xfer_once(fd, p, len, out);
		if (n == 0 && !out)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r = gp_fd_wait(fd, out ? POLLOUT : POLLIN, timeout_ms);
				if (r < 0)
					return r;
				continue;
			}
			return gone(errno);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int gp_stream_read(int fd, void *buf, size_t len, int timeout_ms)
{
	return xfer_all(fd, buf, len, timeout_ms, false);
}

int gp_stream_write(int fd, const void *buf, size_t len, int timeout_ms)
{
	/* xfer_all only reads from @buf in this direction. */
	return xfer_all(fd, (char *)(uintptr_t)buf, len, timeout_ms, true);
}

int gp_fd_transport_new(const struct gp_transport_ops *ops, int fd, struct gp_transport **out)
{
	struct gp_fd_transport *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->base.ops = ops;
	f->fd = fd;
	*out = &f->base;
	return 0;
}

void gp_fd_transport_interrupt(struct gp_transport *t)
{
	struct gp_fd_transport *f = (struct gp_fd_transport *)t;

	__atomic_store_n(&f->intr, 1, __ATOMIC_RELEASE);
	shutdown(f->fd, SHUT_RDWR);
}

void gp_fd_transport_free(struct gp_transport *t)
{
	struct gp_fd_transport *f = (struct gp_fd_transport *)t;

	close(f->fd);
	free(f);
}

int gp_frame_hdr(const struct gp_proto_hdr *h, size_t len, uint8_t out[GP_PROTO_HDR_SIZE])
{
	struct gp_proto_hdr hh = *h;

	if (len > GP_PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	hh.magic = GP_PROTO_MAGIC;
	hh.version = GP_PROTO_VERSION;
	hh.len = (uint32_t)len;
	hh.reserved = 0;
	gp_proto_hdr_pack(&hh, out);
	return 0;
}

/* ---- records with a descriptor (SOCK_SEQPACKET, SOCK_DGRAM) ---- */

int gp_msg_send_fd(int sock, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return gone(errno);
	return (size_t)n == len ? 0 : -EIO;
}

ssize_t gp_msg_recv_fd(int sock, void *buf, size_t cap, int *fd, int flags)
{
	/* Room for more than one descriptor, so that extra ones are
	 * received (and closed) rather than left to truncate silently. */
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	int got = -1, extra = 0;
	ssize_t n;

	if (fd)
		*fd = -1;
	do {
		n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return gone(errno);
	if (n == 0 && cap > 0)
		return -EPIPE;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int one;

			memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < 0 && fd) {
				got = one;
			} else {
				close(one);
				extra++;
			}
		}
	}
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || extra) {
		if (got >= 0)
			close(got);
		return -EBADMSG;
	}
	if (fd)
		*fd = got;
	return n;
}
