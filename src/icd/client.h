/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ICD's side of the PV channel: one connection per process (the
 * cl_khr_icd entry point has no context to hang it on), made on first use.
 * Calls are encoded with src/proto and carried over the shared-memory
 * ring; calls nobody waits for are posted without a round trip.
 */
#ifndef GP_ICD_CLIENT_H
#define GP_ICD_CLIENT_H

#define CL_TARGET_OPENCL_VERSION 300
/* The ICD implements the deprecated entry points too. */
#define CL_USE_DEPRECATED_OPENCL_1_0_APIS
#define CL_USE_DEPRECATED_OPENCL_1_1_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_2_0_APIS
#define CL_USE_DEPRECATED_OPENCL_2_1_APIS
#define CL_USE_DEPRECATED_OPENCL_2_2_APIS
#include <CL/cl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"

struct gp_icd_conn;

/* Connects to GPUPASS_SERVER (default unix:/run/gpupass/pv.sock) and
 * says hello. On failure prints one line on stderr and returns -errno. */
int gp_icd_conn_open(struct gp_icd_conn **out);
uint32_t gp_icd_conn_ndevices(const struct gp_icd_conn *c);
uint64_t gp_icd_conn_new_id(struct gp_icd_conn *c);
/* True when the server copies big transfers straight from/to our memory. */
bool gp_icd_conn_direct(const struct gp_icd_conn *c);
/* True when big buffers can live in memory shared with the server. */
bool gp_icd_conn_shared(const struct gp_icd_conn *c);
/* False (after one stderr line) once the server has gone. */
bool gp_icd_conn_alive(struct gp_icd_conn *c);
void *gp_icd_conn_bulk(struct gp_icd_conn *c, uint64_t *size);

/* One call: encode into .e, then post (no reply) or call (reply decoded
 * from .d, valid until gp_icd_call_end). The connection is locked from
 * gp_icd_call_sync to gp_icd_call_end. */
struct gp_icd_call {
	struct gp_icd_conn *c;
	struct gp_enc e;
	struct gp_dec d;
	uint8_t small[512];
	bool locked;
	bool patient; /* the reply is expected late: sleep for it, do not spin */
	uint32_t flags; /* more header flags (GP_PROTO_F_STAGED) */
};

void gp_icd_call_begin(struct gp_icd_conn *c, struct gp_icd_call *k);
/* The same with a heap encoder, for payloads above a few hundred bytes. */
void gp_icd_call_begin_heap(struct gp_icd_conn *c, struct gp_icd_call *k);
/* Sends without waiting; @dead_err is returned if the server is gone. */
cl_int gp_icd_call_post(struct gp_icd_call *k, uint16_t op, cl_int dead_err);
/* Sends and waits; returns the reply's OpenCL error (the i32 that starts
 * every reply) or @dead_err. */
cl_int gp_icd_call_sync(struct gp_icd_call *k, uint16_t op, cl_int dead_err);
/* The same for a call that only polls (a bounded wait): it takes the
 * connection only when no other thread of the process wants it, and sets
 * @asked when one asked for it while the call ran, so that the poller
 * can make its next poll short. */
cl_int gp_icd_call_sync_yield(struct gp_icd_call *k, uint16_t op, cl_int dead_err, bool *asked);
void gp_icd_call_end(struct gp_icd_call *k);

/* The connection lock, for sequences that must not interleave (chunked
 * transfers through the bulk region). Calls inside use the _locked
 * variants. */
void gp_icd_conn_lock(struct gp_icd_conn *c);
void gp_icd_conn_unlock(struct gp_icd_conn *c);
/* Sends a sync request without waiting for its reply (it is collected
 * later, in order, with gp_icd_collect); returns 0 or -errno. */
int gp_icd_send_locked(struct gp_icd_call *k, uint16_t op, bool sync);
/* Waits for the next reply; returns its OpenCL error or @dead_err. */
cl_int gp_icd_collect_locked(struct gp_icd_call *k, cl_int dead_err);
/* After a sync reply that announced one: the descriptor from the socket. */
int gp_icd_recv_fd_locked(struct gp_icd_call *k, int *fd);

#endif
