/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Transports carry framed PV messages (src/proto) between the ICD and
 * gpupass-pvd. Each transport is a table of functions behind struct
 * gp_transport, so the unix socket, the shared-memory ring and, later,
 * vsock / virtio-serial / TCP / ivshmem slot in without touching callers.
 *
 * All functions return 0 or a negative errno: -EPIPE when the peer is
 * gone, -ETIMEDOUT, -EBADMSG / -EMSGSIZE / -EPROTONOSUPPORT for a message
 * that breaks the format (the caller ends the session).
 */
#ifndef GP_TRANSPORT_TRANSPORT_H
#define GP_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct gp_transport;

struct gp_transport_ops {
	const char *name;
	/* Sends one message (header fields except magic/version/len are
	 * taken from @h) with @len payload bytes and, where the transport
	 * can, one file descriptor (-1: none). */
	int (*send)(struct gp_transport *t, const struct gp_proto_hdr *h,
		    const void *payload, size_t len, int fd);
	/* Receives one message; the payload (at most @cap bytes) goes to
	 * @buf. @fd (may be NULL) gets a passed descriptor or -1.
	 * @timeout_ms < 0 waits until a message comes or the peer goes. */
	int (*recv)(struct gp_transport *t, struct gp_proto_hdr *h, void *buf,
		    size_t cap, int *fd, int timeout_ms);
	/* Makes a blocked or later recv return -EINTR (from another thread). */
	void (*interrupt)(struct gp_transport *t);
	void (*free)(struct gp_transport *t);
	/* Optional: the next recv expects its message late (the reply to a
	 * bounded wait that did not end last time), so it sleeps at once
	 * instead of spinning first. */
	void (*patient)(struct gp_transport *t);
};

struct gp_transport {
	const struct gp_transport_ops *ops;
};

static inline int gp_transport_send(struct gp_transport *t, const struct gp_proto_hdr *h,
				    const void *payload, size_t len, int fd)
{
	return t->ops->send(t, h, payload, len, fd);
}

static inline int gp_transport_recv(struct gp_transport *t, struct gp_proto_hdr *h,
				    void *buf, size_t cap, int *fd, int timeout_ms)
{
	return t->ops->recv(t, h, buf, cap, fd, timeout_ms);
}

static inline void gp_transport_interrupt(struct gp_transport *t)
{
	if (t)
		t->ops->interrupt(t);
}

static inline void gp_transport_patient(struct gp_transport *t)
{
	if (t && t->ops->patient)
		t->ops->patient(t);
}

static inline void gp_transport_free(struct gp_transport *t)
{
	if (t)
		t->ops->free(t);
}

/* ---- unix socket (SOCK_STREAM, SCM_RIGHTS) ---- */

/* Binds and listens on @path (an old socket file there is replaced). */
int gp_unix_listen(const char *path, int *out_fd);
int gp_unix_connect(const char *path, int *out_fd);
/* Wraps a connected socket; the transport owns @fd from then on. */
int gp_transport_unix_new(int fd, struct gp_transport **out);

/* Waits with poll() for @events (timeout <0: forever): -ETIMEDOUT, or
 * -EPIPE when only a hang-up or error came (io.c). */
int gp_fd_wait(int fd, short events, int timeout_ms);

/* One record (SOCK_SEQPACKET, SOCK_DGRAM) with at most one descriptor
 * (@fd < 0: none) (io.c): 0, -EPIPE when the peer is gone, -errno. */
int gp_msg_send_fd(int sock, const void *buf, size_t len, int fd);
/* Receives one record into @buf: its length; -EPIPE at the end; -EBADMSG
 * (every descriptor closed) when it was longer than @cap or came with more
 * than one descriptor; -errno (recvmsg @flags, e.g. MSG_DONTWAIT).
 * *@fd: the descriptor that came with it, or -1. */
ssize_t gp_msg_recv_fd(int sock, void *buf, size_t cap, int *fd, int flags);

/* ---- shared memory: command rings + bulk region in one memfd ---- */

struct gp_shm;

#define GP_SHM_RING_SIZE (4u << 20)
#define GP_SHM_MAX_BULK (256ull << 20)

/* Client side: a new memfd with both rings and @bulk_size bytes of bulk. */
int gp_shm_create(uint64_t bulk_size, struct gp_shm **out);
/* Server side: maps a memfd received from a client after checking its
 * size and header (-EINVAL on anything unexpected). */
int gp_shm_attach(int fd, struct gp_shm **out);
void gp_shm_free(struct gp_shm *shm);
int gp_shm_fd(const struct gp_shm *shm);
uint64_t gp_shm_size(const struct gp_shm *shm);
void *gp_shm_bulk(const struct gp_shm *shm, uint64_t *size);

/* A transport over the shm rings. The client sends on the request ring and
 * receives on the reply ring, the server the other way round. @alive_fd is
 * the session's socket: when it hangs up, waits end with -EPIPE. The
 * transport does not own @shm or @alive_fd. @spin_ns is how long a waiter
 * spins before it sleeps on a futex. */
enum gp_ring_side { GP_RING_CLIENT, GP_RING_SERVER };
int gp_transport_ring_new(struct gp_shm *shm, enum gp_ring_side side, int alive_fd,
			  uint64_t spin_ns, struct gp_transport **out);

/* ---- stream mode: a byte stream without descriptor passing (stream.c) ---- */

/* Wraps a connected stream (socket or virtio port; set non-blocking);
 * the transport owns @fd. Sending a descriptor fails with -EOPNOTSUPP. */
int gp_transport_stream_new(int fd, struct gp_transport **out);
/* Hunts the stream for the next frame header with @opcode (magic,
 * version, opcode), discarding everything before it, and reads the whole
 * header into @hdr. For resync after a peer died mid-message. */
int gp_stream_find(int fd, uint16_t opcode, uint8_t hdr[GP_PROTO_HDR_SIZE], int timeout_ms);
/* The full-read / full-write loops of every transport (io.c): sockets in
 * either mode, non-blocking character devices; each wait at most
 * @timeout_ms (<0: forever). -EPIPE when the peer is gone. */
int gp_stream_read(int fd, void *buf, size_t len, int timeout_ms);
int gp_stream_write(int fd, const void *buf, size_t len, int timeout_ms);
/* Finds the virtio-serial port named @name: @path gets
 * SYSROOT/dev/vportNpM for the SYSROOT/sys/class/virtio-ports entry whose
 * name file says @name. -ENOENT when there is none. */
int gp_serial_find(const char *sysroot, const char *name, char *path, size_t cap);

/* ---- ivshmem: a VM's bulk-data region (ivshmem.c) ---- */

struct gp_ivshmem;

#define GP_IVSHMEM_NONCE 32u
#define GP_IVSHMEM_HDR 4096u /* header page; the data follow */
/* Region sizes accepted (a power of two, as QEMU requires for the BAR). */
#define GP_IVSHMEM_MIN (1ull << 20)
#define GP_IVSHMEM_MAX (16ull << 30)

/* Guest: maps BAR2 (resource2, read/write) of the first 1af4:1110 device
 * under SYSROOT/sys/bus/pci/devices, or of the device named @want (a PCI
 * address; NULL: any). -ENOENT: none; -EACCES: one, but not ours to map. */
int gp_ivshmem_guest_open(const char *sysroot, const char *want, struct gp_ivshmem **out);
/* Guest: writes a fresh random nonce into the header, and to @nonce. */
int gp_ivshmem_stamp(struct gp_ivshmem *iv, uint8_t nonce[GP_IVSHMEM_NONCE]);
/* Host: maps the file behind a guest's region; its size must be @size
 * (-ERANGE otherwise) and no other session may hold it (-EBUSY). */
int gp_ivshmem_host_open(const char *path, uint64_t size, struct gp_ivshmem **out);
/* Same from @fd (taken: closed on failure and by _free), e.g. a dup of a
 * descriptor the process was given instead of a path it may not open.
 * @busy (or NULL): an in-use flag the caller keeps per open file, set
 * while a region from it is open (-EBUSY when set), cleared by _free. */
int gp_ivshmem_host_open_fd(int fd, uint64_t size, int *busy, struct gp_ivshmem **out);
/* Host: 0 if the region's header holds @nonce, else -EKEYREJECTED. */
int gp_ivshmem_check(const struct gp_ivshmem *iv, const uint8_t nonce[GP_IVSHMEM_NONCE]);
/* The data area (after the header page) and its size. */
void *gp_ivshmem_data(const struct gp_ivshmem *iv, uint64_t *size);
uint64_t gp_ivshmem_size(const struct gp_ivshmem *iv);
/* Guest: the PCI address of the device mapped ("" on the host). */
const char *gp_ivshmem_addr(const struct gp_ivshmem *iv);
void gp_ivshmem_free(struct gp_ivshmem *iv);

#endif
