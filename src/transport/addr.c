/* SPDX-License-Identifier: Apache-2.0 */
/* Channel addresses: parsing, dialing and listening (see addr.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "transport.h"

const char *gp_addr_kind_name(enum gp_addr_kind k)
{
	switch (k) {
	case GP_ADDR_UNIX:
		return "unix";
	case GP_ADDR_UNIX_STREAM:
		return "unix-stream";
	case GP_ADDR_SERIAL:
		return "serial";
	case GP_ADDR_VSOCK:
		return "vsock";
	case GP_ADDR_TCP:
		return "tcp";
	}
	return "?";
}

/* A decimal number without sign, spaces or leading zeros, <= @max. */
static int parse_num(const char *s, size_t len, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* A DNS name or IPv4 literal: letters, digits, '-', '.'; no empty label. */
static bool host_ok(const char *h, size_t len)
{
	if (len == 0 || len > 253 || h[0] == '.' || h[0] == '-' || h[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = h[i];

		if (c == '.' && h[i + 1] == '.')
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

static int parse_tcp(const char *s, struct gp_addr *a)
{
	const char *host = s, *colon;
	size_t hlen;
	uint32_t port;

	if (*s == '[') {
		const char *end = strchr(s, ']');
		struct in6_addr in6;

		if (!end || end[1] != ':')
			return -EINVAL;
		host = s + 1;
		hlen = (size_t)(end - host);
		colon = end + 1;
		if (hlen == 0 || hlen >= 64)
			return -EINVAL;
		memcpy(a->text, host, hlen);
		a->text[hlen] = '\0';
		if (inet_pton(AF_INET6, a->text, &in6) != 1)
			return -EINVAL;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - host);
		if (!host_ok(host, hlen) || memchr(host, ':', hlen))
			return -EINVAL;
		memcpy(a->text, host, hlen);
		a->text[hlen] = '\0';
	}
	if (parse_num(colon + 1, strlen(colon + 1), 65535, &port) < 0 || port == 0)
		return -EINVAL;
	a->port = port;
	return 0;
}

static int parse_vsock(const char *s, bool listen, struct gp_addr *a)
{
	const char *colon = strchr(s, ':');

	if (!colon) {
		/* vsock:PORT, listeners only: any local CID. */
		if (!listen)
			return -EINVAL;
		a->cid = GP_ADDR_CID_ANY;
		return parse_num(s, strlen(s), UINT32_MAX - 1, &a->port);
	}
	/* CID 0xffffffff is VMADDR_CID_ANY, port 0xffffffff VMADDR_PORT_ANY:
	 * neither names a peer. */
	if (parse_num(s, (size_t)(colon - s), UINT32_MAX - 1, &a->cid) < 0)
		return -EINVAL;
	return parse_num(colon + 1, strlen(colon + 1), UINT32_MAX - 1, &a->port);
}

int gp_addr_parse(const char *s, bool listen, struct gp_addr *out)
{
	struct gp_addr a = { 0 };
	const char *rest;
	size_t len;
	int r;

	if (!s)
		return -EINVAL;
	rest = strchr(s, ':');
	if (!rest)
		return -EINVAL;
	len = (size_t)(rest - s);
	rest++;
	if (len == 4 && strncmp(s, "unix", 4) == 0)
		a.kind = GP_ADDR_UNIX;
	else if (len == 11 && strncmp(s, "unix-stream", 11) == 0)
		a.kind = GP_ADDR_UNIX_STREAM;
	else if (len == 6 && strncmp(s, "serial", 6) == 0)
		a.kind = GP_ADDR_SERIAL;
	else if (len == 5 && strncmp(s, "vsock", 5) == 0)
		a.kind = GP_ADDR_VSOCK;
	else if (len == 3 && strncmp(s, "tcp", 3) == 0)
		a.kind = GP_ADDR_TCP;
	else
		return -EAFNOSUPPORT;
	switch (a.kind) {
	case GP_ADDR_UNIX:
	case GP_ADDR_UNIX_STREAM:
		/* sun_path: 108 bytes with the NUL. */
		if (!*rest || strlen(rest) >= 108)
			return -EINVAL;
		if (listen && a.kind == GP_ADDR_UNIX_STREAM)
			return -EINVAL; /* the server tells the modes apart itself */
		strcpy(a.text, rest);
		break;
	case GP_ADDR_SERIAL:
		if (listen || !*rest || strlen(rest) >= sizeof(a.text) || strchr(rest, '/'))
			return -EINVAL;
		strcpy(a.text, rest);
		break;
	case GP_ADDR_VSOCK:
		r = parse_vsock(rest, listen, &a);
		if (r < 0)
			return r;
		break;
	case GP_ADDR_TCP:
		r = parse_tcp(rest, &a);
		if (r < 0)
			return r;
		break;
	}
	*out = a;
	return 0;
}

bool gp_addr_is_loopback(const struct gp_addr *a)
{
	struct in_addr in4;
	struct in6_addr in6;

	if (a->kind != GP_ADDR_TCP)
		return false;
	if (inet_pton(AF_INET, a->text, &in4) == 1)
		return (ntohl(in4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, a->text, &in6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&in6);
	return false;
}

static int vsock_sa(const struct gp_addr *a, struct sockaddr_vm *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->svm_family = AF_VSOCK;
	sa->svm_cid = a->cid;
	sa->svm_port = a->port;
	return 0;
}

static int tcp_dial(const struct gp_addr *a, int *out_fd)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res, *ai;
	char port[12];
	int fd = -1, r = -EHOSTUNREACH, one = 1;

	snprintf(port, sizeof(port), "%u", a->port);
	r = getaddrinfo(a->text, port, &hints, &res);
	if (r != 0)
		return r == EAI_SYSTEM ? -errno : r == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
	r = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return r;
	/* Request/response messages: no Nagle delay on the small ones. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*out_fd = fd;
	return 0;
}

int gp_addr_dial(const struct gp_addr *a, int *out_fd)
{
	struct sockaddr_vm sv;
	int fd, r;

	switch (a->kind) {
	case GP_ADDR_UNIX:
	case GP_ADDR_UNIX_STREAM:
		r = gp_unix_connect(a->text, &fd);
		if (r == 0)
			*out_fd = fd;
		return r;
	case GP_ADDR_VSOCK:
		vsock_sa(a, &sv);
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sv, sizeof(sv)) < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		*out_fd = fd;
		return 0;
	case GP_ADDR_TCP:
		return tcp_dial(a, out_fd);
	case GP_ADDR_SERIAL:
		break;
	}
	return -EINVAL;
}

static int bind_listen(int fd, const struct sockaddr *sa, socklen_t len, int *out_fd)
{
	int r;

	if (bind(fd, sa, len) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*out_fd = fd;
	return 0;
}

int gp_addr_listen(const struct gp_addr *a, int *out_fd)
{
	struct sockaddr_vm sv;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res;
	char port[12];
	int fd, r, one = 1;

	switch (a->kind) {
	case GP_ADDR_VSOCK:
		vsock_sa(a, &sv);
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		return bind_listen(fd, (struct sockaddr *)&sv, sizeof(sv), out_fd);
	case GP_ADDR_TCP:
		snprintf(port, sizeof(port), "%u", a->port);
		r = getaddrinfo(a->text, port, &hints, &res);
		if (r != 0)
			return r == EAI_SYSTEM ? -errno : r == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			freeaddrinfo(res);
			return r;
		}
		/* A restarted server must not wait out TIME_WAIT. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		r = bind_listen(fd, res->ai_addr, res->ai_addrlen, out_fd);
		freeaddrinfo(res);
		return r;
	default:
		return -EINVAL;
	}
}

int gp_addr_vsock_peer(int fd, uint32_t *cid)
{
	struct sockaddr_vm sv;
	socklen_t len = sizeof(sv);

	if (getpeername(fd, (struct sockaddr *)&sv, &len) < 0)
		return -errno;
	if (sv.svm_family != AF_VSOCK)
		return -EAFNOSUPPORT;
	*cid = sv.svm_cid;
	return 0;
}

int gp_addr_tcp_peer(int fd, char *buf, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		snprintf(buf, cap, "%s:%u", host, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		snprintf(buf, cap, "[%s]:%u", host, port);
	} else {
		return -EAFNOSUPPORT;
	}
	return 0;
}
