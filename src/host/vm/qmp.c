/* SPDX-License-Identifier: Apache-2.0 */
#include "qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A reply longer than this is not one QEMU would send us (query-pci of a
 * large guest is tens of KiB). */
#define QMP_LINE_MAX (4u << 20)

struct gp_qmp {
	int fd;
	char *buf;
	size_t len, cap;
	unsigned id;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left < 0 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

static int sock_connect(const char *path, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	*out = fd;
	return 0;
}

/* Reads one line (without the newline) by the deadline: a pointer into the
 * buffer, valid until the next read. */
static int read_line(struct gp_qmp *q, int64_t deadline, char **line, size_t *llen)
{
	for (;;) {
		char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - q->buf);

			*line = q->buf;
			*llen = n;
			q->buf[n] = '\0';
			return (int)(n + 1); /* bytes to drop after use */
		}
		if (q->len == q->cap) {
			size_t ncap = q->cap ? q->cap * 2 : 8192;
			char *nb;

			if (ncap > QMP_LINE_MAX)
				return -EPROTO;
			nb = realloc(q->buf, ncap);
			if (!nb)
				return -ENOMEM;
			q->buf = nb;
			q->cap = ncap;
		}
		{
			struct pollfd p = { .fd = q->fd, .events = POLLIN };
			int pr = poll(&p, 1, remaining(deadline));
			ssize_t r;

			if (pr < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (pr == 0)
				return -ETIMEDOUT;
			r = read(q->fd, q->buf + q->len, q->cap - q->len);
			if (r < 0) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				return -errno;
			}
			if (r == 0)
				return -ECONNRESET;
			q->len += (size_t)r;
		}
	}
}

static void drop(struct gp_qmp *q, size_t n)
{
	memmove(q->buf, q->buf + n, q->len - n);
	q->len -= n;
}

static int write_all(int fd, const char *s, size_t n, int64_t deadline)
{
	while (n) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t w;
		int pr = poll(&p, 1, remaining(deadline));

		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
		w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == EPIPE ? -ECONNRESET : -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int gp_qmp_parse_reply(const char *text, size_t len, struct json_object **ret,
		       char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object *o, *v;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (len > QMP_LINE_MAX || len > INT32_MAX)
		return -EPROTO;
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (!o && json_tokener_get_error(tok) == json_tokener_continue)
		o = json_tokener_parse_ex(tok, "", -1);
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EPROTO;
	}
	if (json_object_object_get_ex(o, "return", &v)) {
		if (ret)
			*ret = json_object_get(v);
		r = 0;
	} else if (json_object_object_get_ex(o, "error", &v)) {
		struct json_object *cls = NULL, *desc = NULL;

		if (json_object_is_type(v, json_type_object)) {
			json_object_object_get_ex(v, "class", &cls);
			json_object_object_get_ex(v, "desc", &desc);
		}
		if (err && errlen)
			snprintf(err, errlen, "%s: %s",
				 cls && json_object_is_type(cls, json_type_string) ?
				 json_object_get_string(cls) : "Error",
				 desc && json_object_is_type(desc, json_type_string) ?
				 json_object_get_string(desc) : "(no description)");
		r = -EREMOTEIO;
	} else if (json_object_object_get_ex(o, "event", NULL) ||
		   json_object_object_get_ex(o, "QMP", NULL)) {
		r = -EAGAIN;
	} else {
		r = -EPROTO;
	}
	json_object_put(o);
	return r;
}

/* Waits for the reply to the last command, skipping events. */
static int read_reply(struct gp_qmp *q, int64_t deadline, struct json_object **ret,
		      char *err, size_t errlen)
{
	for (;;) {
		char *line;
		size_t llen;
		int n = read_line(q, deadline, &line, &llen), r;

		if (n < 0)
			return n;
		r = gp_qmp_parse_reply(line, llen, ret, err, errlen);
		drop(q, (size_t)n);
		if (r == -EAGAIN)
			continue;
		/* Blank keep-alive lines from the agent are not errors. */
		if (r == -EPROTO && llen == 0)
			continue;
		return r;
	}
}

int gp_qmp_execute(struct gp_qmp *q, const char *cmd, struct json_object *args,
		   int timeout_ms, struct json_object **ret, char *err, size_t errlen)
{
	struct json_object *msg = json_object_new_object();
	int64_t deadline = now_ms() + timeout_ms;
	const char *s;
	char *line;
	int r;

	if (!msg)
		return -ENOMEM;
	json_object_object_add(msg, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(msg, "arguments", json_object_get(args));
	json_object_object_add(msg, "id", json_object_new_int((int)++q->id));
	s = json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN);
	line = s ? malloc(strlen(s) + 2) : NULL;
	if (!line) {
		json_object_put(msg);
		return -ENOMEM;
	}
	sprintf(line, "%s\n", s);
	json_object_put(msg);
	r = write_all(q->fd, line, strlen(line), deadline);
	free(line);
	if (r < 0)
		return r;
	return read_reply(q, deadline, ret, err, errlen);
}

static int open_q(const char *path, struct gp_qmp **out)
{
	struct gp_qmp *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	r = sock_connect(path, &q->fd);
	if (r < 0) {
		free(q);
		return r;
	}
	*out = q;
	return 0;
}

int gp_qmp_connect(const char *path, int timeout_ms, struct gp_qmp **out)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct gp_qmp *q;
	char *line;
	size_t llen;
	int n, r = open_q(path, &q);

	if (r < 0)
		return r;
	n = read_line(q, deadline, &line, &llen);
	if (n < 0) {
		r = n;
		goto err_close;
	}
	/* The greeting is {"QMP": {...}}, which parse_reply calls -EAGAIN. */
	r = gp_qmp_parse_reply(line, llen, NULL, NULL, 0);
	drop(q, (size_t)n);
	if (r != -EAGAIN || !strstr(line, "\"QMP\"")) {
		r = -EPROTO;
		goto err_close;
	}
	r = gp_qmp_execute(q, "qmp_capabilities", NULL, remaining(deadline), NULL, NULL, 0);
	if (r < 0)
		goto err_close;
	*out = q;
	return 0;

err_close:
	gp_qmp_close(q);
	return r;
}

int gp_qmp_connect_agent(const char *path, int timeout_ms, struct gp_qmp **out)
{
	(void)timeout_ms;
	return open_q(path, out);
}

void gp_qmp_close(struct gp_qmp *q)
{
	if (!q)
		return;
	close(q->fd);
	free(q->buf);
	free(q);
}

int gp_qmp_wait_closed(struct gp_qmp *q, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		char *line;
		size_t llen;
		int n = read_line(q, deadline, &line, &llen);

		if (n == -ECONNRESET)
			return 0;
		if (n == -ETIMEDOUT)
			return n;
		if (n < 0)
			return 0; /* any other read error: the peer is gone */
		drop(q, (size_t)n);
	}
}

/* --- query-pci --- */

static int json_int(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -EINVAL;
	*out = json_object_get_int64(v);
	return 0;
}

struct pci_list {
	struct gp_qmp_pci_dev *v;
	size_t n, cap;
};

static int walk_devices(struct json_object *devs, int bus, int depth, struct pci_list *l);

static int add_device(struct json_object *d, int bus, int depth, struct pci_list *l)
{
	struct gp_qmp_pci_dev dev = { .bus = bus };
	struct json_object *id, *cls, *br, *sub;
	int64_t v;

	if (!json_object_is_type(d, json_type_object))
		return 0;
	if (json_object_object_get_ex(d, "bus", NULL) && json_int(d, "bus", &v) == 0 &&
	    v >= 0 && v <= 255)
		dev.bus = (int)v;
	if (json_int(d, "slot", &v) < 0 || v < 0 || v > 31)
		return 0;
	dev.slot = (int)v;
	if (json_int(d, "function", &v) < 0 || v < 0 || v > 7)
		return 0;
	dev.function = (int)v;
	if (json_object_object_get_ex(d, "id", &id) &&
	    json_object_is_type(id, json_type_object)) {
		if (json_int(id, "vendor", &v) == 0 && v >= 0 && v <= 0xffff)
			dev.vendor_id = (uint16_t)v;
		if (json_int(id, "device", &v) == 0 && v >= 0 && v <= 0xffff)
			dev.device_id = (uint16_t)v;
	}
	if (json_object_object_get_ex(d, "class_info", &cls) &&
	    json_object_is_type(cls, json_type_object) && json_int(cls, "class", &v) == 0 &&
	    v >= 0 && v <= 0xffff)
		dev.class_code = (uint32_t)v;
	if (json_object_object_get_ex(d, "qdev_id", &id) &&
	    json_object_is_type(id, json_type_string))
		snprintf(dev.qdev_id, sizeof(dev.qdev_id), "%s", json_object_get_string(id));
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 32;
		struct gp_qmp_pci_dev *nv;

		if (ncap > 65536)
			return -E2BIG;
		nv = realloc(l->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = dev;
	/* Devices behind a bridge are listed inside it, on its secondary bus. */
	if (json_object_object_get_ex(d, "pci_bridge", &br) &&
	    json_object_is_type(br, json_type_object) &&
	    json_object_object_get_ex(br, "devices", &sub)) {
		int secondary = dev.bus;
		struct json_object *b;

		if (json_object_object_get_ex(br, "bus", &b) &&
		    json_object_is_type(b, json_type_object) &&
		    json_int(b, "secondary", &v) == 0 && v >= 0 && v <= 255)
			secondary = (int)v;
		return walk_devices(sub, secondary, depth + 1, l);
	}
	return 0;
}

static int walk_devices(struct json_object *devs, int bus, int depth, struct pci_list *l)
{
	size_t n;

	/* PCI has at most 256 buses; a deeper nesting is garbage. */
	if (depth > 32 || !json_object_is_type(devs, json_type_array))
		return 0;
	n = json_object_array_length(devs);
	for (size_t i = 0; i < n; i++) {
		int r = add_device(json_object_array_get_idx(devs, i), bus, depth, l);

		if (r < 0)
			return r;
	}
	return 0;
}

int gp_qmp_parse_pci(struct json_object *ret, struct gp_qmp_pci_dev **out, size_t *n)
{
	struct pci_list l = { 0 };
	size_t nb;

	if (!json_object_is_type(ret, json_type_array))
		return -EPROTO;
	nb = json_object_array_length(ret);
	for (size_t i = 0; i < nb; i++) {
		struct json_object *b = json_object_array_get_idx(ret, i), *devs;
		int64_t busno = 0;
		int r;

		if (!json_object_is_type(b, json_type_object) ||
		    !json_object_object_get_ex(b, "devices", &devs))
			continue;
		if (json_int(b, "bus", &busno) < 0 || busno < 0 || busno > 255)
			busno = 0;
		r = walk_devices(devs, (int)busno, 0, &l);
		if (r < 0) {
			free(l.v);
			return r;
		}
	}
	*out = l.v;
	*n = l.n;
	return 0;
}

/* --- base64 (RFC 4648 §4) --- */

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int gp_base64_decode(const char *in, char **out, size_t *len)
{
	size_t n = strlen(in), o = 0;
	unsigned acc = 0;
	int bits = 0, pad = 0;
	char *buf = malloc(n / 4 * 3 + 4);

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (c == '\n' || c == '\r')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		v = b64val(c);
		if (v < 0 || pad) {
			free(buf);
			return -EINVAL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (pad > 2) {
		free(buf);
		return -EINVAL;
	}
	buf[o] = '\0';
	*out = buf;
	if (len)
		*len = o;
	return 0;
}

/* guest-exec and guest-exec-status (qemu-ga QAPI schema). */
int gp_qmp_agent_exec(const char *path, int timeout_ms, const char *prog, const char *arg,
		      char **out)
{
	struct json_object *args, *ret = NULL, *v;
	struct gp_qmp *q;
	int64_t deadline;
	int64_t gpid;
	int r = gp_qmp_connect_agent(path, timeout_ms, &q);

	if (r < 0)
		return r;
	args = json_object_new_object();
	json_object_object_add(args, "id", json_object_new_int64((int64_t)getpid()));
	r = gp_qmp_execute(q, "guest-sync", args, timeout_ms, NULL, NULL, 0);
	json_object_put(args);
	if (r < 0)
		goto out;
	args = json_object_new_object();
	v = json_object_new_array();
	if (arg)
		json_object_array_add(v, json_object_new_string(arg));
	json_object_object_add(args, "path", json_object_new_string(prog));
	json_object_object_add(args, "arg", v);
	json_object_object_add(args, "capture-output", json_object_new_boolean(1));
	r = gp_qmp_execute(q, "guest-exec", args, 10000, &ret, NULL, 0);
	json_object_put(args);
	if (r < 0)
		goto out;
	if (!json_object_object_get_ex(ret, "pid", &v) || !json_object_is_type(v, json_type_int)) {
		r = -EPROTO;
		goto out;
	}
	gpid = json_object_get_int64(v);
	json_object_put(ret);
	ret = NULL;
	deadline = now_ms() + 30000;
	for (;;) {
		struct json_object *exited;

		args = json_object_new_object();
		json_object_object_add(args, "pid", json_object_new_int64(gpid));
		r = gp_qmp_execute(q, "guest-exec-status", args, 10000, &ret, NULL, 0);
		json_object_put(args);
		if (r < 0)
			goto out;
		if (json_object_object_get_ex(ret, "exited", &exited) &&
		    json_object_get_boolean(exited))
			break;
		json_object_put(ret);
		ret = NULL;
		if (now_ms() > deadline) {
			r = -ETIMEDOUT;
			goto out;
		}
		{
			struct timespec ts = { 0, 200 * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	if (json_object_object_get_ex(ret, "out-data", &v) &&
	    json_object_is_type(v, json_type_string))
		r = gp_base64_decode(json_object_get_string(v), out, NULL);
	else
		r = -ENODATA;
out:
	json_object_put(ret);
	gp_qmp_close(q);
	return r;
}

