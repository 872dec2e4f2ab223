/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stream mode: the PV protocol over a plain byte stream that cannot pass
 * file descriptors — a virtio-serial port in a guest (/dev/vportNpM), or a
 * unix socket used without a memfd. Every call and all data go inline
 * (no shared ring, no bulk region, no shared buffers).
 *
 * A byte stream has no message boundaries of its own: after a guest
 * process dies in the middle of a message, the next process on the same
 * port finds the stream mid-frame. gp_stream_find() hunts for the start
 * of a frame with a given opcode (magic, version and opcode: 8 bytes that
 * do not occur by chance in practice), which both ends use to resync on
 * HELLO (see PROTOCOL.md, "Stream mode").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdt.h"

static int stream_send(struct gp_transport *t, const struct gp_proto_hdr *h,
		       const void *payload, size_t len, int fd)
{
	struct gp_fd_transport *s = (struct gp_fd_transport *)t;
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	int r;

	if (fd >= 0)
		return -EOPNOTSUPP; /* a byte stream cannot carry descriptors */
	r = gp_frame_hdr(h, len, hdr);
	if (r == 0)
		r = gp_stream_write(s->fd, hdr, sizeof(hdr), 5000);
	if (r == 0 && len)
		r = gp_stream_write(s->fd, payload, len, 5000);
	return r;
}

static int stream_recv(struct gp_transport *t, struct gp_proto_hdr *h, void *buf,
		       size_t cap, int *fd, int timeout_ms)
{
	struct gp_fd_transport *s = (struct gp_fd_transport *)t;
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	int r;

	if (fd)
		*fd = -1;
	if (__atomic_load_n(&s->intr, __ATOMIC_ACQUIRE))
		return -EINTR;
	r = gp_fd_wait(s->fd, POLLIN, timeout_ms);
	if (r == 0)
		r = gp_stream_read(s->fd, hdr, sizeof(hdr), 5000);
	if (r == 0)
		r = gp_proto_hdr_unpack(hdr, sizeof(hdr), cap, h);
	/* A message that started must finish: a peer that stalls mid-frame
	 * is treated as broken (the caller resyncs or ends the session). */
	if (r == 0 && h->len)
		r = gp_stream_read(s->fd, buf, h->len, 5000);
	if (r < 0 && __atomic_load_n(&s->intr, __ATOMIC_ACQUIRE))
		return -EINTR;
	return r;
}

static const struct gp_transport_ops stream_ops = {
	.name = "stream",
	.send = stream_send,
	.recv = stream_recv,
	.interrupt = gp_fd_transport_interrupt,
	.free = gp_fd_transport_free,
};

int gp_transport_stream_new(int fd, struct gp_transport **out)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return gp_fd_transport_new(&stream_ops, fd, out);
}

int gp_stream_find(int fd, uint16_t opcode, uint8_t hdr[GP_PROTO_HDR_SIZE], int timeout_ms)
{
	struct gp_proto_hdr want = { .magic = GP_PROTO_MAGIC, .version = GP_PROTO_VERSION,
				     .opcode = opcode };
	uint8_t sig[GP_PROTO_HDR_SIZE];
	uint8_t win[8];
	size_t have = 0;
	int fl = fcntl(fd, F_GETFL), r;

	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	gp_proto_hdr_pack(&want, sig);
	/* One byte at a time: this runs only at a (re)start of a session,
	 * and must not read past the frame it finds. */
	for (;;) {
		if (have == sizeof(win)) {
			memmove(win, win + 1, sizeof(win) - 1);
			have--;
		}
		r = gp_stream_read(fd, win + have, 1, timeout_ms);
		if (r < 0)
			return r;
		have++;
		if (have == sizeof(win) && memcmp(win, sig, sizeof(win)) == 0)
			break;
	}
	memcpy(hdr, win, sizeof(win));
	return gp_stream_read(fd, hdr + sizeof(win), GP_PROTO_HDR_SIZE - sizeof(win), 5000);
}

int gp_serial_find(const char *sysroot, const char *name, char *path, size_t cap)
{
	char dir[512], buf[256];
	struct dirent *de;
	DIR *d;
	int r = -ENOENT;

	if (!name || !*name || strchr(name, '/'))
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s/sys/class/virtio-ports", sysroot ? sysroot : "");
	d = opendir(dir);
	if (!d)
		return -ENOENT;
	while (r == -ENOENT && (de = readdir(d))) {
		char p[800];
		FILE *f;
		size_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s/name", dir, de->d_name);
		f = fopen(p, "re");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
			buf[--n] = '\0';
		if (strcmp(buf, name) != 0)
			continue;
		if ((size_t)snprintf(path, cap, "%s/dev/%s", sysroot ? sysroot : "", de->d_name) >= cap)
			r = -ENAMETOOLONG;
		else
			r = 0;
	}
	closedir(d);
	return r;
}
