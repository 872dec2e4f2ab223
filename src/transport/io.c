/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one full-read / full-write loop of every stream transport: unix
 * sockets (blocking or not), virtio-serial character devices (opened
 * non-blocking), socketpairs of the TCP relay. Waits go through poll().
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

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

int gp_stream_read(int fd, void *buf, size_t len, int timeout_ms)
{
	char *p = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		/* recv() with MSG_DONTWAIT whatever the descriptor's mode; a
		 * virtio port is a character device: read() (non-blocking). */
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, p, len);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r = gp_fd_wait(fd, POLLIN, timeout_ms);
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

int gp_stream_write(int fd, const void *buf, size_t len, int timeout_ms)
{
	const char *p = buf;
	ssize_t n;
	int r;

	while (len > 0) {
		/* send() where it can: a peer that hung up must be -EPIPE,
		 * not a SIGPIPE that kills the guest program. */
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r = gp_fd_wait(fd, POLLOUT, timeout_ms);
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
