/* SPDX-License-Identifier: Apache-2.0 */
/* Unix stream sockets with SCM_RIGHTS. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdt.h"

static int make_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!path || !*path || strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

int gp_unix_listen(const char *path, int *out_fd)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, r;

	r = make_addr(path, &sa);
	if (r < 0)
		return r;
	/* Replace a stale socket file, but never another kind of file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}

int gp_unix_connect(const char *path, int *out_fd)
{
	struct sockaddr_un sa;
	int fd, r;

	r = make_addr(path, &sa);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}

static int unix_send(struct gp_transport *t, const struct gp_proto_hdr *h,
		     const void *payload, size_t len, int fd)
{
	struct gp_fd_transport *u = (struct gp_fd_transport *)t;
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(hdr) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int r;

	r = gp_frame_hdr(h, len, hdr);
	if (r < 0)
		return r;
	/* The descriptor rides with the header's bytes. */
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do {
		n = sendmsg(u->fd, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == ECONNRESET || errno == EPIPE) ? -EPIPE : -errno;
	if ((size_t)n < sizeof(hdr)) {
		r = gp_stream_write(u->fd, hdr + n, sizeof(hdr) - (size_t)n, 5000);
		if (r < 0)
			return r;
	}
	return gp_stream_write(u->fd, payload, len, 5000);
}

static int unix_recv(struct gp_transport *t, struct gp_proto_hdr *h, void *buf,
		     size_t cap, int *fd, int timeout_ms)
{
	struct gp_fd_transport *u = (struct gp_fd_transport *)t;
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(hdr) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	int got_fd = -1;
	ssize_t n;
	int r;

	if (fd)
		*fd = -1;
	if (__atomic_load_n(&u->intr, __ATOMIC_ACQUIRE))
		return -EINTR;
	r = gp_fd_wait(u->fd, POLLIN, timeout_ms);
	if (r < 0)
		return r;
	do {
		n = recvmsg(u->fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	if (n == 0)
		return -EPIPE;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < nfd; i++) {
				int f;

				memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (got_fd < 0 && fd)
					got_fd = f;
				else
					close(f); /* only one descriptor is ever expected */
			}
		}
	}
	r = 0;
	if ((size_t)n < sizeof(hdr))
		r = gp_stream_read(u->fd, hdr + n, sizeof(hdr) - (size_t)n, 5000);
	if (r == 0)
		r = gp_proto_hdr_unpack(hdr, sizeof(hdr), cap, h);
	if (r == 0)
		r = gp_stream_read(u->fd, buf, h->len, 5000);
	if (r < 0) {
		if (got_fd >= 0)
			close(got_fd);
		return r;
	}
	if (fd)
		*fd = got_fd;
	return 0;
}

static const struct gp_transport_ops unix_ops = {
	.name = "unix",
	.send = unix_send,
	.recv = unix_recv,
	.interrupt = gp_fd_transport_interrupt,
	.free = gp_fd_transport_free,
};

int gp_transport_unix_new(int fd, struct gp_transport **out)
{
	return gp_fd_transport_new(&unix_ops, fd, out);
}
