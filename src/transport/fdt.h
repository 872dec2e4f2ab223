/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to src/transport: what the unix and stream transports share
 * (io.c). Both are a descriptor with an interrupt flag; they differ only
 * in how a frame goes out and comes in. */
#ifndef GP_TRANSPORT_FDT_H
#define GP_TRANSPORT_FDT_H

#include "transport.h"

struct gp_fd_transport {
	struct gp_transport base;
	int fd;
	int intr; /* atomic: set by interrupt() */
};

/* A transport of @ops over @fd (owned from then on). */
int gp_fd_transport_new(const struct gp_transport_ops *ops, int fd, struct gp_transport **out);
/* Sets the flag and shuts the socket down: a blocked recv wakes (a
 * character device at its next poll timeout: callers wait in steps). */
void gp_fd_transport_interrupt(struct gp_transport *t);
/* Closes the descriptor. */
void gp_fd_transport_free(struct gp_transport *t);
/* The header of a frame of @len payload bytes (magic, version, length
 * filled in from @h's opcode, flags, request id); -EMSGSIZE when too long. */
int gp_frame_hdr(const struct gp_proto_hdr *h, size_t len, uint8_t out[GP_PROTO_HDR_SIZE]);

#endif
