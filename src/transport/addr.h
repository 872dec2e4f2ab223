/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Channel addresses, parsed in one place for the ICD (GPUPASS_SERVER) and
 * gpupass-pvd ([server] listen, --listen):
 *
 *   unix:PATH            unix socket, ring + shared memory (memfd)
 *   unix-stream:PATH     unix socket in stream mode (everything inline)
 *   serial:NAME          a virtio-serial port found by name (guest side)
 *   vsock:CID:PORT       AF_VSOCK (a listener may omit CID: any CID)
 *   tcp:HOST:PORT        TCP; HOST an IPv4 literal, [IPv6] literal or DNS name
 *
 * and the sockets behind them (dial / listen). Stream mode is implied by
 * every kind but unix: (no descriptor passing).
 */
#ifndef GP_TRANSPORT_ADDR_H
#define GP_TRANSPORT_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum gp_addr_kind {
	GP_ADDR_UNIX,
	GP_ADDR_UNIX_STREAM,
	GP_ADDR_SERIAL,
	GP_ADDR_VSOCK,
	GP_ADDR_TCP,
};

/* sun_path holds 108 bytes; a DNS name at most 253 characters. */
#define GP_ADDR_TEXT_MAX 256

struct gp_addr {
	enum gp_addr_kind kind;
	char text[GP_ADDR_TEXT_MAX]; /* unix: path; serial: name; tcp: host (no brackets) */
	uint32_t cid;  /* vsock; GP_ADDR_CID_ANY for a listener without one */
	uint32_t port; /* vsock (32 bits), tcp (1..65535) */
};

/* VMADDR_CID_ANY of <linux/vm_sockets.h>. */
#define GP_ADDR_CID_ANY 0xffffffffu

/* Parses @s. @listen: a listening address (vsock:PORT allowed, serial:
 * refused). -EINVAL on anything malformed, -EAFNOSUPPORT on an unknown
 * kind. @out is set only on success. */
int gp_addr_parse(const char *s, bool listen, struct gp_addr *out);
/* A loopback TCP host: an IPv4 literal in 127.0.0.0/8 or ::1. Names
 * (even "localhost") are not: they resolve elsewhere at will. */
bool gp_addr_is_loopback(const struct gp_addr *a);
/* "vsock", "tcp"... for messages. */
const char *gp_addr_kind_name(enum gp_addr_kind k);

/* Connects to a unix, vsock or tcp address (blocking,
 * close-on-exec). -EINVAL for serial: (see gp_serial_find). */
int gp_addr_dial(const struct gp_addr *a, int *out_fd);
/* Listens on a vsock or tcp address (unix: see gp_unix_listen). */
int gp_addr_listen(const struct gp_addr *a, int *out_fd);
/* The peer CID of an accepted vsock connection. */
int gp_addr_vsock_peer(int fd, uint32_t *cid);
/* The peer of an accepted TCP connection as text ("1.2.3.4:5", "[::1]:5"). */
int gp_addr_tcp_peer(int fd, char *buf, size_t cap);

#endif
