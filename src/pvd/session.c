/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One session per connected guest process: a thread that reads requests
 * from the shared-memory ring, checks every field, runs the call on the
 * host OpenCL platform and, for synchronous calls, writes the reply.
 *
 * A message that breaks the protocol ends this session only (the reason
 * is logged); OpenCL errors are answers, not protocol errors. Calls the
 * guest pipelines (no reply wanted) keep their first error as the
 * session's pending error, returned by the next synchronising call.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "handles.h"
#include "proto/proto.h"
#include "pvd.h"
#include "kargs.h"
#include "quota.h"
#include "transport/transport.h"

/* Bulk region the server accepts from a client, and the most events one
 * wait list may name (OpenCL sets no limit; this bounds the allocation). */
#define MAX_WAIT 4096u
#define MAX_DEVS 64u
/* Ids below this are the server's (devices); the guest picks the rest. */
#define FIRST_CLIENT_ID 0x10000ull

struct pvd_session {
	struct pvd_session *next;
	struct pvd_server *srv;
	struct pvd_guest *guest; /* NULL: refused */
	char *refusal;
	int fd;
	pid_t pid;
	uid_t uid;
	pthread_t thread;
	struct gp_transport *sock;
	struct gp_transport *ring;
	struct gp_shm *shm;
	struct gp_ivshmem *ivs; /* stream mode: the VM's region, when proved */
	uint8_t *bulk;
	uint64_t bulk_size;
	struct gp_handles *h;
	cl_int pending; /* first error of a pipelined call */
	int done;       /* atomic: the thread has finished */
	bool counted;   /* in guest->sessions */
	bool direct;    /* process_vm_readv/writev work on the guest */
	bool stream;    /* no memfd: calls and data inline on the socket */
	int pending_fd; /* sent on the socket after the reply, then closed */
	uint8_t *rxbuf;
	struct gp_enc reply;
	struct waker *waker; /* woken by completions of events waited for */
	/* Lazy writes: blocking inline writes to an in-order queue, enqueued
	 * from a private copy without waiting; @lazy_ev is the last one's
	 * event. They are finished before anything else is served. */
	cl_event lazy_ev;
	cl_command_queue lazy_q;
	uint64_t lazy_bytes;
	/* Staging: data for the next message (sources and binaries larger
	 * than one message), sent in STAGE slices; see dec_data(). */
	uint8_t *stage;
	uint64_t stage_len, stage_total, stage_used;
	uint64_t stage_charged; /* bytes of it charged to the guest */
	bool stage_oom; /* the buffer could not be had: the message fails */
	bool stage_quota; /* ... because it is beyond the guest's memory_max */
	bool msg_staged; /* the message being served has F_STAGED */
	int pending_kind; /* PVD_PENDING_* it is counted in until freed, or -1 */
};

/* Event completions wake a session's bounded waits (WAIT_POLL). Shared
 * with the callbacks registered on events, which may run after the
 * session is gone: freed by whoever drops the last reference. */
struct waker {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t seq;  /* completions seen */
	unsigned refs; /* the session's + one per registered callback */
};

#define LOG_S(s, lvl, ...) gp_log_msg(&(s)->srv->log, (lvl), __VA_ARGS__)

/* ---- handles ---- */

static cl_int kind_error(uint32_t kind)
{
	switch (kind) {
	case GP_KIND_DEVICE: return CL_INVALID_DEVICE;
	case GP_KIND_CONTEXT: return CL_INVALID_CONTEXT;
	case GP_KIND_QUEUE: return CL_INVALID_COMMAND_QUEUE;
	case GP_KIND_MEM: return CL_INVALID_MEM_OBJECT;
	case GP_KIND_PROGRAM: return CL_INVALID_PROGRAM;
	case GP_KIND_KERNEL: return CL_INVALID_KERNEL;
	case GP_KIND_EVENT: return CL_INVALID_EVENT;
	case GP_KIND_SAMPLER: return CL_INVALID_SAMPLER;
	default: return CL_INVALID_VALUE;
	}
}

/* Looks @id up as @kind; on failure returns the CL_INVALID_* of the kind. */
static cl_int lookup(struct pvd_session *s, uint64_t id, uint32_t kind, void **obj)
{
	struct gp_handle *e;

	if (gp_handles_get(s->h, id, kind, &e) < 0)
		return kind_error(kind);
	*obj = e->obj;
	return CL_SUCCESS;
}

static int fresh_id(struct pvd_session *s, uint64_t id)
{
	struct gp_handle *e;

	if (id < FIRST_CLIENT_ID || gp_handles_get(s->h, id, GP_KIND_NONE, &e) == 0)
		return -EEXIST;
	return 0;
}

/* Registers a new guest-named object. -EEXIST (id not fresh) is a
 * protocol error; a full table is CL_OUT_OF_RESOURCES. */
static int add_handle(struct pvd_session *s, uint64_t id, uint32_t kind, void *obj,
		      uint64_t bytes, cl_int *err)
{
	struct pvd_guest *g = s->guest;
	uint64_t rec = 0;
	int r;

	if (id < FIRST_CLIENT_ID)
		return -EEXIST;
	/* max_objects is per guest, over all its sessions; an event is also
	 * a record the platform holds (charged with its handle). */
	if (pvd_quota_take_object(g) < 0) {
		*err = CL_OUT_OF_RESOURCES;
		return 0;
	}
	if (kind == GP_KIND_EVENT) {
		rec = PVD_RECORD_BYTES;
		if (pvd_quota_charge(g, rec, PVD_CHARGE_RECORD) < 0) {
			pvd_quota_put_object(g);
			*err = CL_OUT_OF_RESOURCES;
			return 0;
		}
	}
	r = gp_handles_add(s->h, id, kind, obj, bytes + rec);
	if (r < 0) {
		pvd_quota_refund(g, rec, PVD_CHARGE_RECORD);
		pvd_quota_put_object(g);
	}
	if (r == -ENOSPC || r == -ENOMEM) {
		*err = CL_OUT_OF_RESOURCES;
		return 0;
	}
	if (r < 0)
		return r;
	*err = CL_SUCCESS;
	return 0;
}

static void release_obj(uint32_t kind, void *obj)
{
	switch (kind) {
	case GP_KIND_DEVICE: { /* a sub-device, and the hold it had on its parent */
		cl_device_id parent = NULL;

		clGetDeviceInfo(obj, CL_DEVICE_PARENT_DEVICE, sizeof(parent), &parent, NULL);
		clReleaseDevice(obj);
		if (parent)
			clReleaseDevice(parent);
		break;
	}
	case GP_KIND_CONTEXT: clReleaseContext(obj); break;
	case GP_KIND_QUEUE: clReleaseCommandQueue(obj); break;
	case GP_KIND_MEM: clReleaseMemObject(obj); break;
	case GP_KIND_PROGRAM: clReleaseProgram(obj); break;
	case GP_KIND_KERNEL: clReleaseKernel(obj); break;
	case GP_KIND_EVENT: clReleaseEvent(obj); break;
	case GP_KIND_SAMPLER: clReleaseSampler(obj); break;
	default: break;
	}
}

/* What a handle's bytes were charged as. */
static unsigned handle_charge_kind(uint32_t kind)
{
	return kind == GP_KIND_MEM ? PVD_CHARGE_MEM :
	       kind == GP_KIND_PROGRAM ? PVD_CHARGE_PROGRAM : PVD_CHARGE_RECORD;
}

static void drop_handle(struct pvd_session *s, struct gp_handle *e)
{
	struct pvd_guest *g = s->guest;

	/* The root devices (ids below FIRST_CLIENT_ID) are the server's. */
	if (e->kind == GP_KIND_DEVICE && e->id < FIRST_CLIENT_ID)
		return;
	if (e->kind == GP_KIND_KERNEL || e->kind == GP_KIND_PROGRAM)
		free(e->aux); /* argument classes; a refused build's log */
	release_obj(e->kind, e->obj);
	pvd_quota_refund(g, e->bytes, handle_charge_kind(e->kind));
	pvd_quota_put_object(g);
}

/* Charges @bytes of device memory to the guest, or says it is over quota. */
static cl_int charge(struct pvd_session *s, uint64_t bytes)
{
	return pvd_quota_charge(s->guest, bytes, PVD_CHARGE_MEM) < 0 ? CL_MEM_OBJECT_ALLOCATION_FAILURE
								     : CL_SUCCESS;
}

static void uncharge(struct pvd_session *s, uint64_t bytes)
{
	pvd_quota_refund(s->guest, bytes, PVD_CHARGE_MEM);
}

/* Host memory other than memory objects (sources, copies, records):
 * CL_OUT_OF_RESOURCES beyond memory_max. */
static cl_int charge_kind(struct pvd_session *s, uint64_t bytes, unsigned kind)
{
	return pvd_quota_charge(s->guest, bytes, kind) < 0 ? CL_OUT_OF_RESOURCES : CL_SUCCESS;
}

/* A private copy of data for a command that runs later (a queued write):
 * charged to the guest, with one record (max_objects) for the command,
 * until the completion callback frees it (free_copy). */
struct held_copy {
	struct pvd_guest *g;
	uint64_t charged;
	_Alignas(16) unsigned char data[];
};

static void *held_copy_new(struct pvd_session *s, const void *src, uint64_t size, cl_int *err)
{
	uint64_t bytes = size + PVD_RECORD_BYTES;
	struct held_copy *c;
	int r = pvd_quota_take_record(s->guest, bytes, PVD_CHARGE_WRITE);

	if (r < 0) {
		*err = CL_OUT_OF_RESOURCES;
		return NULL;
	}
	c = size <= SIZE_MAX - sizeof(*c) ? malloc(sizeof(*c) + (size_t)size) : NULL;
	if (!c) {
		pvd_quota_put_record(s->guest, bytes, PVD_CHARGE_WRITE);
		*err = CL_OUT_OF_HOST_MEMORY;
		return NULL;
	}
	c->g = s->guest;
	c->charged = bytes;
	if (size)
		memcpy(c->data, src, (size_t)size);
	*err = CL_SUCCESS;
	return c->data;
}

static void held_copy_free(void *data)
{
	struct held_copy *c;

	if (!data)
		return;
	c = (struct held_copy *)((unsigned char *)data - offsetof(struct held_copy, data));
	pvd_quota_put_record(c->g, c->charged, PVD_CHARGE_WRITE);
	free(c);
}

/* ---- decoding helpers ---- */

struct waitlist {
	cl_uint n;
	cl_event ev[64];
	cl_event *v;
};

/* Reads "u32 n, u64 ids[n]"; CL_INVALID_EVENT_WAIT_LIST for an unknown id. */
static cl_int dec_waitlist(struct pvd_session *s, struct gp_dec *d, struct waitlist *w)
{
	uint32_t n = gp_dec_count(d, 8, MAX_WAIT);
	cl_int err = CL_SUCCESS;

	w->n = 0;
	w->v = NULL;
	if (d->err || n == 0)
		return CL_SUCCESS;
	w->v = n <= 64 ? w->ev : calloc(n, sizeof(cl_event));
	if (!w->v) {
		d->err = -ENOMEM;
		return CL_OUT_OF_HOST_MEMORY;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = gp_dec_u64(d);
		void *o = NULL;

		if (lookup(s, id, GP_KIND_EVENT, &o) != CL_SUCCESS)
			err = CL_INVALID_EVENT_WAIT_LIST;
		w->v[i] = o;
	}
	w->n = n;
	return err;
}

static void waitlist_free(struct waitlist *w)
{
	if (w->v && w->v != w->ev)
		free(w->v);
}

/* The guest's event id for an enqueue: registers @ev, or, when the call
 * failed, an event already in error so that waits on it fail too. */
static int finish_event(struct pvd_session *s, uint64_t id, cl_command_queue q,
			cl_event ev, cl_int err)
{
	cl_context ctx = NULL;
	cl_int e2;
	int r;

	if (id == 0)
		return 0;
	if (err != CL_SUCCESS || !ev) {
		if (q && clGetCommandQueueInfo(q, CL_QUEUE_CONTEXT, sizeof(ctx), &ctx, NULL) == CL_SUCCESS) {
			ev = clCreateUserEvent(ctx, &e2);
			if (ev)
				clSetUserEventStatus(ev, err < 0 ? err : CL_INVALID_OPERATION);
		}
		if (!ev)
			return 0; /* nothing to name: waits on the id fail as unknown */
	}
	r = add_handle(s, id, GP_KIND_EVENT, ev, 0, &e2);
	if (r < 0 || e2 != CL_SUCCESS) {
		/* Beyond max_objects or memory_max the event is not kept (the
		 * command itself stands): the guest learns it at its next
		 * synchronising call, and waits on the id fail as unknown. */
		clReleaseEvent(ev);
		if (r == 0 && s->pending == CL_SUCCESS)
			s->pending = e2;
	}
	return r;
}

/* Commands the platform queues (copies, fills, markers, barriers) hold
 * its memory until they complete: a record each (bytes and max_objects),
 * refunded by a completion callback; a flood of them behind a user event
 * is refused beyond the quota like queued writes. */
static void CL_CALLBACK record_done(cl_event ev, cl_int status, void *data)
{
	pvd_quota_put_record(data, PVD_RECORD_BYTES, PVD_CHARGE_RECORD);
}

/* Before an enqueue: the command's record (true), or *err set. */
static bool command_take(struct pvd_session *s, cl_int *err)
{
	if (*err != CL_SUCCESS)
		return false;
	if (pvd_quota_take_record(s->guest, PVD_RECORD_BYTES, PVD_CHARGE_RECORD) < 0) {
		*err = CL_OUT_OF_RESOURCES;
		return false;
	}
	return true;
}

/* After it: the record goes with @ev's completion (or now, if the enqueue
 * failed); then the guest's event id, and our reference dropped when the
 * guest named none. */
static int command_done(struct pvd_session *s, uint64_t evid, cl_command_queue q, cl_event ev,
			cl_int err, bool taken)
{
	int r;

	if (taken && (err != CL_SUCCESS || !ev ||
		      pvd_on_complete(ev, record_done, s->guest) < 0))
		pvd_quota_put_record(s->guest, PVD_RECORD_BYTES, PVD_CHARGE_RECORD);
	r = finish_event(s, evid, q, ev, err);
	if (ev && !evid)
		clReleaseEvent(ev);
	return r;
}

/* ---- GET_INFO ---- */

/* Info values that are host handles or pointers never leave the server:
 * the ICD answers those itself from its own objects. */
static bool info_denied(uint32_t sel, uint32_t param)
{
	switch (sel) {
	case GP_INFO_DEVICE:
		return param == CL_DEVICE_PLATFORM || param == CL_DEVICE_PARENT_DEVICE;
	case GP_INFO_CONTEXT:
		return param == CL_CONTEXT_DEVICES || param == CL_CONTEXT_PROPERTIES;
	case GP_INFO_QUEUE:
		return param == CL_QUEUE_CONTEXT || param == CL_QUEUE_DEVICE ||
		       param == CL_QUEUE_DEVICE_DEFAULT || param == CL_QUEUE_PROPERTIES_ARRAY;
	case GP_INFO_MEM:
		return param == CL_MEM_CONTEXT || param == CL_MEM_ASSOCIATED_MEMOBJECT ||
		       param == CL_MEM_HOST_PTR;
	case GP_INFO_PROGRAM:
		return param == CL_PROGRAM_CONTEXT || param == CL_PROGRAM_DEVICES ||
		       param == CL_PROGRAM_BINARIES;
	case GP_INFO_KERNEL:
		return param == CL_KERNEL_CONTEXT || param == CL_KERNEL_PROGRAM;
	case GP_INFO_EVENT:
		return param == CL_EVENT_COMMAND_QUEUE || param == CL_EVENT_CONTEXT;
	case GP_INFO_SAMPLER:
		return param == CL_SAMPLER_CONTEXT;
	case GP_INFO_IMAGE:
		return param == CL_IMAGE_BUFFER;
	default:
		return false;
	}
}

static cl_int call_info(uint32_t sel, void *obj, void *aux, uint64_t auxv, cl_uint param,
			size_t size, void *val, size_t *ret)
{
	switch (sel) {
	case GP_INFO_PLATFORM: return clGetPlatformInfo(obj, param, size, val, ret);
	case GP_INFO_DEVICE: return clGetDeviceInfo(obj, param, size, val, ret);
	case GP_INFO_CONTEXT: return clGetContextInfo(obj, param, size, val, ret);
	case GP_INFO_QUEUE: return clGetCommandQueueInfo(obj, param, size, val, ret);
	case GP_INFO_MEM: return clGetMemObjectInfo(obj, param, size, val, ret);
	case GP_INFO_PROGRAM: return clGetProgramInfo(obj, param, size, val, ret);
	case GP_INFO_PROGRAM_BUILD: return clGetProgramBuildInfo(obj, aux, param, size, val, ret);
	case GP_INFO_KERNEL: return clGetKernelInfo(obj, param, size, val, ret);
	case GP_INFO_KERNEL_WORK_GROUP:
		return clGetKernelWorkGroupInfo(obj, aux, param, size, val, ret);
	case GP_INFO_KERNEL_ARG:
		return clGetKernelArgInfo(obj, (cl_uint)auxv, param, size, val, ret);
	case GP_INFO_EVENT: return clGetEventInfo(obj, param, size, val, ret);
	case GP_INFO_EVENT_PROFILING: return clGetEventProfilingInfo(obj, param, size, val, ret);
	case GP_INFO_SAMPLER: return clGetSamplerInfo(obj, param, size, val, ret);
	case GP_INFO_IMAGE: return clGetImageInfo(obj, param, size, val, ret);
	default: return CL_INVALID_VALUE;
	}
}

static const uint32_t sel_kind[GP_INFO_MAX + 1] = {
	[GP_INFO_PLATFORM] = GP_KIND_DEVICE, /* the platform of this device */
	[GP_INFO_DEVICE] = GP_KIND_DEVICE,
	[GP_INFO_CONTEXT] = GP_KIND_CONTEXT,
	[GP_INFO_QUEUE] = GP_KIND_QUEUE,
	[GP_INFO_MEM] = GP_KIND_MEM,
	[GP_INFO_PROGRAM] = GP_KIND_PROGRAM,
	[GP_INFO_PROGRAM_BUILD] = GP_KIND_PROGRAM,
	[GP_INFO_KERNEL] = GP_KIND_KERNEL,
	[GP_INFO_KERNEL_WORK_GROUP] = GP_KIND_KERNEL,
	[GP_INFO_KERNEL_ARG] = GP_KIND_KERNEL,
	[GP_INFO_EVENT] = GP_KIND_EVENT,
	[GP_INFO_EVENT_PROFILING] = GP_KIND_EVENT,
	[GP_INFO_PROGRAM_BINARY] = GP_KIND_PROGRAM,
	[GP_INFO_SAMPLER] = GP_KIND_SAMPLER,
	[GP_INFO_IMAGE] = GP_KIND_MEM,
};

static cl_int program_binary(void *prog, uint64_t index, void **val, size_t *n)
{
	cl_uint ndev = 0;
	size_t *sizes = NULL;
	unsigned char **bins = NULL;
	cl_int err;

	err = clGetProgramInfo(prog, CL_PROGRAM_NUM_DEVICES, sizeof(ndev), &ndev, NULL);
	if (err != CL_SUCCESS)
		return err;
	if (index >= ndev)
		return CL_INVALID_VALUE;
	sizes = calloc(ndev, sizeof(*sizes));
	bins = calloc(ndev, sizeof(*bins));
	if (!sizes || !bins) {
		err = CL_OUT_OF_HOST_MEMORY;
		goto out;
	}
	err = clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, ndev * sizeof(*sizes), sizes, NULL);
	if (err != CL_SUCCESS)
		goto out;
	for (cl_uint i = 0; i < ndev; i++) {
		bins[i] = malloc(sizes[i] ? sizes[i] : 1);
		if (!bins[i]) {
			err = CL_OUT_OF_HOST_MEMORY;
			goto out;
		}
	}
	err = clGetProgramInfo(prog, CL_PROGRAM_BINARIES, ndev * sizeof(*bins), bins, NULL);
	if (err == CL_SUCCESS) {
		*val = bins[index];
		*n = sizes[index];
		bins[index] = NULL;
	}
out:
	for (cl_uint i = 0; bins && i < ndev; i++)
		free(bins[i]);
	free(bins);
	free(sizes);
	return err;
}

/* The host may answer image queries on buffers: images are checked here. */
static bool is_image(cl_mem m)
{
	cl_mem_object_type t = CL_MEM_OBJECT_BUFFER;

	return clGetMemObjectInfo(m, CL_MEM_TYPE, sizeof(t), &t, NULL) == CL_SUCCESS &&
	       t != CL_MEM_OBJECT_BUFFER && t != CL_MEM_OBJECT_PIPE;
}

/* A build the build check refused (checked_build): its status and log
 * are the check's; true when @param is one of those. */
static bool refused_build_info(struct pvd_session *s, uint64_t id, uint32_t param, void **val,
			       size_t *n)
{
	struct gp_handle *pe = NULL;

	if ((param != CL_PROGRAM_BUILD_LOG && param != CL_PROGRAM_BUILD_STATUS) ||
	    gp_handles_get(s->h, id, GP_KIND_PROGRAM, &pe) < 0 || !pe->aux)
		return false;
	if (param == CL_PROGRAM_BUILD_STATUS) {
		cl_build_status st = CL_BUILD_ERROR;

		*n = sizeof(st);
		*val = malloc(sizeof(st));
		if (*val)
			memcpy(*val, &st, sizeof(st));
	} else {
		*n = strlen(pe->aux) + 1;
		*val = strdup(pe->aux);
	}
	return true;
}

/* GET_INFO: u32 sel, u64 handle, u64 aux, u32 param, u64 offset, u32 max
 * -> i32 err, u64 total size, blob slice [offset, offset + max). */
static int op_get_info(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint32_t sel = gp_dec_u32(d);
	uint64_t id = gp_dec_u64(d), auxv = gp_dec_u64(d);
	uint32_t param = gp_dec_u32(d);
	uint64_t off = gp_dec_u64(d);
	uint32_t max = gp_dec_u32(d);
	void *obj = NULL, *aux = NULL, *val = NULL;
	size_t n = 0;

	if (gp_dec_finish(d) < 0)
		return d->err;
	if (sel == 0 || sel > GP_INFO_MAX || info_denied(sel, param)) {
		*err = CL_INVALID_VALUE;
		return 0;
	}
	*err = lookup(s, id, sel_kind[sel], &obj);
	if (*err == CL_SUCCESS && sel == GP_INFO_IMAGE && !is_image(obj))
		*err = CL_INVALID_MEM_OBJECT;
	if (*err != CL_SUCCESS)
		return 0;
	if (sel == GP_INFO_PLATFORM) {
		*err = clGetDeviceInfo(obj, CL_DEVICE_PLATFORM, sizeof(obj), &obj, NULL);
		if (*err != CL_SUCCESS)
			return 0;
	}
	if (sel == GP_INFO_PROGRAM_BUILD || sel == GP_INFO_KERNEL_WORK_GROUP) {
		*err = lookup(s, auxv, GP_KIND_DEVICE, &aux);
		if (*err != CL_SUCCESS)
			return 0;
	}
	if (sel == GP_INFO_PROGRAM_BINARY) {
		*err = program_binary(obj, auxv, &val, &n);
	} else if (sel == GP_INFO_PROGRAM_BUILD && refused_build_info(s, id, param, &val, &n)) {
		*err = val ? CL_SUCCESS : CL_OUT_OF_HOST_MEMORY;
	} else {
		*err = call_info(sel, obj, aux, auxv, param, 0, NULL, &n);
		if (*err == CL_SUCCESS) {
			val = malloc(n ? n : 1);
			if (!val)
				*err = CL_OUT_OF_HOST_MEMORY;
			else
				*err = call_info(sel, obj, aux, auxv, param, n, val, NULL);
		}
	}
	if (*err == CL_SUCCESS) {
		size_t take = 0;

		if (off < n)
			take = n - off < max ? n - off : max;
		if (take > GP_PROTO_MAX_PAYLOAD - 64)
			take = GP_PROTO_MAX_PAYLOAD - 64;
		gp_enc_u64(&s->reply, n);
		gp_enc_blob(&s->reply, take ? (uint8_t *)val + off : NULL, take);
	}
	free(val);
	return 0;
}

/* ---- objects ---- */

/* CREATE_CONTEXT: u64 id, u32 n, u64 dev[n] -> i32 err */
static int op_create_context(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d);
	uint32_t n = gp_dec_count(d, 8, MAX_DEVS);
	cl_device_id devs[MAX_DEVS];
	cl_context_properties props[3] = { CL_CONTEXT_PLATFORM, 0, 0 };
	cl_platform_id plat = NULL;
	cl_context ctx;

	*err = CL_SUCCESS;
	for (uint32_t i = 0; i < n && !d->err; i++) {
		void *o = NULL;

		if (lookup(s, gp_dec_u64(d), GP_KIND_DEVICE, &o) != CL_SUCCESS)
			*err = CL_INVALID_DEVICE;
		devs[i] = o;
	}
	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if (*err != CL_SUCCESS)
		return 0;
	if (n == 0) {
		*err = CL_INVALID_VALUE;
		return 0;
	}
	clGetDeviceInfo(devs[0], CL_DEVICE_PLATFORM, sizeof(plat), &plat, NULL);
	props[1] = (cl_context_properties)plat;
	ctx = clCreateContext(props, n, devs, NULL, NULL, err);
	if (!ctx)
		return 0;
	return add_handle(s, id, GP_KIND_CONTEXT, ctx, 0, err) < 0 ? -EEXIST :
	       (*err != CL_SUCCESS ? (clReleaseContext(ctx), 0) : 0);
}

/* Partition properties (OpenCL 3.0, 4.3.1): {EQUALLY, n, 0},
 * {BY_AFFINITY_DOMAIN, domain, 0} or {BY_COUNTS, c1, ..., LIST_END, 0}
 * with counts > 0. @n entries before the final 0 must be exactly one of
 * these; what the values mean the host platform checks. */
static bool partition_well_formed(const cl_device_partition_property *p, uint32_t n)
{
	if (n < 2)
		return false;
	switch (p[0]) {
	case CL_DEVICE_PARTITION_EQUALLY:
	case CL_DEVICE_PARTITION_BY_AFFINITY_DOMAIN:
		return n == 2;
	case CL_DEVICE_PARTITION_BY_COUNTS:
		if (p[n - 1] != CL_DEVICE_PARTITION_BY_COUNTS_LIST_END)
			return false;
		for (uint32_t i = 1; i + 1 < n; i++)
			if (p[i] <= 0)
				return false;
		return true;
	default:
		return false;
	}
}

/* CREATE_SUB_DEVICES: u64 device, u32 n, i64 properties[n] (without the
 * final 0), u32 m, u64 ids[m] -> i32 err, u32 count. m = 0 asks only how
 * many sub-devices the partition gives; otherwise m must be that count and
 * the ids name them. A sub-device is a device handle of the guest's
 * (released with RELEASE, counted in max_objects). */
static int op_create_sub_devices(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	cl_device_partition_property props[GP_PROTO_MAX_PARTITION + 1];
	cl_device_id subs[MAX_DEVS];
	uint64_t did = gp_dec_u64(d), ids[MAX_DEVS];
	uint32_t n = gp_dec_count(d, 8, GP_PROTO_MAX_PARTITION), m;
	cl_uint got = 0;
	void *dev = NULL;

	for (uint32_t i = 0; i < n && !d->err; i++)
		props[i] = (cl_device_partition_property)(int64_t)gp_dec_u64(d);
	m = gp_dec_count(d, 8, MAX_DEVS);
	for (uint32_t i = 0; i < m && !d->err; i++)
		ids[i] = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0)
		return d->err;
	for (uint32_t i = 0; i < m; i++) {
		if (fresh_id(s, ids[i]) < 0)
			return -EEXIST;
		for (uint32_t j = 0; j < i; j++)
			if (ids[j] == ids[i])
				return -EEXIST;
	}
	props[n] = 0;
	*err = lookup(s, did, GP_KIND_DEVICE, &dev);
	if (*err == CL_SUCCESS && !partition_well_formed(props, n))
		*err = CL_INVALID_VALUE;
	if (*err == CL_SUCCESS)
		*err = clCreateSubDevices(dev, props, 0, NULL, &got);
	if (*err == CL_SUCCESS && m) {
		if (m != got)
			*err = CL_INVALID_VALUE;
		else
			*err = clCreateSubDevices(dev, props, m, subs, NULL);
		for (uint32_t i = 0; i < m && *err == CL_SUCCESS; i++) {
			if (add_handle(s, ids[i], GP_KIND_DEVICE, subs[i], 0, err) < 0)
				*err = CL_OUT_OF_RESOURCES; /* ids checked fresh above */
			if (*err == CL_SUCCESS) {
				/* Each sub-device holds its parent: whatever order
				 * the guest releases them in, the host platform
				 * never sees a parent go before its children. */
				clRetainDevice(dev);
				continue;
			}
			/* All or none: the guest gets no ids to release. */
			for (uint32_t j = 0; j < i; j++) {
				struct gp_handle e;

				if (gp_handles_remove(s->h, ids[j], &e) == 0)
					drop_handle(s, &e);
			}
			for (uint32_t j = i; j < m; j++)
				clReleaseDevice(subs[j]);
		}
	}
	gp_enc_u32(&s->reply, *err == CL_SUCCESS ? got : 0);
	return 0;
}

/* CREATE_QUEUE: u64 id, u64 ctx, u64 dev, u64 properties -> i32 err.
 * Profiling is always on: the server measures device time with it. */
static int op_create_queue(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d), did = gp_dec_u64(d);
	uint64_t props = gp_dec_u64(d);
	void *ctx, *dev;
	cl_queue_properties qp[3] = { CL_QUEUE_PROPERTIES, 0, 0 };
	cl_command_queue q;

	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if ((*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx)) != CL_SUCCESS ||
	    (*err = lookup(s, did, GP_KIND_DEVICE, &dev)) != CL_SUCCESS)
		return 0;
	if (props & ~(uint64_t)(CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE | CL_QUEUE_PROFILING_ENABLE)) {
		*err = CL_INVALID_QUEUE_PROPERTIES;
		return 0;
	}
	qp[1] = props | CL_QUEUE_PROFILING_ENABLE;
	q = clCreateCommandQueueWithProperties(ctx, dev, qp, err);
	if (!q)
		return 0;
	if (add_handle(s, id, GP_KIND_QUEUE, q, 0, err) < 0)
		return -EEXIST;
	if (*err != CL_SUCCESS)
		clReleaseCommandQueue(q);
	return 0;
}

#define HOST_PTR_FLAGS (CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR | CL_MEM_ALLOC_HOST_PTR)
/* Host access flags: the ICD enforces them on the guest's calls; objects
 * are created without them so that our own transfers (the initial upload
 * of a CL_MEM_COPY_HOST_PTR buffer, say) are not refused by the device. */
#define HOST_ACCESS_FLAGS (CL_MEM_HOST_WRITE_ONLY | CL_MEM_HOST_READ_ONLY | CL_MEM_HOST_NO_ACCESS)

struct shared_map {
	void *ptr;
	size_t size;
};

static void CL_CALLBACK unmap_shared(cl_mem m, void *data)
{
	struct shared_map *sm = data;

	munmap(sm->ptr, sm->size);
	free(sm);
}

/* Memory for a shared buffer: a sealed memfd (the guest cannot shrink it
 * under us) mapped here and, through the descriptor, in the guest. */
static int shared_alloc(uint64_t size, int *fd, struct shared_map **out)
{
	struct shared_map *sm = calloc(1, sizeof(*sm));
	int f, r;

	if (!sm)
		return -ENOMEM;
	f = memfd_create("gpupass-buffer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (f < 0) {
		r = -errno;
		free(sm);
		return r;
	}
	if (ftruncate(f, (off_t)size) < 0 ||
	    fcntl(f, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		goto err_close;
	}
	sm->size = (size_t)size;
	sm->ptr = mmap(NULL, sm->size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	if (sm->ptr == MAP_FAILED) {
		r = -errno;
		goto err_close;
	}
	*fd = f;
	*out = sm;
	return 0;

err_close:
	close(f);
	free(sm);
	return r;
}

/* CREATE_BUFFER: u64 id, u64 ctx, u64 flags, u64 size, u32 want shared
 * -> i32 err, u32 shared. Host-pointer flags are the ICD's business (it
 * copies the data after). A shared buffer lives in memory the guest maps
 * too (its descriptor follows on the socket): only on devices that work
 * on host memory in place (checked at start), so guest reads and writes
 * are plain memcpy after a synchronisation. */
static int op_create_buffer(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d), flags = gp_dec_u64(d);
	uint64_t size = gp_dec_u64(d);
	uint32_t want_shared = gp_dec_u32(d);
	struct shared_map *sm = NULL;
	int fd = -1;
	void *ctx;
	cl_mem m;

	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if ((*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx)) != CL_SUCCESS)
		goto out;
	if (size == 0 || size > SIZE_MAX) {
		*err = CL_INVALID_BUFFER_SIZE;
		goto out;
	}
	if ((*err = charge(s, size)) != CL_SUCCESS)
		goto out;
	flags &= ~(uint64_t)(HOST_PTR_FLAGS | HOST_ACCESS_FLAGS);
	if (want_shared && !s->stream && s->srv->shared_ok && shared_alloc(size, &fd, &sm) == 0)
		flags |= CL_MEM_USE_HOST_PTR;
	m = clCreateBuffer(ctx, (cl_mem_flags)flags, (size_t)size, sm ? sm->ptr : NULL, err);
	if (!m) {
		uncharge(s, size);
		goto out;
	}
	if (add_handle(s, id, GP_KIND_MEM, m, size, err) < 0) {
		uncharge(s, size);
		clReleaseMemObject(m);
		if (sm)
			munmap(sm->ptr, sm->size), free(sm);
		if (fd >= 0)
			close(fd);
		return -EEXIST;
	}
	if (*err != CL_SUCCESS) {
		uncharge(s, size);
		clReleaseMemObject(m);
		goto out;
	}
	if (sm && clSetMemObjectDestructorCallback(m, unmap_shared, sm) == CL_SUCCESS) {
		sm = NULL; /* unmapped when the host object really goes */
		gp_enc_u32(&s->reply, 1);
		s->pending_fd = fd;
		fd = -1;
		return 0;
	}
out:
	gp_enc_u32(&s->reply, 0);
	if (sm) {
		munmap(sm->ptr, sm->size);
		free(sm);
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

/* CREATE_SUBBUFFER: u64 id, u64 parent, u64 flags, u64 origin, u64 size */
static int op_create_subbuffer(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), pid = gp_dec_u64(d), flags = gp_dec_u64(d);
	cl_buffer_region reg;
	void *parent;
	cl_mem m;

	reg.origin = (size_t)gp_dec_u64(d);
	reg.size = (size_t)gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if ((*err = lookup(s, pid, GP_KIND_MEM, &parent)) != CL_SUCCESS)
		return 0;
	flags &= ~(uint64_t)HOST_ACCESS_FLAGS;
	m = clCreateSubBuffer(parent, (cl_mem_flags)flags, CL_BUFFER_CREATE_TYPE_REGION, &reg, err);
	if (!m)
		return 0;
	if (add_handle(s, id, GP_KIND_MEM, m, 0, err) < 0) {
		clReleaseMemObject(m);
		return -EEXIST;
	}
	if (*err != CL_SUCCESS)
		clReleaseMemObject(m);
	return 0;
}

/* CREATE_PROGRAM_SOURCE: u64 id, u64 ctx, blob source */
static void stage_free(struct pvd_session *s)
{
	free(s->stage);
	s->stage = NULL;
	s->stage_len = s->stage_total = s->stage_used = 0;
	s->stage_oom = false;
	s->stage_quota = false;
	if (s->guest)
		pvd_quota_refund(s->guest, s->stage_charged, PVD_CHARGE_STAGE);
	s->stage_charged = 0;
}

/* The message that consumes the staged data makes the platform hold it
 * (charged as the program): the stage's charge ends there, just before. */
static void stage_hand_over(struct pvd_session *s)
{
	if (s->msg_staged && s->guest)
		pvd_quota_refund(s->guest, s->stage_charged, PVD_CHARGE_STAGE);
	if (s->msg_staged)
		s->stage_charged = 0;
}

/* STAGE: u64 offset, u64 total, blob slice (posted). Offset 0 starts a
 * new buffer of @total bytes (1 .. GP_PROTO_MAX_STAGE, an unused one is
 * dropped); every later slice continues exactly where the last one ended,
 * with the same total, and never past it. The next message, sent with
 * F_STAGED, consumes it (serve()). */
static int op_stage(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t off = gp_dec_u64(d), total = gp_dec_u64(d);
	size_t n = 0;
	const void *data = gp_dec_blob(d, GP_PROTO_MAX_PAYLOAD, &n);

	if (gp_dec_finish(d) < 0)
		return d->err;
	if (total == 0 || total > GP_PROTO_MAX_STAGE)
		return -EMSGSIZE;
	if (off == 0) {
		stage_free(s);
		s->stage_total = total;
		/* Charged whole at its start (the buffer is allocated whole);
		 * beyond memory_max the slices are still checked, not kept,
		 * and the message that would use them fails. */
		if (pvd_quota_charge(s->guest, total, PVD_CHARGE_STAGE) < 0) {
			s->stage_quota = s->stage_oom = true;
		} else {
			s->stage_charged = total;
			s->stage = malloc(total);
			s->stage_oom = !s->stage;
		}
	} else if (off != s->stage_len || total != s->stage_total) {
		return -EBADMSG;
	}
	if (n > total - s->stage_len)
		return -EBADMSG;
	if (s->stage)
		memcpy(s->stage + s->stage_len, data, n);
	s->stage_len += n;
	*err = CL_SUCCESS;
	return 0;
}

/* A data field of the message being served: a blob, or with F_STAGED a
 * u64 length of the next bytes of the staging buffer, which must be
 * complete. NULL with d->err set when the message is malformed; NULL
 * without it when the buffer could not be had (s->stage_oom). */
static const void *dec_data(struct pvd_session *s, struct gp_dec *d, size_t *len)
{
	uint64_t n;
	const void *p;

	if (!s->msg_staged)
		return gp_dec_blob(d, GP_PROTO_MAX_PAYLOAD, len);
	n = gp_dec_u64(d);
	*len = 0;
	if (d->err)
		return NULL;
	if (s->stage_len != s->stage_total || s->stage_total == 0 ||
	    n > s->stage_total - s->stage_used) {
		d->err = -EBADMSG;
		return NULL;
	}
	p = s->stage ? s->stage + s->stage_used : NULL;
	s->stage_used += n;
	*len = (size_t)n;
	return p;
}

static int op_create_program_source(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d);
	size_t len = 0;
	const char *src = dec_data(s, d, &len);
	void *ctx;
	cl_program p;

	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if ((*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx)) != CL_SUCCESS)
		return 0;
	if (s->stage_oom) {
		*err = s->stage_quota ? CL_OUT_OF_RESOURCES : CL_OUT_OF_HOST_MEMORY;
		return 0;
	}
	if (len == 0) {
		*err = CL_INVALID_VALUE;
		return 0;
	}
	/* The platform keeps the source while the program lives. */
	stage_hand_over(s);
	if ((*err = charge_kind(s, len, PVD_CHARGE_PROGRAM)) != CL_SUCCESS)
		return 0;
	p = clCreateProgramWithSource(ctx, 1, &src, &len, err);
	if (!p) {
		pvd_quota_refund(s->guest, len, PVD_CHARGE_PROGRAM);
		return 0;
	}
	if (add_handle(s, id, GP_KIND_PROGRAM, p, len, err) < 0) {
		clReleaseProgram(p);
		pvd_quota_refund(s->guest, len, PVD_CHARGE_PROGRAM);
		return -EEXIST;
	}
	if (*err != CL_SUCCESS) {
		clReleaseProgram(p);
		pvd_quota_refund(s->guest, len, PVD_CHARGE_PROGRAM);
	}
	return 0;
}

/* CREATE_PROGRAM_BINARY: u64 id, u64 ctx, u32 n, n x {u64 dev, blob bin}
 * -> i32 err, u32 n, i32 status[n]. Binaries count against memory_max. */
static int op_create_program_binary(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d);
	uint32_t n = gp_dec_count(d, 12, MAX_DEVS);
	cl_device_id devs[MAX_DEVS];
	const unsigned char *bins[MAX_DEVS];
	size_t lens[MAX_DEVS];
	cl_int status[MAX_DEVS];
	uint64_t total = 0;
	void *ctx;
	cl_program p;

	*err = CL_SUCCESS;
	for (uint32_t i = 0; i < n && !d->err; i++) {
		void *o = NULL;

		if (lookup(s, gp_dec_u64(d), GP_KIND_DEVICE, &o) != CL_SUCCESS)
			*err = CL_INVALID_DEVICE;
		devs[i] = o;
		bins[i] = dec_data(s, d, &lens[i]);
		total += lens[i];
		status[i] = CL_INVALID_VALUE;
	}
	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if (*err == CL_SUCCESS)
		*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx);
	if (*err == CL_SUCCESS && s->stage_oom)
		*err = s->stage_quota ? CL_OUT_OF_RESOURCES : CL_OUT_OF_HOST_MEMORY;
	if (*err == CL_SUCCESS && n == 0)
		*err = CL_INVALID_VALUE;
	if (*err == CL_SUCCESS) {
		stage_hand_over(s);
		*err = charge_kind(s, total, PVD_CHARGE_PROGRAM);
	}
	if (*err == CL_SUCCESS) {
		p = clCreateProgramWithBinary(ctx, n, devs, lens, bins, status, err);
		if (!p) {
			pvd_quota_refund(s->guest, total, PVD_CHARGE_PROGRAM);
		} else if (add_handle(s, id, GP_KIND_PROGRAM, p, total, err) < 0) {
			clReleaseProgram(p);
			pvd_quota_refund(s->guest, total, PVD_CHARGE_PROGRAM);
			return -EEXIST;
		} else if (*err != CL_SUCCESS) {
			clReleaseProgram(p);
			pvd_quota_refund(s->guest, total, PVD_CHARGE_PROGRAM);
		}
	}
	gp_enc_u32(&s->reply, n);
	for (uint32_t i = 0; i < n; i++)
		gp_enc_i32(&s->reply, status[i]);
	return 0;
}

/* Build options reach the host's compiler: only those OpenCL defines
 * (OpenCL 3.0, 5.8.6) pass, so a guest cannot hand it -Xclang, -fplugin,
 * -include and the like. */
static bool options_allowed(const char *opts)
{
	char *copy, *tok, *save = NULL;
	bool ok = true, want_arg = false;

	if (!opts)
		return true;
	copy = strdup(opts);
	if (!copy)
		return false;
	for (tok = strtok_r(copy, " \t\n", &save); tok && ok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (want_arg) {
			want_arg = false;
			continue;
		}
		if (strcmp(tok, "-D") == 0 || strcmp(tok, "-I") == 0)
			want_arg = true;
		else if (strncmp(tok, "-D", 2) == 0 || strncmp(tok, "-I", 2) == 0 ||
			 strncmp(tok, "-cl-", 4) == 0 || strcmp(tok, "-w") == 0 ||
			 strcmp(tok, "-Werror") == 0 || strcmp(tok, "-g") == 0 ||
			 (tok[0] == '-' && tok[1] == 'O' && strlen(tok) <= 3) ||
			 strcmp(tok, "-create-library") == 0 || strcmp(tok, "-enable-link-options") == 0)
			continue;
		else
			ok = false;
	}
	free(copy);
	return ok;
}

static char *with_arg_info(const char *opts)
{
	const char *flag = "-cl-kernel-arg-info";
	size_t n = opts ? strlen(opts) : 0;
	char *s = malloc(n + strlen(flag) + 2);

	if (!s)
		return NULL;
	if (opts && strstr(opts, flag)) {
		memcpy(s, opts, n + 1);
	} else {
		memcpy(s, opts ? opts : "", n);
		s[n] = ' ';
		memcpy(s + n + 1, flag, strlen(flag) + 1);
	}
	return s;
}

/* A program's handle aux_n: made of built-in kernels (no compiler runs,
 * and its kernels describe their arguments themselves). */
#define PROGRAM_BUILTIN 1u

/* The build check (build.c) before the real build or compile: a
 * refusal is CL_BUILD_PROGRAM_FAILURE (CL_COMPILE_PROGRAM_FAILURE), its
 * reason the program's build log until the next build (see op_get_info). */
static cl_int checked_build(struct pvd_session *s, struct gp_handle *pe, uint32_t n,
			    const cl_device_id *devs, const char *opts, uint32_t nh,
			    const cl_program *hdrs, const char *const *names)
{
	struct pvd_build_req req = {
		.prog = pe->obj, .devs = devs, .n_devs = n, .options = opts, .compile = names != NULL,
		.headers = hdrs, .header_names = names, .n_headers = nh, .conn_fd = s->fd,
	};
	char *why = NULL;

	free(pe->aux);
	pe->aux = NULL;
	if (!s->guest || pvd_build_check(s->srv, s->guest, &req, &why) < 0 || !why)
		return CL_SUCCESS;
	pe->aux = why;
	return names ? CL_COMPILE_PROGRAM_FAILURE : CL_BUILD_PROGRAM_FAILURE;
}

/* BUILD_PROGRAM: u64 prog, u32 n, u64 dev[n], str options */
static int op_build_program(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d);
	uint32_t n = gp_dec_count(d, 8, MAX_DEVS);
	cl_device_id devs[MAX_DEVS];
	struct gp_handle *pe = NULL;
	char *opts;
	void *p;

	*err = CL_SUCCESS;
	for (uint32_t i = 0; i < n && !d->err; i++) {
		void *o = NULL;

		if (lookup(s, gp_dec_u64(d), GP_KIND_DEVICE, &o) != CL_SUCCESS)
			*err = CL_INVALID_DEVICE;
		devs[i] = o;
	}
	opts = gp_dec_strdup(d, GP_PROTO_MAX_STR);
	if (gp_dec_finish(d) < 0) {
		free(opts);
		return d->err;
	}
	if (*err == CL_SUCCESS)
		*err = gp_handles_get(s->h, id, GP_KIND_PROGRAM, &pe) < 0 ? CL_INVALID_PROGRAM
									 : CL_SUCCESS;
	p = pe ? pe->obj : NULL;
	if (*err == CL_SUCCESS && !options_allowed(opts))
		*err = CL_INVALID_BUILD_OPTIONS;
	if (*err == CL_SUCCESS && pe->aux_n == PROGRAM_BUILTIN) {
		*err = clBuildProgram(p, n, n ? devs : NULL, opts, NULL, NULL);
	} else if (*err == CL_SUCCESS) {
		/* Argument info is how the server knows which kernel arguments
		 * are memory objects: never let a guest's bytes pose as one. */
		char *full = with_arg_info(opts);

		*err = full ? checked_build(s, pe, n, devs, full, 0, NULL, NULL)
			    : CL_OUT_OF_HOST_MEMORY;
		if (*err == CL_SUCCESS)
			*err = clBuildProgram(p, n, n ? devs : NULL, full, NULL, NULL);
		free(full);
	}
	free(opts);
	return 0;
}

/* What each kernel argument may be set to, from the argument info. */
enum { ARG_BYTES, ARG_MEM, ARG_LOCAL, ARG_SAMPLER, ARG_UNKNOWN };

/* The server's record of a kernel argument (a kernel handle's aux). */
struct karg {
	uint8_t cls;   /* ARG_* */
	uint32_t size; /* ARG_BYTES: its type's size when known, else 0 */
	uint64_t local; /* ARG_LOCAL: the size set, 0 until set */
};

static struct karg *arg_records(cl_kernel k, cl_uint n)
{
	struct karg *c = calloc(n ? n : 1, sizeof(*c));
	cl_program prog = NULL;
	cl_device_id dev = NULL;
	cl_uint bits = 64;

	/* The address width of the program's (first) device: size_t & co. */
	if (clGetKernelInfo(k, CL_KERNEL_PROGRAM, sizeof(prog), &prog, NULL) == CL_SUCCESS &&
	    clGetProgramInfo(prog, CL_PROGRAM_DEVICES, sizeof(dev), &dev, NULL) == CL_SUCCESS)
		clGetDeviceInfo(dev, CL_DEVICE_ADDRESS_BITS, sizeof(bits), &bits, NULL);
	for (cl_uint i = 0; c && i < n; i++) {
		cl_kernel_arg_address_qualifier q = 0;
		char type[64] = "";

		if (clGetKernelArgInfo(k, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof(q), &q, NULL) != CL_SUCCESS) {
			c[i].cls = ARG_UNKNOWN;
			continue;
		}
		clGetKernelArgInfo(k, i, CL_KERNEL_ARG_TYPE_NAME, sizeof(type) - 1, type, NULL);
		if (q == CL_KERNEL_ARG_ADDRESS_GLOBAL || q == CL_KERNEL_ARG_ADDRESS_CONSTANT ||
		    strncmp(type, "image", 5) == 0 || strncmp(type, "pipe", 4) == 0) {
			c[i].cls = ARG_MEM;
		} else if (q == CL_KERNEL_ARG_ADDRESS_LOCAL) {
			c[i].cls = ARG_LOCAL;
		} else if (strcmp(type, "sampler_t") == 0) {
			c[i].cls = ARG_SAMPLER;
		} else if (strcmp(type, "queue_t") == 0) {
			c[i].cls = ARG_UNKNOWN;
		} else {
			c[i].cls = ARG_BYTES;
			c[i].size = gp_cl_type_size(type, bits);
		}
	}
	return c;
}

/* What a kernel makes the worker hold besides the platform's object: the
 * argument records, and the argument values the platform keeps (128
 * bytes each, the largest built-in type: long16; a struct's value may be
 * larger, up to GP_PROTO_MAX_STR, and is not counted). */
static uint64_t kernel_bytes(cl_uint nargs)
{
	return PVD_RECORD_BYTES + (uint64_t)nargs * (sizeof(struct karg) + 128);
}

/* CREATE_KERNEL: u64 id, u64 prog, str name -> i32 err, u32 num_args */
static int op_create_kernel(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), pid = gp_dec_u64(d);
	char *name = gp_dec_strdup(d, GP_PROTO_MAX_STR);
	cl_uint nargs = 0;
	void *p;
	cl_kernel k;

	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0) {
		free(name);
		return d->err ? d->err : -EEXIST;
	}
	*err = lookup(s, pid, GP_KIND_PROGRAM, &p);
	if (*err == CL_SUCCESS) {
		k = clCreateKernel(p, name, err);
		if (k) {
			struct karg *cls;
			uint64_t kb;

			clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof(nargs), &nargs, NULL);
			cls = arg_records(k, nargs);
			kb = kernel_bytes(nargs);
			if (!cls) {
				clReleaseKernel(k);
				*err = CL_OUT_OF_HOST_MEMORY;
			} else if ((*err = charge_kind(s, kb, PVD_CHARGE_RECORD)) != CL_SUCCESS) {
				clReleaseKernel(k);
				free(cls);
			} else if (add_handle(s, id, GP_KIND_KERNEL, k, kb, err) < 0) {
				clReleaseKernel(k);
				free(cls);
				free(name);
				pvd_quota_refund(s->guest, kb, PVD_CHARGE_RECORD);
				return -EEXIST;
			} else if (*err != CL_SUCCESS) {
				clReleaseKernel(k);
				free(cls);
				pvd_quota_refund(s->guest, kb, PVD_CHARGE_RECORD);
			} else {
				struct gp_handle *e;

				gp_handles_get(s->h, id, GP_KIND_KERNEL, &e);
				e->aux = cls;
				e->aux_n = nargs;
			}
		}
	}
	free(name);
	gp_enc_u32(&s->reply, nargs);
	return 0;
}

/* CLONE_KERNEL: u64 id, u64 source kernel -> i32 err (OpenCL 2.1:
 * the copy keeps the source's argument values). */
static int op_clone_kernel(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), kid = gp_dec_u64(d);
	struct gp_handle *src, *e;
	struct karg *cls;
	uint64_t kb;
	cl_kernel k;

	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if (gp_handles_get(s->h, kid, GP_KIND_KERNEL, &src) < 0) {
		*err = CL_INVALID_KERNEL;
		return 0;
	}
	cls = calloc(src->aux_n ? src->aux_n : 1, sizeof(*cls));
	if (!cls) {
		*err = CL_OUT_OF_HOST_MEMORY;
		return 0;
	}
	memcpy(cls, src->aux, src->aux_n * sizeof(*cls));
	kb = kernel_bytes(src->aux_n);
	if ((*err = charge_kind(s, kb, PVD_CHARGE_RECORD)) != CL_SUCCESS) {
		free(cls);
		return 0;
	}
	k = clCloneKernel(src->obj, err);
	if (!k) {
		free(cls);
		pvd_quota_refund(s->guest, kb, PVD_CHARGE_RECORD);
		return 0;
	}
	if (add_handle(s, id, GP_KIND_KERNEL, k, kb, err) < 0) {
		clReleaseKernel(k);
		free(cls);
		pvd_quota_refund(s->guest, kb, PVD_CHARGE_RECORD);
		return -EEXIST;
	}
	if (*err != CL_SUCCESS) {
		clReleaseKernel(k);
		free(cls);
		pvd_quota_refund(s->guest, kb, PVD_CHARGE_RECORD);
		return 0;
	}
	gp_handles_get(s->h, id, GP_KIND_KERNEL, &e);
	e->aux = cls;
	e->aux_n = src->aux_n;
	return 0;
}

/* RELEASE: u64 id (pipelined) */
static int op_release(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d);
	struct gp_handle e;

	if (gp_dec_finish(d) < 0)
		return d->err;
	/* Releasing an id that is not (or no longer) there harms nobody and
	 * must not surface later as someone else's error. */
	*err = CL_SUCCESS;
	if (id >= FIRST_CLIENT_ID && gp_handles_remove(s->h, id, &e) == 0)
		drop_handle(s, &e);
	return 0;
}

/* SET_KERNEL_ARG: u64 kernel, u32 index, u32 type, u64 handle-or-size,
 * blob value. type 0: bytes, 1: memory object (handle 0: NULL),
 * 2: local memory of that size, 3: sampler. */
static int op_set_kernel_arg(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t kid = gp_dec_u64(d);
	uint32_t idx = gp_dec_u32(d), type = gp_dec_u32(d);
	uint64_t hv = gp_dec_u64(d);
	size_t len = 0;
	const void *val = gp_dec_blob(d, GP_PROTO_MAX_STR, &len);
	struct gp_handle *ke;
	struct karg *cls;
	void *k, *o = NULL;

	if (gp_dec_finish(d) < 0)
		return d->err;
	if (gp_handles_get(s->h, kid, GP_KIND_KERNEL, &ke) < 0) {
		*err = CL_INVALID_KERNEL;
		return 0;
	}
	k = ke->obj;
	cls = ke->aux;
	if (idx >= ke->aux_n) {
		*err = CL_INVALID_ARG_INDEX;
		return 0;
	}
	/* The argument's class decides what the guest may pass: bytes never
	 * reach an argument the host reads as an object pointer. */
	if ((cls[idx].cls == ARG_MEM && type != 1) || (cls[idx].cls == ARG_LOCAL && type != 2) ||
	    (cls[idx].cls == ARG_SAMPLER && type != 3) || (cls[idx].cls == ARG_BYTES && type != 0) ||
	    cls[idx].cls == ARG_UNKNOWN) {
		*err = cls[idx].cls == ARG_MEM ? CL_INVALID_MEM_OBJECT :
		       cls[idx].cls == ARG_SAMPLER ? CL_INVALID_SAMPLER :
		       cls[idx].cls == ARG_UNKNOWN ? CL_INVALID_OPERATION : CL_INVALID_ARG_VALUE;
		return 0;
	}
	/* Sizes are checked here, not left to the platform (PoCL asserts on
	 * some): OpenCL 3.0, 5.9.2. */
	if ((type == 0 && len && cls[idx].size && len != cls[idx].size) ||
	    (type == 2 && (hv == 0 || hv > pvd_kargs_local_max(s->srv)))) {
		*err = CL_INVALID_ARG_SIZE;
		return 0;
	}
	switch (type) {
	case 0:
		*err = clSetKernelArg(k, idx, len, len ? val : NULL);
		break;
	case 1:
		if (hv && (*err = lookup(s, hv, GP_KIND_MEM, &o)) != CL_SUCCESS)
			break;
		*err = clSetKernelArg(k, idx, sizeof(cl_mem), &o);
		break;
	case 2:
		*err = clSetKernelArg(k, idx, (size_t)hv, NULL);
		if (*err == CL_SUCCESS)
			cls[idx].local = hv;
		break;
	case 3:
		if ((*err = lookup(s, hv, GP_KIND_SAMPLER, &o)) == CL_SUCCESS)
			*err = clSetKernelArg(k, idx, sizeof(cl_sampler), &o);
		break;
	default:
		return -EBADMSG;
	}
	return 0;
}

static void CL_CALLBACK free_copy(cl_event ev, cl_int status, void *data)
{
	held_copy_free(data);
}

/* The watchdog's record of an enqueued command (watch.c): @ev always a
 * real event, released by the caller when the guest named none. */
static void watch_enqueued(struct pvd_session *s, struct pvd_guest *kernel_of, cl_event ev,
			  const char *what)
{
	if (pvd_watch_event(s->srv, kernel_of, ev, what) < 0)
		LOG_S(s, GP_LOG_WARN, "guest %s: %s is not watched (out of memory)", s->guest->name,
		      what);
}

/* ENQUEUE_NDRANGE: u64 queue, u64 kernel, u32 dim, u32 has_offset,
 * u32 has_local, u64 offset[3], u64 global[3], u64 local[3], wait list,
 * u64 event id */
static int op_ndrange(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d), kid = gp_dec_u64(d);
	uint32_t dim = gp_dec_u32(d), has_off = gp_dec_u32(d), has_local = gp_dec_u32(d);
	size_t off[3], glob[3], loc[3];
	struct waitlist w;
	uint64_t evid;
	void *q = NULL, *k = NULL;
	struct gp_handle *ke = NULL;
	cl_event ev = NULL;
	int r;

	for (int i = 0; i < 3; i++)
		off[i] = (size_t)gp_dec_u64(d);
	for (int i = 0; i < 3; i++)
		glob[i] = (size_t)gp_dec_u64(d);
	for (int i = 0; i < 3; i++)
		loc[i] = (size_t)gp_dec_u64(d);
	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || (evid && fresh_id(s, evid) < 0)) {
		waitlist_free(&w);
		return d->err ? d->err : -EEXIST;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS)
		*err = gp_handles_get(s->h, kid, GP_KIND_KERNEL, &ke) < 0 ? CL_INVALID_KERNEL
									 : CL_SUCCESS;
	k = ke ? ke->obj : NULL;
	if (*err == CL_SUCCESS && (dim < 1 || dim > 3))
		*err = CL_INVALID_WORK_DIMENSION;
	if (*err == CL_SUCCESS) {
		/* Local memory: the platform must never be asked for more than
		 * the device has (PoCL asserts). */
		const struct karg *a = ke->aux;
		uint64_t local = 0;

		for (uint32_t i = 0; i < ke->aux_n; i++)
			local += a[i].local;
		*err = pvd_kargs_launch_check(q, k, local);
	}
	if (*err == CL_SUCCESS) {
		/* No watchdog stops a runaway kernel on a CPU device: refuse
		 * launches beyond 2^40 work-items, which would hold the device
		 * for every guest. */
		unsigned __int128 items = 1;

		for (uint32_t i = 0; i < dim; i++)
			items *= glob[i];
		if (items > ((unsigned __int128)1 << 40))
			*err = CL_INVALID_GLOBAL_WORK_SIZE;
	}
	/* A launch in flight is a record (the platform's command, its
	 * argument copies, our callback) until kernel_done. */
	if (*err == CL_SUCCESS &&
	    pvd_quota_take_record(s->guest, PVD_RECORD_BYTES, PVD_CHARGE_RECORD) < 0)
		*err = CL_OUT_OF_RESOURCES;
	if (*err == CL_SUCCESS) {
		pvd_sched_before_launch(s->srv, s->guest);
		*err = clEnqueueNDRangeKernel(q, k, dim, has_off ? off : NULL, glob,
					      has_local ? loc : NULL, w.n, w.v, &ev);
		if (*err == CL_SUCCESS) {
			char what[PVD_CMD_WHAT_MAX] = "kernel '", *name = what + 8;

			if (clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof(what) - 10, name, NULL) !=
			    CL_SUCCESS)
				name[0] = '\0';
			name[sizeof(what) - 11] = '\0';
			strcat(name, "'");
			watch_enqueued(s, s->guest, ev, what);
		} else {
			pvd_quota_put_record(s->guest, PVD_RECORD_BYTES, PVD_CHARGE_RECORD);
		}
	}
	waitlist_free(&w);
	r = finish_event(s, evid, q, ev, *err);
	if (ev && !evid)
		clReleaseEvent(ev);
	return r;
}

/* Copies between the guest process's memory and a mapped buffer with
 * process_vm_readv/writev: one copy, as natively. Only for guests that are
 * host processes which let us (checked once at hello); the address is
 * only ever used in the guest's own address space. */
static int direct_copy(struct pvd_session *s, bool from_guest, void *local, uint64_t addr,
		       uint64_t size)
{
	uint64_t done = 0;

	while (done < size) {
		struct iovec l = { (uint8_t *)local + done, (size_t)(size - done) };
		struct iovec r = { (void *)(uintptr_t)(addr + done), (size_t)(size - done) };
		ssize_t n = from_guest ? process_vm_readv(s->pid, &l, 1, &r, 1, 0)
				       : process_vm_writev(s->pid, &l, 1, &r, 1, 0);

		if (n <= 0)
			return -EFAULT;
		done += (uint64_t)n;
	}
	return 0;
}

/* Where @size bytes at @boff of the bulk region (the memfd's, or a VM's
 * ivshmem region) are, or NULL (logged) when they are not all inside it:
 * the caller ends the session. The bounds are the ones we measured. */
static uint8_t *bulk_span(struct pvd_session *s, uint64_t boff, uint64_t size)
{
	if (!s->bulk || boff > s->bulk_size || size > s->bulk_size - boff) {
		LOG_S(s, GP_LOG_WARN, "guest %s (pid %d): bulk offset %llu + %llu beyond its %s (%llu bytes)",
		      s->guest ? s->guest->name : "?", (int)s->pid, (unsigned long long)boff,
		      (unsigned long long)size, s->ivs ? "ivshmem region" : "bulk region",
		      (unsigned long long)s->bulk_size);
		return NULL;
	}
	return s->bulk + boff;
}

/* A buffer's data through a map: write (guest -> buffer) or read. */
static cl_int mapped_transfer(struct pvd_session *s, cl_command_queue q, cl_mem m, bool write,
			      uint64_t off, uint64_t size, uint64_t addr, struct waitlist *w,
			      cl_event *ev)
{
	cl_int err, e2;
	void *p;

	p = clEnqueueMapBuffer(q, m, CL_TRUE, write ? CL_MAP_WRITE_INVALIDATE_REGION : CL_MAP_READ,
			       (size_t)off, (size_t)size, w->n, w->v, NULL, &err);
	if (!p)
		return err;
	/* A bad address is the guest's own fault: the call fails, the
	 * session goes on. */
	err = direct_copy(s, write, p, addr, size) < 0 ? CL_INVALID_VALUE : CL_SUCCESS;
	e2 = clEnqueueUnmapMemObject(q, m, p, 0, NULL, ev);
	if (e2 == CL_SUCCESS && ev)
		e2 = clWaitForEvents(1, ev);
	else if (e2 == CL_SUCCESS)
		e2 = clFinish(q);
	return err != CL_SUCCESS ? err : e2;
}

/* Lazy writes (op_write_buffer) held in private copies: at most this
 * much before the session waits for them. */
#define LAZY_MAX_BYTES (8u << 20)

/* Waits for the session's lazy writes. They wait for nothing but each
 * other: the guest settles a queue before its first blocking write, so
 * this never waits on a user event the guest has yet to set. A failed
 * write's status becomes the session's pending error (pipelined calls). */
static void settle_lazy(struct pvd_session *s)
{
	cl_int st = CL_COMPLETE;

	if (!s->lazy_ev)
		return;
	if (clWaitForEvents(1, &s->lazy_ev) != CL_SUCCESS)
		clGetEventInfo(s->lazy_ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st, NULL);
	if (st < 0 && s->pending == CL_SUCCESS)
		s->pending = st;
	clReleaseEvent(s->lazy_ev);
	s->lazy_ev = NULL;
	s->lazy_q = NULL;
	s->lazy_bytes = 0;
}

static bool in_order(cl_command_queue q)
{
	cl_command_queue_properties p = 0;

	return clGetCommandQueueInfo(q, CL_QUEUE_PROPERTIES, sizeof(p), &p, NULL) == CL_SUCCESS &&
	       !(p & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
}

/* WRITE_BUFFER: u64 queue, u64 mem, u64 offset, u64 size, u32 where
 * (0 inline, 1 bulk region at u64 offset, 2 guest address u64), u32
 * blocking (the guest waits for the write; required for where 2), blob
 * inline data, wait list, u64 event id. queue 0: no queue (the initial
 * data of a new buffer). */
static int op_write_buffer(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d), mid = gp_dec_u64(d), off = gp_dec_u64(d);
	uint64_t size = gp_dec_u64(d);
	uint32_t where = gp_dec_u32(d), blocking = gp_dec_u32(d);
	uint64_t boff = gp_dec_u64(d);
	size_t ilen = 0;
	const uint8_t *inl = gp_dec_blob(d, GP_PROTO_MAX_PAYLOAD, &ilen);
	struct waitlist w;
	uint64_t evid;
	const uint8_t *src = NULL;
	void *q = NULL, *m = NULL, *copy = NULL;
	cl_event ev = NULL;
	bool temp_q = false, lazy;
	int r;

	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || (evid && fresh_id(s, evid) < 0))
		goto proto;
	if (where == 0) {
		if (ilen != size)
			goto proto;
		src = inl;
	} else if (where == 1) {
		src = bulk_span(s, boff, size);
		if (!src)
			goto proto;
	} else if (where != 2 || !s->direct || !blocking) {
		goto proto;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, mid, GP_KIND_MEM, &m);
	if (*err == CL_SUCCESS && qid)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS && !qid) {
		/* Initial data of a new buffer: a short-lived queue of the
		 * buffer's context (only host-pointer creations come here). */
		cl_context ctx = NULL;
		cl_device_id dev = NULL;

		clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof(ctx), &ctx, NULL);
		clGetContextInfo(ctx, CL_CONTEXT_DEVICES, sizeof(dev), &dev, NULL);
		q = clCreateCommandQueueWithProperties(ctx, dev, NULL, err);
		temp_q = q != NULL;
		evid = 0;
	}
	/* A blocking write with its data in the message, to an in-order
	 * queue: the guest goes on as soon as it is posted, and whatever it
	 * sends next is served only once the write is done (serve()); so
	 * the session need not wait for it here, and a run of small writes
	 * costs an enqueue each instead of a device round trip each. */
	lazy = *err == CL_SUCCESS && where == 0 && blocking && q && !w.n && size && in_order(q);
	if (s->lazy_ev && (!lazy || s->lazy_q != q))
		settle_lazy(s);
	if (*err == CL_SUCCESS && where == 2) {
		struct pvd_cmd c;

		pvd_cmd_begin(s->srv, &c, "write of %" PRIu64 " bytes", size);
		*err = mapped_transfer(s, q, m, true, off, size, boff, &w, evid ? &ev : NULL);
		pvd_cmd_end(s->srv, &c);
	} else if (*err == CL_SUCCESS && (w.n || !blocking || lazy) && size) {
		/* A write that may wait (for events, or behind commands that do)
		 * must not hold up the session: unless the guest itself blocks
		 * on it, it is written from a private copy, without waiting. */
		copy = held_copy_new(s, src, size, err);
		if (copy) {
			*err = clEnqueueWriteBuffer(q, m, CL_FALSE, (size_t)off, (size_t)size, copy,
						    w.n, w.v, &ev);
			if (*err != CL_SUCCESS) {
				held_copy_free(copy);
			} else if (pvd_on_complete(ev, free_copy, copy) < 0) {
				clWaitForEvents(1, &ev); /* no callback: wait, then free */
				held_copy_free(copy);
			}
		}
		if (*err == CL_SUCCESS && lazy) {
			if (s->lazy_ev)
				clReleaseEvent(s->lazy_ev); /* in order: the new one is later */
			clRetainEvent(ev);
			s->lazy_ev = ev;
			s->lazy_q = q;
			s->lazy_bytes += size;
		}
	} else if (*err == CL_SUCCESS) {
		struct pvd_cmd c;

		pvd_cmd_begin(s->srv, &c, "write of %" PRIu64 " bytes", size);
		*err = clEnqueueWriteBuffer(q, m, CL_TRUE, (size_t)off, (size_t)size, src, w.n, w.v,
					    evid ? &ev : NULL);
		pvd_cmd_end(s->srv, &c);
	}
	waitlist_free(&w);
	r = finish_event(s, evid, q, ev, *err);
	if (ev && !evid)
		clReleaseEvent(ev);
	if (temp_q)
		clReleaseCommandQueue(q);
	if (s->lazy_bytes > LAZY_MAX_BYTES)
		settle_lazy(s);
	return r;
proto:
	waitlist_free(&w);
	return d->err ? d->err : -EBADMSG;
}

/* READ_BUFFER: u64 queue, u64 mem, u64 offset, u64 size, u32 where
 * (0 inline in the reply, 1 bulk, 2 guest address), u64 bulk offset or
 * address, wait list, u64 event -> i32 err, blob data (inline only).
 * Always blocking on the server. */
static int op_read_buffer(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d), mid = gp_dec_u64(d), off = gp_dec_u64(d);
	uint64_t size = gp_dec_u64(d);
	uint32_t where = gp_dec_u32(d);
	uint64_t boff = gp_dec_u64(d);
	struct waitlist w;
	uint64_t evid;
	uint8_t *dst = NULL;
	void *q = NULL, *m = NULL;
	cl_event ev = NULL;

	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || (evid && fresh_id(s, evid) < 0))
		goto proto;
	if (where == 0) {
		if (size > GP_PROTO_MAX_PAYLOAD - 64)
			goto proto;
		gp_enc_u32(&s->reply, (uint32_t)size);
		dst = gp_enc_reserve(&s->reply, (size_t)size);
		if (!dst && size)
			goto proto;
	} else if (where == 1) {
		dst = bulk_span(s, boff, size);
		if (!dst)
			goto proto;
	} else if (where != 2 || !s->direct) {
		goto proto;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS)
		*err = lookup(s, mid, GP_KIND_MEM, &m);
	if (*err == CL_SUCCESS) {
		struct pvd_cmd c;

		pvd_cmd_begin(s->srv, &c, "read of %" PRIu64 " bytes", size);
		if (where == 2)
			*err = mapped_transfer(s, q, m, false, off, size, boff, &w, evid ? &ev : NULL);
		else
			*err = clEnqueueReadBuffer(q, m, CL_TRUE, (size_t)off, (size_t)size, dst, w.n,
						   w.v, evid ? &ev : NULL);
		pvd_cmd_end(s->srv, &c);
	}
	waitlist_free(&w);
	return finish_event(s, evid, q, ev, *err);
proto:
	waitlist_free(&w);
	return d->err ? d->err : -EBADMSG;
}

/* The end of a pipelined enqueue whose command the watchdog follows and
 * whose record (@taken: command_take) goes with its completion. */
static int watched_end(struct pvd_session *s, struct waitlist *w, uint64_t evid,
		       cl_command_queue q, cl_event ev, cl_int err, const char *what, bool taken)
{
	waitlist_free(w);
	if (err == CL_SUCCESS && ev)
		watch_enqueued(s, NULL, ev, what);
	return command_done(s, evid, q, ev, err, taken);
}

/* COPY_BUFFER: u64 queue, u64 src, u64 dst, u64 src_off, u64 dst_off,
 * u64 size, wait list, u64 event (pipelined) */
static int op_copy_buffer(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d), sid = gp_dec_u64(d), did = gp_dec_u64(d);
	uint64_t so = gp_dec_u64(d), dof = gp_dec_u64(d), size = gp_dec_u64(d);
	struct waitlist w;
	uint64_t evid;
	void *q = NULL, *sm, *dm;
	cl_event ev = NULL;
	bool taken;

	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || (evid && fresh_id(s, evid) < 0)) {
		waitlist_free(&w);
		return d->err ? d->err : -EEXIST;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS)
		*err = lookup(s, sid, GP_KIND_MEM, &sm);
	if (*err == CL_SUCCESS)
		*err = lookup(s, did, GP_KIND_MEM, &dm);
	taken = command_take(s, err);
	if (*err == CL_SUCCESS)
		*err = clEnqueueCopyBuffer(q, sm, dm, (size_t)so, (size_t)dof, (size_t)size,
					   w.n, w.v, &ev);
	return watched_end(s, &w, evid, q, ev, *err, "copy", taken);
}

/* FILL_BUFFER: u64 queue, u64 mem, blob pattern, u64 offset, u64 size,
 * wait list, u64 event (pipelined) */
static int op_fill_buffer(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d), mid = gp_dec_u64(d);
	size_t plen = 0;
	const void *pat = gp_dec_blob(d, 128, &plen);
	uint64_t off = gp_dec_u64(d), size = gp_dec_u64(d);
	struct waitlist w;
	uint64_t evid;
	void *q = NULL, *m;
	cl_event ev = NULL;
	bool taken;

	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || (evid && fresh_id(s, evid) < 0)) {
		waitlist_free(&w);
		return d->err ? d->err : -EEXIST;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS)
		*err = lookup(s, mid, GP_KIND_MEM, &m);
	taken = command_take(s, err);
	if (*err == CL_SUCCESS)
		*err = clEnqueueFillBuffer(q, m, plen ? pat : NULL, plen, (size_t)off, (size_t)size,
					   w.n, w.v, &ev);
	return watched_end(s, &w, evid, q, ev, *err, "fill", taken);
}

/* MARKER / BARRIER: u64 queue, wait list, u64 event (pipelined) */
static int marker_or_barrier(struct pvd_session *s, struct gp_dec *d, cl_int *err, bool barrier)
{
	uint64_t qid = gp_dec_u64(d);
	struct waitlist w;
	uint64_t evid;
	void *q = NULL;
	cl_event ev = NULL;
	bool taken;

	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || (evid && fresh_id(s, evid) < 0)) {
		waitlist_free(&w);
		return d->err ? d->err : -EEXIST;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	taken = command_take(s, err);
	if (*err == CL_SUCCESS)
		*err = barrier ? clEnqueueBarrierWithWaitList(q, w.n, w.v, &ev)
			       : clEnqueueMarkerWithWaitList(q, w.n, w.v, &ev);
	waitlist_free(&w);
	return command_done(s, evid, q, ev, *err, taken);
}

static int op_marker(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	return marker_or_barrier(s, d, err, false);
}

static int op_barrier(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	return marker_or_barrier(s, d, err, true);
}

/* FLUSH / FINISH: u64 queue */
static int op_flush(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d);
	void *q;

	if (gp_dec_finish(d) < 0)
		return d->err;
	if ((*err = lookup(s, qid, GP_KIND_QUEUE, &q)) == CL_SUCCESS)
		*err = clFlush(q);
	return 0;
}

static int op_finish(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d);
	void *q;

	if (gp_dec_finish(d) < 0)
		return d->err;
	if ((*err = lookup(s, qid, GP_KIND_QUEUE, &q)) == CL_SUCCESS)
		*err = clFinish(q);
	return 0;
}

/* WAIT_EVENTS: wait list */
static int op_wait_events(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	struct waitlist w;

	*err = dec_waitlist(s, d, &w);
	if (gp_dec_finish(d) < 0) {
		waitlist_free(&w);
		return d->err;
	}
	if (*err == CL_INVALID_EVENT_WAIT_LIST)
		*err = CL_INVALID_EVENT;
	else if (w.n == 0)
		*err = CL_INVALID_VALUE;
	else
		*err = clWaitForEvents(w.n, w.v);
	waitlist_free(&w);
	return 0;
}

/* CREATE_USER_EVENT: u64 id, u64 ctx */
static int op_create_user_event(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d);
	void *ctx;
	cl_event ev;

	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if ((*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx)) != CL_SUCCESS)
		return 0;
	ev = clCreateUserEvent(ctx, err);
	if (!ev)
		return 0;
	if (add_handle(s, id, GP_KIND_EVENT, ev, 0, err) < 0) {
		clReleaseEvent(ev);
		return -EEXIST;
	}
	if (*err != CL_SUCCESS)
		clReleaseEvent(ev);
	return 0;
}

/* SET_USER_EVENT_STATUS: u64 event, i32 status */
static int op_set_user_event_status(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d);
	int32_t st = gp_dec_i32(d);
	void *ev;

	if (gp_dec_finish(d) < 0)
		return d->err;
	if ((*err = lookup(s, id, GP_KIND_EVENT, &ev)) == CL_SUCCESS)
		*err = clSetUserEventStatus(ev, st);
	/* Every command behind it failed: the platform may not call their
	 * completion callbacks (done.c). */
	if (*err == CL_SUCCESS && st < 0)
		pvd_done_failed();
	return 0;
}

/* SYNC: nothing; returns the pending error. */
static int op_sync(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	*err = CL_SUCCESS;
	return gp_dec_finish(d);
}

/* CREATE_SAMPLER: u64 id, u64 ctx, u32 normalized, u32 addressing, u32 filter */
static int op_create_sampler(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d);
	uint32_t norm = gp_dec_u32(d), addr = gp_dec_u32(d), filt = gp_dec_u32(d);
	cl_sampler_properties props[] = {
		CL_SAMPLER_NORMALIZED_COORDS, norm ? CL_TRUE : CL_FALSE,
		CL_SAMPLER_ADDRESSING_MODE, addr, CL_SAMPLER_FILTER_MODE, filt, 0,
	};
	void *ctx;
	cl_sampler smp;

	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if ((*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx)) != CL_SUCCESS)
		return 0;
	smp = clCreateSamplerWithProperties(ctx, props, err);
	if (!smp)
		return 0;
	if (add_handle(s, id, GP_KIND_SAMPLER, smp, 0, err) < 0) {
		clReleaseSampler(smp);
		return -EEXIST;
	}
	if (*err != CL_SUCCESS)
		clReleaseSampler(smp);
	return 0;
}

/* ---- bounded waits ---- */

#define WAIT_POLL_MAX_US 100000u
/* An event handle's aux_n: a completion callback is registered on it. */
#define EVENT_WATCHED 1u

/* Wakers alive in this process: a completion callback may still hold
 * one after its session is gone (PoCL calls it from its own thread). */
static unsigned live_wakers;

static struct waker *waker_new(void)
{
	struct waker *w = calloc(1, sizeof(*w));
	pthread_condattr_t a;

	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &a);
	pthread_condattr_destroy(&a);
	w->refs = 1;
	__atomic_add_fetch(&live_wakers, 1, __ATOMIC_RELAXED);
	return w;
}

static void waker_put(struct waker *w)
{
	bool last;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->lock);
	if (last) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		__atomic_sub_fetch(&live_wakers, 1, __ATOMIC_RELEASE);
	}
}

static void CL_CALLBACK waker_cb(cl_event ev, cl_int status, void *data)
{
	struct waker *w = data;

	pthread_mutex_lock(&w->lock);
	w->seq++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	waker_put(w);
}

/* Registers the session's waker on event @id once (and flushes its queue,
 * as clWaitForEvents would: OpenCL 3.0, 5.11). */
static void watch_event(struct pvd_session *s, uint64_t id)
{
	struct gp_handle *e;
	cl_command_queue q = NULL;

	if (gp_handles_get(s->h, id, GP_KIND_EVENT, &e) < 0 || e->aux_n == EVENT_WATCHED)
		return;
	pthread_mutex_lock(&s->waker->lock);
	s->waker->refs++;
	pthread_mutex_unlock(&s->waker->lock);
	if (pvd_on_complete(e->obj, waker_cb, s->waker) < 0) {
		waker_put(s->waker);
		return;
	}
	e->aux_n = EVENT_WATCHED;
	if (clGetEventInfo(e->obj, CL_EVENT_COMMAND_QUEUE, sizeof(q), &q, NULL) == CL_SUCCESS && q)
		clFlush(q);
}

/* WAIT_POLL: wait list, u32 timeout in microseconds -> i32 err, u32 done.
 * Waits at most the timeout for every event to complete, so that the
 * session goes on serving the guest's other threads (one may set the user
 * event another waits for). done = 1: all complete or failed; err is then
 * CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST if one failed. */
static int op_wait_poll(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint32_t n = gp_dec_count(d, 8, MAX_WAIT), us;
	uint64_t *ids = NULL;
	struct timespec until;
	bool done = false;

	if (!d->err && n) {
		ids = calloc(n, sizeof(*ids));
		if (!ids)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < n && !d->err; i++)
		ids[i] = gp_dec_u64(d);
	us = gp_dec_u32(d);
	if (gp_dec_finish(d) < 0 || us > WAIT_POLL_MAX_US) {
		free(ids);
		return d->err ? d->err : -EBADMSG;
	}
	*err = n ? CL_SUCCESS : CL_INVALID_VALUE;
	for (uint32_t i = 0; i < n && *err == CL_SUCCESS; i++) {
		void *o;

		if (lookup(s, ids[i], GP_KIND_EVENT, &o) != CL_SUCCESS)
			*err = CL_INVALID_EVENT;
	}
	if (*err == CL_SUCCESS) {
		for (uint32_t i = 0; i < n; i++)
			watch_event(s, ids[i]);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += (long)us * 1000;
		until.tv_sec += until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
	}
	while (*err == CL_SUCCESS) {
		uint64_t seq;
		bool failed = false;
		int r = 0;

		pthread_mutex_lock(&s->waker->lock);
		seq = s->waker->seq;
		pthread_mutex_unlock(&s->waker->lock);
		done = true;
		for (uint32_t i = 0; i < n; i++) {
			void *o = NULL;
			cl_int st = CL_QUEUED;

			lookup(s, ids[i], GP_KIND_EVENT, &o);
			if (clGetEventInfo(o, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st,
					   NULL) != CL_SUCCESS)
				st = CL_INVALID_EVENT;
			if (st < 0)
				failed = true;
			else if (st != CL_COMPLETE)
				done = false;
		}
		if (done) {
			if (failed)
				*err = CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST;
			break;
		}
		pthread_mutex_lock(&s->waker->lock);
		while (s->waker->seq == seq && r == 0)
			r = pthread_cond_timedwait(&s->waker->cond, &s->waker->lock, &until);
		pthread_mutex_unlock(&s->waker->lock);
		if (r != 0)
			break; /* timed out: not done yet */
	}
	free(ids);
	/* An error of the call itself ends the wait too. */
	gp_enc_u32(&s->reply, done || *err != CL_SUCCESS ? 1u : 0u);
	return 0;
}

/* ---- separate compilation (OpenCL 1.2) ---- */

/* Decodes "u32 n, u64 dev[n]" into @devs; CL_INVALID_DEVICE for an
 * unknown id. */
static cl_int dec_devices(struct pvd_session *s, struct gp_dec *d, cl_device_id *devs,
			  uint32_t *n)
{
	cl_int err = CL_SUCCESS;

	*n = gp_dec_count(d, 8, MAX_DEVS);
	for (uint32_t i = 0; i < *n && !d->err; i++) {
		void *o = NULL;

		if (lookup(s, gp_dec_u64(d), GP_KIND_DEVICE, &o) != CL_SUCCESS)
			err = CL_INVALID_DEVICE;
		devs[i] = o;
	}
	return err;
}

/* Header names become files in the host compiler's scratch directory
 * (PoCL writes each embedded header under its name): only plain relative
 * paths, no "..", nothing that could land outside it. */
static bool header_name_ok(const char *n)
{
	const char *p;

	if (!n || !n[0] || n[0] == '/' || strlen(n) > 255)
		return false;
	for (p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.' || *p == '/'))
			return false;
	for (p = n; (p = strstr(p, "..")); p += 2)
		if ((p == n || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
			return false;
	return true;
}

#define MAX_HEADERS 256u

/* COMPILE_PROGRAM: u64 program, u32 n, u64 dev[n], str options, u32 nh,
 * nh x {u64 header program, str include name} -> i32 err */
static int op_compile_program(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d);
	cl_device_id devs[MAX_DEVS];
	cl_program hdrs[MAX_HEADERS];
	char *names[MAX_HEADERS] = { NULL };
	const char *cnames[MAX_HEADERS];
	uint32_t n, nh;
	char *opts;
	void *p = NULL;

	*err = dec_devices(s, d, devs, &n);
	opts = gp_dec_strdup(d, GP_PROTO_MAX_STR);
	nh = gp_dec_count(d, 12, MAX_HEADERS);
	for (uint32_t i = 0; i < nh && !d->err; i++) {
		void *o = NULL;

		if (lookup(s, gp_dec_u64(d), GP_KIND_PROGRAM, &o) != CL_SUCCESS && *err == CL_SUCCESS)
			*err = CL_INVALID_OPERATION; /* OpenCL 3.0, 5.8.3: not a program from source */
		hdrs[i] = o;
		names[i] = gp_dec_strdup(d, 4096);
		cnames[i] = names[i];
	}
	if (gp_dec_finish(d) < 0)
		goto out;
	if (*err == CL_SUCCESS)
		*err = lookup(s, id, GP_KIND_PROGRAM, &p);
	for (uint32_t i = 0; i < nh && *err == CL_SUCCESS; i++)
		if (!header_name_ok(names[i]))
			*err = CL_INVALID_VALUE;
	if (*err == CL_SUCCESS && !options_allowed(opts))
		*err = CL_INVALID_COMPILER_OPTIONS;
	if (*err == CL_SUCCESS) {
		char *full = with_arg_info(opts);
		struct gp_handle *pe = NULL;

		*err = full ? CL_SUCCESS : CL_OUT_OF_HOST_MEMORY;
		if (*err == CL_SUCCESS && gp_handles_get(s->h, id, GP_KIND_PROGRAM, &pe) == 0)
			*err = checked_build(s, pe, n, devs, full, nh, hdrs, cnames);
		if (*err == CL_SUCCESS)
			*err = clCompileProgram(p, n, n ? devs : NULL, full, nh, nh ? hdrs : NULL,
						nh ? cnames : NULL, NULL, NULL);
		free(full);
	}
out:
	for (uint32_t i = 0; i < nh && i < MAX_HEADERS; i++)
		free(names[i]);
	free(opts);
	return d->err;
}

/* LINK_PROGRAM: u64 id, u64 ctx, u32 n, u64 dev[n], str options, u32 np,
 * u64 program[np] -> i32 err, u32 made (1: the id names the result, even
 * after CL_LINK_PROGRAM_FAILURE, so the log can be read) */
static int op_link_program(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d);
	cl_device_id devs[MAX_DEVS];
	cl_program *progs = NULL;
	uint32_t n, np;
	char *opts;
	void *ctx = NULL;
	cl_program out = NULL;
	cl_int e2 = CL_SUCCESS;
	uint32_t made = 0;

	*err = dec_devices(s, d, devs, &n);
	opts = gp_dec_strdup(d, GP_PROTO_MAX_STR);
	np = gp_dec_count(d, 8, 4096);
	if (!d->err && np) {
		progs = calloc(np, sizeof(*progs));
		if (!progs)
			d->err = -ENOMEM;
	}
	for (uint32_t i = 0; i < np && !d->err; i++) {
		void *o = NULL;

		if (lookup(s, gp_dec_u64(d), GP_KIND_PROGRAM, &o) != CL_SUCCESS && *err == CL_SUCCESS)
			*err = CL_INVALID_PROGRAM;
		progs[i] = o;
	}
	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0) {
		free(progs);
		free(opts);
		return d->err ? d->err : -EEXIST;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx);
	if (*err == CL_SUCCESS && np == 0)
		*err = CL_INVALID_VALUE;
	if (*err == CL_SUCCESS && !options_allowed(opts))
		*err = CL_INVALID_LINKER_OPTIONS;
	if (*err == CL_SUCCESS) {
		/* Argument info again, or the linked kernels' arguments are
		 * unknown and refused (see arg_classes). */
		char *full = with_arg_info(opts);

		out = full ? clLinkProgram(ctx, n, n ? devs : NULL, full, np, progs, NULL, NULL, err)
			   : NULL;
		if (!full)
			*err = CL_OUT_OF_HOST_MEMORY;
		free(full);
		if (out && add_handle(s, id, GP_KIND_PROGRAM, out, 0, &e2) < 0) {
			clReleaseProgram(out);
			free(progs);
			free(opts);
			return -EEXIST;
		}
		if (out && e2 != CL_SUCCESS) {
			clReleaseProgram(out);
			*err = e2;
		} else if (out) {
			made = 1;
		}
	}
	gp_enc_u32(&s->reply, made);
	free(progs);
	free(opts);
	return 0;
}

/* True when every ';'-separated name in @names is listed by one of the
 * devices (OpenCL 3.0, 5.8.1: CL_INVALID_VALUE otherwise). Checked here:
 * PoCL 3.1 leaks on that error path. */
static bool builtins_listed(const cl_device_id *devs, uint32_t n, const char *names)
{
	char *copy = strdup(names), *tok, *save = NULL;
	bool ok = copy != NULL;

	for (tok = copy ? strtok_r(copy, ";", &save) : NULL; tok && ok;
	     tok = strtok_r(NULL, ";", &save)) {
		bool found = false;

		for (uint32_t i = 0; i < n && !found; i++) {
			char list[4096] = "", *t2, *s2 = NULL;

			if (clGetDeviceInfo(devs[i], CL_DEVICE_BUILT_IN_KERNELS, sizeof(list) - 1, list,
					    NULL) != CL_SUCCESS)
				continue;
			for (t2 = strtok_r(list, ";", &s2); t2 && !found; t2 = strtok_r(NULL, ";", &s2))
				found = strcmp(t2, tok) == 0;
		}
		ok = found;
	}
	free(copy);
	return ok;
}

/* CREATE_PROGRAM_BUILTIN: u64 id, u64 ctx, u32 n, u64 dev[n], str kernel
 * names (';'-separated) -> i32 err */
static int op_create_program_builtin(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d);
	cl_device_id devs[MAX_DEVS];
	uint32_t n;
	char *names;
	void *ctx = NULL;
	cl_program p;

	*err = dec_devices(s, d, devs, &n);
	names = gp_dec_strdup(d, GP_PROTO_MAX_STR);
	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0) {
		free(names);
		return d->err ? d->err : -EEXIST;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx);
	if (*err == CL_SUCCESS && (n == 0 || !names || !names[0] || !builtins_listed(devs, n, names)))
		*err = CL_INVALID_VALUE;
	if (*err == CL_SUCCESS) {
		p = clCreateProgramWithBuiltInKernels(ctx, n, devs, names, err);
		if (p && add_handle(s, id, GP_KIND_PROGRAM, p, 0, err) < 0) {
			clReleaseProgram(p);
			free(names);
			return -EEXIST;
		}
		if (p && *err != CL_SUCCESS) {
			clReleaseProgram(p);
		} else if (p) {
			struct gp_handle *e;

			gp_handles_get(s->h, id, GP_KIND_PROGRAM, &e);
			e->aux_n = PROGRAM_BUILTIN;
		}
	}
	free(names);
	return 0;
}

/* ---- images ---- */

/* Bytes of a tightly packed region of @img (row pitch = width x element
 * size, as the ICD packs it), or 0 if it cannot be known or overflows. */
static uint64_t image_region_bytes(cl_mem img, const size_t reg[3])
{
	size_t elem = 0;
	uint64_t n;

	if (!is_image(img) ||
	    clGetImageInfo(img, CL_IMAGE_ELEMENT_SIZE, sizeof(elem), &elem, NULL) != CL_SUCCESS)
		return 0;
	if (__builtin_mul_overflow((uint64_t)elem, (uint64_t)reg[0], &n) ||
	    __builtin_mul_overflow(n, (uint64_t)reg[1], &n) ||
	    __builtin_mul_overflow(n, (uint64_t)reg[2], &n))
		return 0;
	return n;
}

static void dec_triple(struct gp_dec *d, size_t v[3])
{
	for (int i = 0; i < 3; i++)
		v[i] = (size_t)gp_dec_u64(d);
}

/* CREATE_IMAGE: u64 id, u64 ctx, u64 flags, u32 channel order, u32
 * channel type, u32 image type, u64 width, u64 height, u64 depth, u64
 * array size, u64 row pitch, u64 slice pitch (both for images from a
 * buffer only), u64 buffer (0: none) -> i32 err, u64 element size, u64 size.
 * Host-pointer flags are the ICD's business (it writes the data after).
 * Images count against memory_max at the size the host allocated, except
 * those made from a buffer (its memory is already counted). */
static int op_create_image(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t id = gp_dec_u64(d), cid = gp_dec_u64(d), flags = gp_dec_u64(d);
	cl_image_format fmt;
	cl_image_desc desc;
	uint64_t bid;
	size_t elem = 0, size = 0;
	void *ctx, *buf = NULL;
	cl_mem m = NULL;

	memset(&desc, 0, sizeof(desc));
	fmt.image_channel_order = gp_dec_u32(d);
	fmt.image_channel_data_type = gp_dec_u32(d);
	desc.image_type = gp_dec_u32(d);
	desc.image_width = (size_t)gp_dec_u64(d);
	desc.image_height = (size_t)gp_dec_u64(d);
	desc.image_depth = (size_t)gp_dec_u64(d);
	desc.image_array_size = (size_t)gp_dec_u64(d);
	desc.image_row_pitch = (size_t)gp_dec_u64(d);
	desc.image_slice_pitch = (size_t)gp_dec_u64(d);
	bid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || fresh_id(s, id) < 0)
		return d->err ? d->err : -EEXIST;
	if ((*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx)) != CL_SUCCESS)
		goto out;
	if (bid && (*err = lookup(s, bid, GP_KIND_MEM, &buf)) != CL_SUCCESS)
		goto out;
	desc.buffer = buf;
	if (!buf)
		desc.image_row_pitch = desc.image_slice_pitch = 0; /* no host pointer here */
	flags &= ~(uint64_t)(HOST_PTR_FLAGS | HOST_ACCESS_FLAGS);
	m = clCreateImage(ctx, (cl_mem_flags)flags, &fmt, &desc, NULL, err);
	if (!m)
		goto out;
	clGetImageInfo(m, CL_IMAGE_ELEMENT_SIZE, sizeof(elem), &elem, NULL);
	clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof(size), &size, NULL);
	if (!buf && (*err = charge(s, size)) != CL_SUCCESS) {
		clReleaseMemObject(m);
		goto out;
	}
	if (add_handle(s, id, GP_KIND_MEM, m, buf ? 0 : size, err) < 0) {
		if (!buf)
			uncharge(s, size);
		clReleaseMemObject(m);
		return -EEXIST;
	}
	if (*err != CL_SUCCESS) {
		if (!buf)
			uncharge(s, size);
		clReleaseMemObject(m);
	}
out:
	gp_enc_u64(&s->reply, *err == CL_SUCCESS ? elem : 0);
	gp_enc_u64(&s->reply, *err == CL_SUCCESS ? size : 0);
	return 0;
}

/* IMAGE_FORMATS: u64 ctx, u64 flags, u32 image type -> i32 err, u32 n,
 * n x {u32 channel order, u32 channel type} */
static int op_image_formats(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t cid = gp_dec_u64(d), flags = gp_dec_u64(d);
	uint32_t type = gp_dec_u32(d);
	cl_image_format *f = NULL;
	cl_uint n = 0;
	void *ctx;

	if (gp_dec_finish(d) < 0)
		return d->err;
	*err = lookup(s, cid, GP_KIND_CONTEXT, &ctx);
	if (*err == CL_SUCCESS)
		*err = clGetSupportedImageFormats(ctx, (cl_mem_flags)flags, type, 0, NULL, &n);
	if (*err == CL_SUCCESS && n > 4096)
		n = 4096; /* far beyond any device; bounds the reply */
	if (*err == CL_SUCCESS && n) {
		f = calloc(n, sizeof(*f));
		*err = f ? clGetSupportedImageFormats(ctx, (cl_mem_flags)flags, type, n, f, NULL)
			 : CL_OUT_OF_HOST_MEMORY;
	}
	if (*err != CL_SUCCESS)
		n = 0;
	gp_enc_u32(&s->reply, n);
	for (cl_uint i = 0; i < n; i++) {
		gp_enc_u32(&s->reply, f[i].image_channel_order);
		gp_enc_u32(&s->reply, f[i].image_channel_data_type);
	}
	free(f);
	return 0;
}

/* WRITE_IMAGE: u64 queue (0: initial data), u64 image, u64 origin[3],
 * u64 region[3], u32 blocking, blob data (tightly packed: exactly the
 * region's bytes), wait list, u64 event */
static int op_write_image(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d), mid = gp_dec_u64(d);
	size_t org[3], reg[3], len = 0;
	uint32_t blocking;
	const void *data;
	struct waitlist w;
	uint64_t evid;
	void *q = NULL, *m = NULL, *copy = NULL;
	cl_event ev = NULL;
	bool temp_q = false;
	int r;

	dec_triple(d, org);
	dec_triple(d, reg);
	blocking = gp_dec_u32(d);
	data = gp_dec_blob(d, GP_PROTO_MAX_PAYLOAD, &len);
	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || (evid && fresh_id(s, evid) < 0)) {
		waitlist_free(&w);
		return d->err ? d->err : -EEXIST;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, mid, GP_KIND_MEM, &m);
	/* The host reads exactly the region's bytes from the data: a length
	 * that differs is a malformed message, not an OpenCL error. */
	if (*err == CL_SUCCESS) {
		uint64_t need = image_region_bytes(m, reg);

		if (need == 0) {
			*err = CL_INVALID_VALUE; /* not an image, or an empty region */
		} else if (need != len) {
			waitlist_free(&w);
			return -EBADMSG;
		}
	}
	if (*err == CL_SUCCESS && qid)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS && !qid) {
		cl_context ctx = NULL;
		cl_device_id dev = NULL;

		clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof(ctx), &ctx, NULL);
		clGetContextInfo(ctx, CL_CONTEXT_DEVICES, sizeof(dev), &dev, NULL);
		q = clCreateCommandQueueWithProperties(ctx, dev, NULL, err);
		temp_q = q != NULL;
		evid = 0;
		blocking = 1;
	}
	if (*err == CL_SUCCESS && (w.n || !blocking)) {
		/* May wait: from a private copy, never holding the session. */
		copy = held_copy_new(s, data, len, err);
		if (copy) {
			*err = clEnqueueWriteImage(q, m, CL_FALSE, org, reg, 0, 0, copy, w.n, w.v, &ev);
			if (*err != CL_SUCCESS) {
				held_copy_free(copy);
			} else if (pvd_on_complete(ev, free_copy, copy) < 0) {
				clWaitForEvents(1, &ev);
				held_copy_free(copy);
			}
		}
	} else if (*err == CL_SUCCESS) {
		*err = clEnqueueWriteImage(q, m, CL_TRUE, org, reg, 0, 0, data, 0, NULL,
					   evid ? &ev : NULL);
	}
	waitlist_free(&w);
	r = finish_event(s, evid, q, ev, *err);
	if (ev && !evid)
		clReleaseEvent(ev);
	if (temp_q)
		clReleaseCommandQueue(q);
	return r;
}

/* READ_IMAGE: u64 queue, u64 image, u64 origin[3], u64 region[3], wait
 * list, u64 event -> i32 err, blob data (tightly packed, at most one
 * message: the ICD splits bigger regions). */
static int op_read_image(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d), mid = gp_dec_u64(d), n = 0;
	size_t org[3], reg[3];
	struct waitlist w;
	uint64_t evid;
	void *q = NULL, *m = NULL;
	uint8_t *dst = NULL;
	cl_event ev = NULL;

	dec_triple(d, org);
	dec_triple(d, reg);
	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || (evid && fresh_id(s, evid) < 0)) {
		waitlist_free(&w);
		return d->err ? d->err : -EEXIST;
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS)
		*err = lookup(s, mid, GP_KIND_MEM, &m);
	if (*err == CL_SUCCESS) {
		n = image_region_bytes(m, reg);
		if (n == 0 || n > GP_PROTO_MAX_PAYLOAD - 64)
			*err = CL_INVALID_VALUE;
	}
	if (*err == CL_SUCCESS) {
		gp_enc_u32(&s->reply, (uint32_t)n);
		dst = gp_enc_reserve(&s->reply, (size_t)n);
		if (!dst)
			*err = CL_OUT_OF_HOST_MEMORY;
	}
	if (*err == CL_SUCCESS)
		*err = clEnqueueReadImage(q, m, CL_TRUE, org, reg, 0, 0, dst, w.n, w.v,
					  evid ? &ev : NULL);
	if (*err != CL_SUCCESS) {
		gp_enc_reset(&s->reply);
		gp_enc_i32(&s->reply, 0);
	}
	waitlist_free(&w);
	return finish_event(s, evid, q, ev, *err);
}

/* COPY_IMAGE: u32 kind (0 image->image, 1 image->buffer, 2 buffer->image),
 * u64 queue, u64 src, u64 dst, u64 src origin[3], u64 dst origin[3], u64
 * region[3], wait list, u64 event (pipelined). A buffer's offset is the
 * first element of its origin. */
static int op_copy_image(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint32_t kind = gp_dec_u32(d);
	uint64_t qid = gp_dec_u64(d), sid = gp_dec_u64(d), did = gp_dec_u64(d);
	size_t so[3], dof[3], reg[3];
	struct waitlist w;
	uint64_t evid;
	void *q = NULL, *sm = NULL, *dm = NULL;
	cl_event ev = NULL;
	bool taken;
	cl_event *evp = NULL;

	dec_triple(d, so);
	dec_triple(d, dof);
	dec_triple(d, reg);
	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || kind > 2 || (evid && fresh_id(s, evid) < 0)) {
		waitlist_free(&w);
		return d->err ? d->err : (kind > 2 ? -EBADMSG : -EEXIST);
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS)
		*err = lookup(s, sid, GP_KIND_MEM, &sm);
	if (*err == CL_SUCCESS)
		*err = lookup(s, did, GP_KIND_MEM, &dm);
	evp = &ev;
	if (*err == CL_SUCCESS && (is_image(sm) != (kind != 2) || is_image(dm) != (kind != 1)))
		*err = CL_INVALID_MEM_OBJECT;
	taken = command_take(s, err);
	if (*err == CL_SUCCESS && kind == 0)
		*err = clEnqueueCopyImage(q, sm, dm, so, dof, reg, w.n, w.v, evp);
	else if (*err == CL_SUCCESS && kind == 1)
		*err = clEnqueueCopyImageToBuffer(q, sm, dm, so, reg, dof[0], w.n, w.v, evp);
	else if (*err == CL_SUCCESS)
		*err = clEnqueueCopyBufferToImage(q, sm, dm, so[0], dof, reg, w.n, w.v, evp);
	waitlist_free(&w);
	return command_done(s, evid, q, ev, *err, taken);
}

/* FILL_IMAGE: u64 queue, u64 image, blob colour (16 bytes: four 32-bit
 * channels, OpenCL 3.0 5.3.5), u64 origin[3], u64 region[3], wait list,
 * u64 event (pipelined) */
static int op_fill_image(struct pvd_session *s, struct gp_dec *d, cl_int *err)
{
	uint64_t qid = gp_dec_u64(d), mid = gp_dec_u64(d);
	size_t clen = 0, org[3], reg[3];
	const void *col = gp_dec_blob(d, 16, &clen);
	struct waitlist w;
	uint64_t evid;
	void *q = NULL, *m = NULL;
	cl_event ev = NULL;
	bool taken;

	dec_triple(d, org);
	dec_triple(d, reg);
	*err = dec_waitlist(s, d, &w);
	evid = gp_dec_u64(d);
	if (gp_dec_finish(d) < 0 || clen != 16 || (evid && fresh_id(s, evid) < 0)) {
		waitlist_free(&w);
		return d->err ? d->err : (clen != 16 ? -EBADMSG : -EEXIST);
	}
	if (*err == CL_SUCCESS)
		*err = lookup(s, qid, GP_KIND_QUEUE, &q);
	if (*err == CL_SUCCESS)
		*err = lookup(s, mid, GP_KIND_MEM, &m);
	if (*err == CL_SUCCESS && !is_image(m))
		*err = CL_INVALID_MEM_OBJECT;
	taken = command_take(s, err);
	if (*err == CL_SUCCESS)
		*err = clEnqueueFillImage(q, m, col, org, reg, w.n, w.v, &ev);
	waitlist_free(&w);
	return command_done(s, evid, q, ev, *err, taken);
}

typedef int (*op_fn)(struct pvd_session *s, struct gp_dec *d, cl_int *err);

/* The call table: opcode -> handler, and whether the call synchronises
 * (returns the pending error of earlier pipelined calls). */
static const struct {
	op_fn fn;
	bool syncs;
} ops[GP_OP_MAX + 1] = {
	[GP_OP_GET_INFO] = { op_get_info, false },
	[GP_OP_CREATE_CONTEXT] = { op_create_context, false },
	[GP_OP_CREATE_QUEUE] = { op_create_queue, false },
	[GP_OP_CREATE_BUFFER] = { op_create_buffer, false },
	[GP_OP_CREATE_SUBBUFFER] = { op_create_subbuffer, false },
	[GP_OP_CREATE_PROGRAM_SOURCE] = { op_create_program_source, false },
	[GP_OP_CREATE_PROGRAM_BINARY] = { op_create_program_binary, false },
	[GP_OP_BUILD_PROGRAM] = { op_build_program, false },
	[GP_OP_CREATE_KERNEL] = { op_create_kernel, false },
	[GP_OP_RELEASE] = { op_release, false },
	[GP_OP_SET_KERNEL_ARG] = { op_set_kernel_arg, false },
	[GP_OP_ENQUEUE_NDRANGE] = { op_ndrange, false },
	[GP_OP_WRITE_BUFFER] = { op_write_buffer, false },
	[GP_OP_READ_BUFFER] = { op_read_buffer, true },
	[GP_OP_COPY_BUFFER] = { op_copy_buffer, false },
	[GP_OP_FILL_BUFFER] = { op_fill_buffer, false },
	[GP_OP_MARKER] = { op_marker, false },
	[GP_OP_BARRIER] = { op_barrier, false },
	[GP_OP_FLUSH] = { op_flush, false },
	[GP_OP_FINISH] = { op_finish, true },
	[GP_OP_WAIT_EVENTS] = { op_wait_events, true },
	[GP_OP_CREATE_USER_EVENT] = { op_create_user_event, false },
	[GP_OP_SET_USER_EVENT_STATUS] = { op_set_user_event_status, false },
	[GP_OP_SYNC] = { op_sync, true },
	[GP_OP_CREATE_SAMPLER] = { op_create_sampler, false },
	[GP_OP_CLONE_KERNEL] = { op_clone_kernel, false },
	[GP_OP_CREATE_IMAGE] = { op_create_image, false },
	[GP_OP_IMAGE_FORMATS] = { op_image_formats, false },
	[GP_OP_WRITE_IMAGE] = { op_write_image, true },
	[GP_OP_READ_IMAGE] = { op_read_image, true },
	[GP_OP_COPY_IMAGE] = { op_copy_image, false },
	[GP_OP_FILL_IMAGE] = { op_fill_image, false },
	[GP_OP_COMPILE_PROGRAM] = { op_compile_program, false },
	[GP_OP_LINK_PROGRAM] = { op_link_program, false },
	[GP_OP_CREATE_PROGRAM_BUILTIN] = { op_create_program_builtin, false },
	[GP_OP_WAIT_POLL] = { op_wait_poll, true },
	[GP_OP_STAGE] = { op_stage, false },
	[GP_OP_CREATE_SUB_DEVICES] = { op_create_sub_devices, false },
};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int send_reply(struct gp_transport *t, const struct gp_proto_hdr *req, struct gp_enc *e)
{
	struct gp_proto_hdr h = { .opcode = req->opcode, .flags = GP_PROTO_F_REPLY,
				  .req_id = req->req_id };

	if (e->err)
		return e->err;
	return gp_transport_send(t, &h, e->buf, e->len, -1);
}

static const char *guest_name(const struct pvd_session *s)
{
	return s->guest ? s->guest->name : "(refused)";
}

/* Why serve() returned. */
enum serve_end {
	SERVE_GONE,   /* the guest hung up, or the server stops */
	SERVE_BROKEN, /* a protocol error: the session's objects must go */
	SERVE_HELLO,  /* stream mode: a new HELLO (in @hello, s->rxbuf) */
};

/* Serves requests from the ring (or, in stream mode, the socket) until
 * the guest goes or breaks the rules. */
static enum serve_end serve(struct pvd_session *s, struct gp_proto_hdr *hello)
{
	struct gp_proto_hdr h;
	struct gp_dec d;
	cl_int err;
	int r;

	for (;;) {
		r = gp_transport_recv(s->ring, &h, s->rxbuf, GP_PROTO_MAX_PAYLOAD, NULL, -1);
		if (r == -EPIPE || r == -EINTR) {
			LOG_S(s, GP_LOG_INFO, "guest %s (pid %d): disconnected", guest_name(s), (int)s->pid);
			return SERVE_GONE;
		}
		if (r < 0) {
			LOG_S(s, GP_LOG_WARN, "guest %s (pid %d): session ended: malformed message on the %s: %s",
			      guest_name(s), (int)s->pid, s->stream ? "stream" : "ring", strerror(-r));
			return SERVE_BROKEN;
		}
		__atomic_add_fetch(&s->guest->calls, 1, __ATOMIC_RELAXED);
		if (s->stream && h.opcode == GP_OP_HELLO && !(h.flags & GP_PROTO_F_REPLY)) {
			*hello = h;
			return SERVE_HELLO;
		}
		if (h.opcode > GP_OP_MAX || !ops[h.opcode].fn || (h.flags & GP_PROTO_F_REPLY)) {
			LOG_S(s, GP_LOG_WARN, "guest %s (pid %d): session ended: unknown opcode %u",
			      guest_name(s), (int)s->pid, h.opcode);
			return SERVE_BROKEN;
		}
		gp_dec_init(&d, s->rxbuf, h.len);
		gp_enc_reset(&s->reply);
		gp_enc_i32(&s->reply, 0);
		err = CL_SUCCESS;
		if (s->lazy_ev && h.opcode != GP_OP_WRITE_BUFFER)
			settle_lazy(s);
		/* Staged data is for the very next message, and only for the
		 * calls that take sources or binaries; all of it is used. */
		s->msg_staged = h.flags & GP_PROTO_F_STAGED;
		if (s->msg_staged && h.opcode != GP_OP_CREATE_PROGRAM_SOURCE &&
		    h.opcode != GP_OP_CREATE_PROGRAM_BINARY)
			r = -EBADMSG;
		else
			r = ops[h.opcode].fn(s, &d, &err);
		if (r == 0 && s->msg_staged && !s->stage_oom && s->stage_used != s->stage_total)
			r = -EBADMSG;
		if (h.opcode != GP_OP_STAGE)
			stage_free(s);
		if (r < 0) {
			LOG_S(s, GP_LOG_WARN, "guest %s (pid %d): session ended: bad %s request: %s",
			      guest_name(s), (int)s->pid, gp_proto_op_name(h.opcode),
			      r == -EEXIST ? "object id not fresh" : strerror(-r));
			return SERVE_BROKEN;
		}
		if (h.flags & GP_PROTO_F_SYNC) {
			if (ops[h.opcode].syncs && s->pending != CL_SUCCESS) {
				if (err == CL_SUCCESS)
					err = s->pending;
				s->pending = CL_SUCCESS;
			}
			put_le32(s->reply.buf, (uint32_t)err);
			r = send_reply(s->ring, &h, &s->reply);
			if (r == 0 && s->pending_fd >= 0) {
				/* The reply said a descriptor follows on the socket. */
				struct gp_proto_hdr fh = { .opcode = h.opcode, .flags = GP_PROTO_F_REPLY,
							   .req_id = h.req_id };

				r = gp_transport_send(s->sock, &fh, NULL, 0, s->pending_fd);
			}
			if (s->pending_fd >= 0) {
				close(s->pending_fd);
				s->pending_fd = -1;
			}
			if (r < 0) {
				LOG_S(s, GP_LOG_INFO, "guest %s (pid %d): cannot reply: %s",
				      guest_name(s), (int)s->pid, strerror(-r));
				return SERVE_GONE;
			}
		} else {
			if (err != CL_SUCCESS && s->pending == CL_SUCCESS)
				s->pending = err;
			if (s->pending_fd >= 0) {
				close(s->pending_fd); /* nobody waits for it */
				s->pending_fd = -1;
			}
		}
	}
}

static void drop_cb(struct gp_handle *e, void *data)
{
	drop_handle(data, e);
}

static void finish_cb(struct gp_handle *e, void *data)
{
	clFinish(e->obj);
}

/* A guest that is gone will never complete its user events: complete
 * them so that the commands waiting on them run (on the guest's own
 * objects) and the queues drain. Not an error status: PoCL 3 aborts the
 * process when a user event with dependent commands is failed. */
static void abort_user_event_cb(struct gp_handle *e, void *data)
{
	cl_command_type t = 0;

	if (clGetEventInfo(e->obj, CL_EVENT_COMMAND_TYPE, sizeof(t), &t, NULL) == CL_SUCCESS &&
	    t == CL_COMMAND_USER)
		clSetUserEventStatus(e->obj, CL_COMPLETE);
}

/* Releases everything the guest still holds: queues drained first, then
 * objects from the leaves (events, kernels) to the roots (contexts). */
static void release_all(struct pvd_session *s)
{
	static const uint32_t order[] = {
		GP_KIND_EVENT, GP_KIND_KERNEL, GP_KIND_PROGRAM, GP_KIND_SAMPLER,
		GP_KIND_MEM, GP_KIND_QUEUE, GP_KIND_CONTEXT, GP_KIND_DEVICE,
	};

	stage_free(s);
	if (!s->h)
		return;
	settle_lazy(s);
	gp_handles_foreach(s->h, GP_KIND_EVENT, abort_user_event_cb, s);
	gp_handles_foreach(s->h, GP_KIND_QUEUE, finish_cb, s);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		gp_handles_foreach(s->h, order[i], drop_cb, s);
}

/* HELLO: u32 version, u64 bulk size, str client (the memfd attached)
 * -> i32 err, str message, u32 n, u64 device ids[n]. STATUS -> see
 * status_reply(). Both over the socket, before the ring exists. */
static void status_reply(struct pvd_session *s, struct gp_enc *e)
{
	struct pvd_server *srv = s->srv;

	gp_enc_i32(e, 0);
	size_t n = pvd_n_guests(srv);

	gp_enc_u32(e, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		struct pvd_guest *g = &srv->guests[i];
		uint32_t sessions = __atomic_load_n(&g->sessions, __ATOMIC_RELAXED);

		/* Read from the shared table: each worker writes its own
		 * guest's slot, so the values are each current, not a
		 * snapshot taken under one lock. */
		gp_enc_str(e, g->name);
		gp_enc_u32(e, sessions);
		gp_enc_i64(e, sessions ? __atomic_load_n(&g->since, __ATOMIC_RELAXED) : 0);
		gp_enc_u32(e, __atomic_load_n(&g->objects, __ATOMIC_RELAXED));
		gp_enc_u64(e, __atomic_load_n(&g->mem_used, __ATOMIC_RELAXED));
		gp_enc_u64(e, __atomic_load_n(&g->memory_max, __ATOMIC_RELAXED));
		gp_enc_u32(e, __atomic_load_n(&g->weight, __ATOMIC_RELAXED));
		gp_enc_u64(e, __atomic_load_n(&g->device_ns, __ATOMIC_RELAXED));
		gp_enc_u64(e, __atomic_load_n(&g->calls, __ATOMIC_RELAXED));
	}
}

static int hello_answer(struct pvd_session *s, const struct gp_proto_hdr *hh,
			const uint8_t *buf, int fd);

/* A guest's own socket may be a VM's virtio-serial port: QEMU connects
 * when the VM starts, long before a program in it says hello, and keeps
 * the connection across the guest's programs (and reboots). */
static bool own_socket(const struct pvd_session *s)
{
	return s->guest && __atomic_load_n(&s->guest->own_socket, __ATOMIC_RELAXED);
}

static int handshake(struct pvd_session *s)
{
	struct gp_proto_hdr h, rh = { .flags = GP_PROTO_F_REPLY };
	struct gp_enc e;
	uint8_t buf[4096];
	int fd = -1, r;

	/* A worker waits 5 s for the hello of a connection handed to it;
	 * the supervisor, [server] hello_timeout for those it answers. */
	r = gp_transport_recv(s->sock, &h, buf, sizeof(buf), &fd,
			      own_socket(s) ? -1 : s->guest ? 5000 : pvd_hello_timeout_ms(s->srv));
	if (r < 0)
		return r;
	rh.opcode = h.opcode;
	rh.req_id = h.req_id;
	if (h.opcode == GP_OP_STATUS) {
		gp_enc_init(&e, GP_PROTO_MAX_PAYLOAD);
		if (fd >= 0)
			close(fd);
		/* Only the host's administrator sees every guest. */
		if (s->uid != 0 && s->uid != geteuid()) {
			gp_enc_i32(&e, CL_INVALID_OPERATION);
		} else {
			status_reply(s, &e);
		}
		r = e.err ? e.err : gp_transport_send(s->sock, &rh, e.buf, e.len, -1);
		gp_enc_free(&e);
		return r < 0 ? r : 1;
	}
	return hello_answer(s, &h, buf, fd);
}

/* Stream mode: after a protocol error on a guest's own stream, skips to
 * the next HELLO (a new program in the VM opened the port) and answers
 * it. Waits as long as the stream stays connected. */
static int resync(struct pvd_session *s)
{
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	struct gp_proto_hdr h;
	int r;

	r = gp_stream_find(s->fd, GP_OP_HELLO, hdr, -1);
	if (r == 0)
		r = gp_proto_hdr_unpack(hdr, sizeof(hdr), GP_PROTO_MAX_PAYLOAD, &h);
	if (r == 0)
		r = gp_stream_read(s->fd, s->rxbuf, h.len, 5000);
	if (r < 0)
		return r;
	return hello_answer(s, &h, s->rxbuf, -1);
}

/* Stream mode: takes the guest's ivshmem region as the bulk region when
 * the guest offered one (@size, @nonce), its config names the file, and
 * the file's header holds the nonce the guest wrote into its BAR: the same
 * memory. Otherwise (logged) the session moves data inline. A previous
 * program's region on the same stream is dropped first. */
static bool stream_region(struct pvd_session *s, uint64_t size, const uint8_t *nonce)
{
	const char *why = NULL;
	char *path = NULL;
	int r = 0;

	gp_ivshmem_free(s->ivs);
	s->ivs = NULL;
	s->bulk = NULL;
	s->bulk_size = 0;
	if (!nonce)
		return false;
	/* The supervisor keeps the path in the shared table (reload). */
	{
		char buf[PVD_IVSHMEM_MAX];

		pvd_table_get_ivshmem(s->guest, buf);
		if (buf[0])
			path = strdup(buf);
	}
	if (!path) {
		why = "no ivshmem = FILE in its [guest] section";
	} else if ((r = pvd_sandbox_region_open(s->srv, path, size, &s->ivs)) < 0) {
		/* EACCES: the worker's sandbox allows only the file that was
		 * named when the worker started (see gpupass-pvd(8)). */
		why = r == -ERANGE ? "the file's size is not the region's" :
		      r == -EBUSY ? "another session of this guest uses the region" :
		      r == -EACCES ? "not the file this guest's worker was started with "
				     "(it takes the new one when it restarts)" :
				    strerror(-r);
	} else if (gp_ivshmem_check(s->ivs, nonce) < 0) {
		why = "its nonce is not in the file: another device, or another file";
		gp_ivshmem_free(s->ivs);
		s->ivs = NULL;
	}
	if (why) {
		LOG_S(s, GP_LOG_INFO, "guest %s: ivshmem region of %llu bytes not used (%s%s%s); data inline",
		      guest_name(s), (unsigned long long)size, path ? path : "", path ? ": " : "", why);
		free(path);
		return false;
	}
	s->bulk = gp_ivshmem_data(s->ivs, &s->bulk_size);
	LOG_S(s, GP_LOG_INFO, "guest %s: ivshmem region %s (%llu bytes) proved by its nonce",
	      guest_name(s), path, (unsigned long long)size);
	free(path);
	return true;
}

/* HELLO: with a memfd (the shared ring and bulk region), or without one:
 * stream mode, every call and all data inline on the socket. Takes @fd. */
static int hello_answer(struct pvd_session *s, const struct gp_proto_hdr *hh,
			const uint8_t *buf, int fd)
{
	struct gp_proto_hdr h = *hh, rh = { .flags = GP_PROTO_F_REPLY };
	struct pvd_server *srv = s->srv;
	struct gp_enc e;
	struct gp_dec d;
	int r;
	uint32_t ver;
	uint64_t bulk, probe_addr, probe_val, seen = 0, region_size = 0;
	const uint8_t *nonce = NULL;
	bool region = false;
	char *client;

	rh.opcode = h.opcode;
	rh.req_id = h.req_id;
	gp_enc_init(&e, GP_PROTO_MAX_PAYLOAD);
	if (h.opcode != GP_OP_HELLO) {
		r = -EBADMSG;
		goto out;
	}
	gp_dec_init(&d, buf, h.len);
	ver = gp_dec_u32(&d);
	bulk = gp_dec_u64(&d);
	client = gp_dec_strdup(&d, 256);
	probe_addr = gp_dec_u64(&d);
	probe_val = gp_dec_u64(&d);
	(void)bulk;
	/* Stream mode: an ivshmem region offered (u64 size, 32-byte nonce). */
	if (gp_dec_left(&d) > 0) {
		region_size = gp_dec_u64(&d);
		nonce = gp_dec_raw(&d, GP_IVSHMEM_NONCE);
	}
	if (gp_dec_finish(&d) < 0) {
		free(client);
		r = -EBADMSG;
		goto out;
	}
	if (!s->guest) {
		LOG_S(s, GP_LOG_WARN, "refused %s (pid %d, uid %d): %s", client, (int)s->pid,
		      (int)s->uid, s->refusal);
		gp_enc_i32(&e, CL_DEVICE_NOT_AVAILABLE);
		gp_enc_str(&e, s->refusal);
		r = -EACCES;
	} else if (ver != GP_PROTO_VERSION) {
		gp_enc_i32(&e, CL_DEVICE_NOT_AVAILABLE);
		gp_enc_str(&e, "protocol version not supported by this gpupass-pvd");
		r = -EPROTONOSUPPORT;
	} else if (fd >= 0 && (s->stream || (r = gp_shm_attach(fd, &s->shm)) < 0)) {
		gp_enc_i32(&e, CL_OUT_OF_RESOURCES);
		gp_enc_str(&e, "the shared memory region is missing or malformed");
		r = -EINVAL;
	} else {
		if (fd >= 0) {
			fd = -1; /* the shm owns it */
			s->bulk = gp_shm_bulk(s->shm, &s->bulk_size);
		} else {
			s->stream = true;
			region = stream_region(s, region_size, nonce);
		}
		gp_enc_i32(&e, 0);
		gp_enc_str(&e, s->guest->name);
		gp_enc_u32(&e, (uint32_t)srv->n_devs);
		for (size_t i = 0; i < srv->n_devs; i++)
			gp_enc_u64(&e, i + 1);
		/* Direct copies need the guest to be a process we may read:
		 * prove it on the value it sent. */
		s->direct = !s->stream && s->pid > 0 && probe_addr &&
			    direct_copy(s, true, &seen, probe_addr, sizeof(seen)) == 0 &&
			    seen == probe_val;
		gp_enc_u32(&e, (s->direct ? 1u : 0u) | (srv->shared_ok ? 2u : 0u) |
				   (region ? 4u : 0u));
		LOG_S(s, GP_LOG_INFO, "guest %s: %s connected (pid %d, uid %d, %s)",
		      s->guest->name, client, (int)s->pid, (int)s->uid,
		      region ? "stream mode, data through its ivshmem region" :
		      s->stream ? "stream mode, data inline" :
		      s->direct ? "direct copies" : "shared-memory copies");
		r = 0;
	}
	free(client);
	if (gp_transport_send(s->sock, &rh, e.buf, e.len, -1) < 0 && r == 0)
		r = -EPIPE;
out:
	if (fd >= 0)
		close(fd);
	gp_enc_free(&e);
	return r;
}

/* A new handle table with the server's devices (ids 1..n). */
static int fresh_handles(struct pvd_session *s)
{
	int r;

	gp_handles_free(s->h);
	s->h = NULL;
	s->pending = CL_SUCCESS;
	r = gp_handles_new(0, &s->h); /* max_objects is checked per guest */
	for (size_t i = 0; r == 0 && i < s->srv->n_devs; i++)
		r = gp_handles_add(s->h, i + 1, GP_KIND_DEVICE, s->srv->devs[i].device, 0);
	return r;
}

static void *session_main(void *arg)
{
	struct pvd_session *s = arg;
	struct pvd_server *srv = s->srv;
	char c = 0;
	int r;

	r = handshake(s);
	/* A VM's stream may start with what a crashed program left in the
	 * port: skip to the next hello. */
	while (r < 0 && r != -EPIPE && r != -EINTR && r != -EACCES && own_socket(s) &&
	       !__atomic_load_n(&srv->stop, __ATOMIC_ACQUIRE)) {
		LOG_S(s, GP_LOG_INFO, "guest %s: bad hello on its stream (%s); waiting for the next",
		      guest_name(s), strerror(-r));
		r = resync(s);
	}
	if (r == 0) {
		/* Counted as connected once the hello succeeded (status queries
		 * and refused peers are not guests' sessions). */
		if (__atomic_fetch_add(&s->guest->sessions, 1, __ATOMIC_RELAXED) == 0)
			__atomic_store_n(&s->guest->since, (int64_t)time(NULL), __ATOMIC_RELAXED);
		s->counted = true;
		r = fresh_handles(s);
		if (r == 0 && s->stream)
			s->ring = s->sock; /* the same transport, freed once */
		else if (r == 0)
			r = gp_transport_ring_new(s->shm, GP_RING_SERVER, s->fd, srv->spin_ns, &s->ring);
		while (r == 0 && !__atomic_load_n(&srv->stop, __ATOMIC_ACQUIRE)) {
			struct gp_proto_hdr h;
			enum serve_end why = serve(s, &h);

			if (why == SERVE_GONE || !s->stream)
				break;
			/* Stream mode: a new program in the guest (HELLO), or
			 * garbage: its objects go, the stream stays. */
			release_all(s);
			r = fresh_handles(s);
			if (r < 0)
				break;
			LOG_S(s, GP_LOG_INFO, "guest %s: %s on its stream; objects released, %s",
			      guest_name(s), why == SERVE_HELLO ? "new hello" : "protocol error",
			      why == SERVE_HELLO ? "fresh session" : "waiting for the next hello");
			r = why == SERVE_HELLO ? hello_answer(s, &h, s->rxbuf, -1) : -EBADMSG;
			while (r < 0 && r != -EPIPE && r != -EINTR &&
			       !__atomic_load_n(&srv->stop, __ATOMIC_ACQUIRE))
				r = resync(s);
		}
		release_all(s);
	} else if (r < 0 && r != -EACCES) {
		LOG_S(s, GP_LOG_INFO, "connection (pid %d) ended during hello: %s", (int)s->pid,
		      strerror(-r));
	}
	/* The supervisor keeps a copy of a worker's connections (its
	 * watchdog): the guest must see this end now, not at that copy's
	 * close. */
	if (s->guest)
		shutdown(s->fd, SHUT_RDWR);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	if (write(srv->wake_pipe[1], &c, 1) < 0) {
		/* the main loop also reaps on its timer */
	}
	return NULL;
}

/* Whether @g's worker may take one more connection (max_sessions): its
 * connections are counted until their threads are reaped, so the ended
 * ones are reaped first when it looks full. Worker only. */
static bool session_room(struct pvd_server *srv, struct pvd_guest *g)
{
	uint32_t max = __atomic_load_n(&g->max_sessions, __ATOMIC_RELAXED);

	if (!max || __atomic_load_n(&g->conns, __ATOMIC_RELAXED) < max)
		return true;
	pvd_session_reap(srv, false);
	return __atomic_load_n(&g->conns, __ATOMIC_RELAXED) < max;
}

/* Which cap a supervisor's own session counts against (pending.c), or
 * -1: a TCP relay's end (its TCP thread is counted) or the host's
 * administrator. */
static int local_kind(int fd, const struct ucred *cr, bool has_cr)
{
	int domain = 0;
	socklen_t len = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_VSOCK)
		return PVD_PENDING_VSOCK;
	if (has_cr && (cr->pid == getpid() || cr->uid == 0 || cr->uid == geteuid()))
		return -1;
	return PVD_PENDING_UNIX;
}

int pvd_session_run(struct pvd_server *srv, struct pvd_guest *guest, int fd,
		      const char *refusal)
{
	struct pvd_session *s;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	bool has_cr = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0;
	char full[256], who[64];
	int r, kind = -1;

	snprintf(who, sizeof(who), "pid %d, uid %d", has_cr ? (int)cr.pid : -1,
		 has_cr ? (int)cr.uid : -1);
	if (guest && !session_room(srv, guest)) {
		/* Refused at its hello, by a thread of a bounded few. */
		snprintf(full, sizeof(full), "guest %s has its max_sessions = %u connections open: "
			 "end some of its programs, or raise max_sessions in its [guest] section",
			 guest->name, (unsigned)__atomic_load_n(&guest->max_sessions, __ATOMIC_RELAXED));
		refusal = full;
		guest = NULL;
		kind = PVD_PENDING_REFUSED;
		if (!pvd_pending_enter(srv, kind, PVD_REFUSING_MAX, who)) {
			close(fd);
			return 0;
		}
	} else if (!guest) {
		kind = local_kind(fd, &cr, has_cr);
		if (kind >= 0 && !pvd_pending_enter(srv, (unsigned)kind, pvd_max_pending(srv), who)) {
			close(fd);
			return 0;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		if (kind >= 0)
			pvd_pending_leave(srv, (unsigned)kind);
		close(fd);
		return -ENOMEM;
	}
	s->pending_kind = kind;
	s->srv = srv;
	s->guest = guest;
	s->fd = fd;
	s->pid = -1;
	s->uid = (uid_t)-1;
	if (has_cr) {
		s->pid = cr.pid;
		s->uid = cr.uid;
	}
	s->pending_fd = -1;
	s->refusal = strdup(refusal ? refusal : "");
	s->rxbuf = malloc(GP_PROTO_MAX_PAYLOAD);
	s->waker = waker_new();
	gp_enc_init(&s->reply, GP_PROTO_MAX_PAYLOAD);
	r = gp_transport_unix_new(fd, &s->sock);
	if (r < 0 || !s->rxbuf || !s->refusal || !s->waker) {
		if (r == 0)
			gp_transport_free(s->sock); /* closes fd */
		else
			close(fd);
		r = r < 0 ? r : -ENOMEM;
		goto err_free;
	}
	pthread_mutex_lock(&srv->lock);
	s->next = srv->sessions;
	srv->sessions = s;
	/* Counted until session_free(): the worker's idle grace starts when
	 * its last connection is gone. */
	if (guest)
		__atomic_add_fetch(&guest->conns, 1, __ATOMIC_RELAXED);
	r = pthread_create(&s->thread, NULL, session_main, s);
	if (r != 0) {
		srv->sessions = s->next;
		if (guest)
			pvd_conn_end(srv, guest);
		pthread_mutex_unlock(&srv->lock);
		gp_transport_free(s->sock);
		r = -r;
		goto err_free;
	}
	pthread_mutex_unlock(&srv->lock);
	return 0;

err_free:
	if (s->pending_kind >= 0)
		pvd_pending_leave(srv, (unsigned)s->pending_kind);
	waker_put(s->waker);
	free(s->rxbuf);
	free(s->refusal);
	gp_enc_free(&s->reply);
	free(s);
	return r;
}

static void session_free(struct pvd_session *s)
{
	pthread_join(s->thread, NULL);
	if (s->counted)
		__atomic_sub_fetch(&s->guest->sessions, 1, __ATOMIC_RELAXED);
	if (s->guest)
		pvd_conn_end(s->srv, s->guest);
	if (s->ring != s->sock)
		gp_transport_free(s->ring);
	gp_transport_free(s->sock); /* closes the socket: the guest sees it go */
	gp_shm_free(s->shm);
	gp_ivshmem_free(s->ivs);
	gp_handles_free(s->h);
	gp_enc_free(&s->reply);
	waker_put(s->waker); /* callbacks still pending keep it */
	if (s->pending_kind >= 0)
		pvd_pending_leave(s->srv, (unsigned)s->pending_kind);
	free(s->rxbuf);
	free(s->refusal);
	free(s);
}

void pvd_session_reap(struct pvd_server *srv, bool all)
{
	struct pvd_session **pp, *s, *dead = NULL;

	pthread_mutex_lock(&srv->lock);
	for (pp = &srv->sessions; (s = *pp);) {
		if (all || __atomic_load_n(&s->done, __ATOMIC_ACQUIRE)) {
			*pp = s->next;
			s->next = dead;
			dead = s;
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	while (dead) {
		s = dead;
		dead = s->next;
		session_free(s);
	}
}

int pvd_session_stop_all(struct pvd_server *srv, int timeout_ms)
{
	struct timespec step = { 0, 10000000 };
	int left = 0;

	pthread_mutex_lock(&srv->lock);
	for (struct pvd_session *s = srv->sessions; s; s = s->next) {
		gp_transport_interrupt(s->sock);
		if (s->ring != s->sock)
			gp_transport_interrupt(s->ring);
	}
	pthread_mutex_unlock(&srv->lock);
	/* A session may be inside a device call that waits for work that
	 * will never run (a guest's user event): give them a while, then
	 * leave them to process exit rather than hang the shutdown. */
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		pvd_session_reap(srv, false);
		pthread_mutex_lock(&srv->lock);
		left = 0;
		for (struct pvd_session *s = srv->sessions; s; s = s->next)
			left++;
		pthread_mutex_unlock(&srv->lock);
		if (left == 0)
			break;
		nanosleep(&step, NULL);
	}
	/* The user events completed by release_all() call their callbacks
	 * from the OpenCL stack's threads: let them run before exit (the
	 * wakers they hold are freed then). Bounded: a callback that never
	 * comes costs a little memory at exit, not a hung shutdown. */
	for (int waited = 0; left == 0 && waited < 1000; waited += 10) {
		pvd_done_poll(true);
		if (__atomic_load_n(&live_wakers, __ATOMIC_ACQUIRE) == 0)
			break;
		nanosleep(&step, NULL);
	}
	return left;
}
