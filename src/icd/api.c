/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libgpupass-icd.so: an OpenCL ICD (cl_khr_icd) that forwards every call
 * to gpupass-pvd. Each object starts with the dispatch table pointer, as
 * the loader requires (OpenCL ICD Loader spec, "ICD data"). Objects are
 * local stand-ins that carry the server's id for them, their parents, and
 * whatever the ICD can answer without a round trip (reference counts,
 * parents, flags, sizes). Calls that return nothing the application must
 * wait for are posted without a round trip.
 *
 * The process-wide state (one platform, one connection) is the one global
 * of this library: the cl_khr_icd entry point has no context argument.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"
#include <CL/cl_icd.h>

#define EXPORT __attribute__((visibility("default")))
#define INLINE_MAX (64u * 1024u)   /* transfers up to this go inline in the ring */
#define SLICE (GP_PROTO_MAX_PAYLOAD - 4096u)
#define SHARED_MIN (256u * 1024u) /* buffers from this size live in shared memory */

struct hdr {
	const cl_icd_dispatch *dispatch; /* must be first (cl_khr_icd) */
	uint32_t kind;
	uint32_t refs;
	uint64_t id;
};

struct _cl_platform_id {
	struct hdr h;
};

/* The limits the ICD checks calls against before it posts them (see
 * dev_limits): asked once per device. */
struct dev_lim {
	cl_ulong max_alloc;
	size_t max_wg, max_items[3];
	cl_uint ver; /* CL_DEVICE_VERSION as 10 * major + minor */
	cl_bool nonuniform;
};

struct _cl_device_id {
	struct hdr h;
	cl_device_type type;
	cl_device_id parent; /* a sub-device's (retained); NULL: a root device */
	uint32_t lim_ok;     /* atomic: lim is filled in */
	struct dev_lim lim;
};

struct _cl_context {
	struct hdr h;
	cl_uint ndev;
	cl_device_id *devs;
	cl_context_properties props[8];
	size_t nprops; /* entries in props including the final 0; 0 if none given */
	struct dtor_cb *dtor;
	uint32_t unset_users; /* atomic: user events whose status is not set yet */
};

/* Destructor callbacks of a context or memory object, newest first (they
 * run in reverse order of registration: OpenCL 3.0, 5.4.1 and 5.14).
 * @fn is stored as a generic function pointer and called as its own
 * type again (C17 6.3.2.3p8). */
struct dtor_cb {
	struct dtor_cb *next;
	void (*fn)(void);
	void *data;
};

struct _cl_command_queue {
	struct hdr h;
	cl_context ctx;
	cl_device_id dev;
	cl_command_queue_properties props;
	cl_queue_properties parr[8];
	size_t nparr;
	uint32_t dirty; /* atomic DIRTY_* bits: commands posted since the last finish */
};

struct mapping {
	struct mapping *next;
	void *ptr;
	size_t off, size;
	cl_map_flags flags;
	bool owned;
	bool image;                    /* an image map: the fields below */
	size_t org[3], reg[3], rp, sp; /* region and the pitches handed out */
};

struct _cl_mem {
	struct hdr h;
	cl_context ctx;
	cl_mem_flags flags;
	size_t size;
	void *host_ptr;
	cl_mem parent;
	size_t origin;
	pthread_mutex_t lock;
	struct mapping *maps;
	cl_uint nmaps;
	struct dtor_cb *dtor;
	uint8_t *shared;   /* the buffer's memory, shared with the server, or NULL */
	size_t shared_len; /* our mapping's length (0 for sub-buffers) */
	bool image;
	bool props;         /* made with a (necessarily empty) property list */
	cl_image_format fmt;
	cl_image_desc desc; /* desc.buffer (mem_object) is our cl_mem, retained */
	size_t elem;        /* bytes per pixel */
	size_t hrow, hslice; /* pitches of host_ptr (USE_HOST_PTR images) */
};

/* What a program's build options ask for that its kernels' calls must
 * honour: argument info, non-uniform work-groups (OpenCL C 2.0 or later
 * without -cl-uniform-work-group-size). Built-in kernels describe
 * their arguments always. */
enum { PROG_ARG_INFO = 1, PROG_NONUNIFORM = 2, PROG_BUILTIN = 4 };

struct _cl_program {
	struct hdr h;
	cl_context ctx;
	cl_uint ndev;
	cl_device_id *devs;
	uint32_t opt; /* atomic PROG_* bits of the last build, compile or link */
};

/* A kernel argument as the ICD checks clSetKernelArg against it (the
 * server builds every program with -cl-kernel-arg-info, so it knows). */
struct karg {
	cl_kernel_arg_address_qualifier qual; /* 0: unknown */
	bool sampler;
	bool set;    /* a value was given */
	size_t size; /* a by-value argument's size from its type; 0: unknown */
};

struct _cl_kernel {
	struct hdr h;
	cl_program prog;
	cl_uint nargs;
	struct karg *args; /* nargs entries, or NULL: nothing known */
	/* Work-group limits on wg_dev (CL_KERNEL_WORK_GROUP_SIZE and
	 * CL_KERNEL_COMPILE_WORK_GROUP_SIZE), asked once per device. */
	cl_device_id wg_dev;
	size_t wg_max, wg_reqd[3];
};

struct _cl_event {
	struct hdr h;
	cl_context ctx;
	cl_command_queue q; /* NULL for user events */
	cl_command_type type;
};

struct _cl_sampler {
	struct hdr h;
	cl_context ctx;
	cl_bool norm;
	cl_addressing_mode addr;
	cl_filter_mode filter;
	cl_sampler_properties props[8]; /* as given, with the final 0 */
	size_t nprops;                  /* 0: none given */
};

static const cl_icd_dispatch dispatch;

struct pend_read;

static struct {
	pthread_once_t once;
	struct gp_icd_conn *conn;
	struct _cl_platform_id platform;
	struct _cl_device_id *devs;
	cl_uint ndev;
	pthread_mutex_t pend_mu;
	pthread_mutex_t cache_mu; /* device limits, kernels' work-group limits */
	struct pend_read *pend; /* non-blocking reads not yet delivered */
	uint32_t npend;         /* atomic: how many */
} G = { .once = PTHREAD_ONCE_INIT, .pend_mu = PTHREAD_MUTEX_INITIALIZER,
      .cache_mu = PTHREAD_MUTEX_INITIALIZER };

#define DEAD CL_OUT_OF_RESOURCES

/* ---- helpers ---- */

static void *obj_new(size_t size, uint32_t kind)
{
	struct hdr *h = calloc(1, size);

	if (!h)
		return NULL;
	h->dispatch = &dispatch;
	h->kind = kind;
	h->refs = 1;
	h->id = gp_icd_conn_new_id(G.conn);
	return h;
}

static bool is(const void *o, uint32_t kind)
{
	return o && ((const struct hdr *)o)->kind == kind;
}

static void retain(void *o)
{
	__atomic_add_fetch(&((struct hdr *)o)->refs, 1, __ATOMIC_RELAXED);
}

/* Drops a reference; true when it was the last (the caller frees). */
static bool unref(void *o)
{
	return __atomic_sub_fetch(&((struct hdr *)o)->refs, 1, __ATOMIC_ACQ_REL) == 0;
}

static void post_release(uint64_t id)
{
	struct gp_icd_call k;

	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, id);
	gp_icd_call_post(&k, GP_OP_RELEASE, DEAD);
	gp_icd_call_end(&k);
}

/* The last reference to a server object is gone: the server releases
 * it (posted), and the stand-in stops passing is() before it is freed. */
static void obj_drop(void *o)
{
	struct hdr *h = o;

	post_release(h->id);
	h->kind = GP_KIND_NONE;
}

static void device_free(void *o);
static void context_free(void *o);
static void queue_free(void *o);
static void mem_free(void *o);
static void program_free(void *o);
static void kernel_free(void *o);
static void event_free(void *o);
static void sampler_free(void *o);

/* Per kind of object: the error for a handle that is not one of that
 * kind (the CL_INVALID_* each entry point names, OpenCL 3.0 ch. 5), and
 * what its last release does besides obj_drop(). */
static const struct kind_ops {
	cl_int invalid;
	void (*free)(void *o);
} kinds[GP_KIND_MAX + 1] = {
	[GP_KIND_PLATFORM] = { CL_INVALID_PLATFORM, NULL },
	[GP_KIND_DEVICE] = { CL_INVALID_DEVICE, device_free }, /* sub-devices only */
	[GP_KIND_CONTEXT] = { CL_INVALID_CONTEXT, context_free },
	[GP_KIND_QUEUE] = { CL_INVALID_COMMAND_QUEUE, queue_free },
	[GP_KIND_MEM] = { CL_INVALID_MEM_OBJECT, mem_free },
	[GP_KIND_PROGRAM] = { CL_INVALID_PROGRAM, program_free },
	[GP_KIND_KERNEL] = { CL_INVALID_KERNEL, kernel_free },
	[GP_KIND_EVENT] = { CL_INVALID_EVENT, event_free },
	[GP_KIND_SAMPLER] = { CL_INVALID_SAMPLER, sampler_free },
};

/* clRetain*: one more reference, counted here only. */
static cl_int obj_retain(void *o, uint32_t kind)
{
	if (!is(o, kind))
		return kinds[kind].invalid;
	retain(o);
	return CL_SUCCESS;
}

/* clRelease*: the last reference frees the stand-in (kinds[].free). */
static cl_int obj_release(void *o, uint32_t kind)
{
	if (!is(o, kind))
		return kinds[kind].invalid;
	if (unref(o))
		kinds[kind].free(o);
	return CL_SUCCESS;
}

static cl_int dtor_push(struct dtor_cb **list, void (*fn)(void), void *data)
{
	struct dtor_cb *c;

	if (!fn)
		return CL_INVALID_VALUE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return CL_OUT_OF_HOST_MEMORY;
	c->fn = fn;
	c->data = data;
	c->next = *list;
	*list = c;
	return CL_SUCCESS;
}

static cl_int put_info(const void *src, size_t n, size_t size, void *val, size_t *ret)
{
	if (val) {
		if (size < n)
			return CL_INVALID_VALUE;
		memcpy(val, src, n);
	}
	if (ret)
		*ret = n;
	return CL_SUCCESS;
}

#define PUT(type, v) do { type _t = (v); return put_info(&_t, sizeof(_t), size, val, ret); } while (0)

static void set_err(cl_int *e, cl_int v)
{
	if (e)
		*e = v;
}

/* Asks the server for an info value, fetched in slices if it is big. */
static cl_int remote_info(uint32_t sel, uint64_t id, uint64_t aux, cl_uint param, size_t size,
			  void *val, size_t *ret)
{
	uint64_t total = 0, got = 0;
	cl_int err;

	do {
		struct gp_icd_call k;
		const void *p;
		size_t n = 0;

		gp_icd_call_begin(G.conn, &k);
		gp_enc_u32(&k.e, sel);
		gp_enc_u64(&k.e, id);
		gp_enc_u64(&k.e, aux);
		gp_enc_u32(&k.e, param);
		gp_enc_u64(&k.e, got);
		gp_enc_u32(&k.e, val ? SLICE : 0);
		err = gp_icd_call_sync(&k, GP_OP_GET_INFO, DEAD);
		if (err == CL_SUCCESS) {
			total = gp_dec_u64(&k.d);
			p = gp_dec_blob(&k.d, SLICE, &n);
			if (k.d.err)
				err = CL_OUT_OF_RESOURCES;
			else if (val && size < total)
				err = CL_INVALID_VALUE;
			else if (val && n > total - got)
				err = CL_OUT_OF_RESOURCES;
			else if (val && n)
				memcpy((char *)val + got, p, n);
			if (val && n == 0 && got < total)
				err = CL_OUT_OF_RESOURCES; /* no progress: never loop */
			got += n;
		}
		gp_icd_call_end(&k);
		if (err != CL_SUCCESS)
			return err;
	} while (val && got < total);
	if (ret)
		*ret = (size_t)total;
	return CL_SUCCESS;
}

/* A call whose message carries @n ids (a wait list): the encoder on the
 * stack holds a few hundred bytes, a longer list goes on the heap. */
static void call_begin(struct gp_icd_call *k, cl_uint n)
{
	if (n > 16)
		gp_icd_call_begin_heap(G.conn, k);
	else
		gp_icd_call_begin(G.conn, k);
}

/* @n u64 fields at once: one reservation instead of one a field (the
 * launch path, where the encoder's per-field checks showed in callgrind). */
static void enc_u64s(struct gp_enc *e, const uint64_t *v, size_t n)
{
	uint8_t *p = gp_enc_reserve(e, n * 8);

	for (size_t i = 0; p && i < n; i++) {
		uint64_t le = htole64(v[i]);

		memcpy(p + 8 * i, &le, 8);
	}
}

static void enc_devices(struct gp_enc *e, cl_uint n, const cl_device_id *devs)
{
	gp_enc_u32(e, n);
	for (cl_uint i = 0; i < n; i++)
		gp_enc_u64(e, devs[i]->h.id);
}

static void enc_ids(struct gp_enc *e, cl_uint n, const uint64_t *ids)
{
	gp_enc_u32(e, n);
	for (cl_uint i = 0; i < n; i++)
		gp_enc_u64(e, ids[i]);
}

static void enc_waitlist(struct gp_enc *e, cl_uint n, const cl_event *ev)
{
	gp_enc_u32(e, n);
	for (cl_uint i = 0; i < n; i++)
		gp_enc_u64(e, ev[i]->h.id);
}

static cl_int check_waitlist(cl_context ctx, cl_uint n, const cl_event *ev)
{
	if ((n == 0) != (ev == NULL))
		return CL_INVALID_EVENT_WAIT_LIST;
	for (cl_uint i = 0; i < n; i++) {
		if (!is(ev[i], GP_KIND_EVENT))
			return CL_INVALID_EVENT_WAIT_LIST;
		if (ctx && ev[i]->ctx != ctx)
			return CL_INVALID_CONTEXT;
	}
	return CL_SUCCESS;
}

static cl_int with_event(cl_command_queue q, cl_command_type type, cl_event *event,
			 cl_event *out, uint64_t *id);

/* The start of a clEnqueue* after its own checks: the wait list's checks,
 * then the event the application asked for (@ev, NULL if none; @id is
 * its id on the wire, 0 if none). Finish with done_event(). */
static cl_int enq_begin(cl_command_queue q, cl_uint nw, const cl_event *wl, cl_command_type type,
			cl_event *event, cl_event *ev, uint64_t *id)
{
	cl_int err = check_waitlist(q->ctx, nw, wl);

	*ev = NULL;
	*id = 0;
	return err == CL_SUCCESS ? with_event(q, type, event, ev, id) : err;
}

/* cl_command_queue.dirty bits */
#define DIRTY_LAZY 1u /* blocking writes, posted (their server finishes them) */
#define DIRTY_ANY 2u  /* anything else */
static void touch(cl_command_queue q);

/* The end of a pipelined enqueue's message (wait list, event id), then
 * posted: no round trip (errors come with the next synchronising call). */
static cl_int enq_post(struct gp_icd_call *k, cl_command_queue q, uint16_t op, cl_uint nw,
		       const cl_event *wl, uint64_t id)
{
	cl_int err;

	enc_waitlist(&k->e, nw, wl);
	gp_enc_u64(&k->e, id);
	touch(q);
	err = gp_icd_call_post(k, op, DEAD);
	gp_icd_call_end(k);
	return err;
}

/* A new event for an enqueue on @q when the application asked for one. */
static cl_event event_new(cl_command_queue q, cl_context ctx, cl_command_type type)
{
	cl_event ev = obj_new(sizeof(*ev), GP_KIND_EVENT);

	if (!ev)
		return NULL;
	ev->q = q;
	ev->ctx = ctx;
	ev->type = type;
	if (q)
		retain(q);
	retain(ctx);
	return ev;
}

static cl_int CL_API_CALL icd_ReleaseContext(cl_context ctx);
static cl_int CL_API_CALL icd_ReleaseCommandQueue(cl_command_queue q);
static cl_int CL_API_CALL icd_ReleaseProgram(cl_program p);
static cl_int CL_API_CALL icd_ReleaseMemObject(cl_mem m);
static cl_int CL_API_CALL icd_ReleaseKernel(cl_kernel k);

static void event_free(void *o)
{
	cl_event ev = o;

	obj_drop(ev);
	if (ev->q)
		icd_ReleaseCommandQueue(ev->q);
	icd_ReleaseContext(ev->ctx);
	free(ev);
}

static void touch(cl_command_queue q)
{
	if (q)
		__atomic_fetch_or(&q->dirty, DIRTY_ANY, __ATOMIC_RELEASE);
}

/* Commands that may wait (for events, for commands that do) were posted
 * to @q since its last finish: a call that blocks on the server waits for
 * them first, in bounded steps (settle). Blocking writes posted to a
 * queue that was settled only wait for each other, and the server
 * finishes them before it serves anything else (session.c, lazy writes):
 * they need no settling of their own. */
static bool may_wait_on(cl_command_queue q)
{
	return q && (__atomic_load_n(&q->dirty, __ATOMIC_ACQUIRE) & DIRTY_ANY);
}

static cl_int CL_API_CALL icd_WaitForEvents(cl_uint n, const cl_event *l);
static cl_int wait_ids(cl_uint n, const uint64_t *ids);
static cl_int queue_finish(cl_command_queue q);
static cl_int post_marker(cl_command_queue q, uint16_t op, cl_uint nw, const cl_event *wl,
			  uint64_t id);

static cl_int CL_API_CALL icd_EnqueueCopyBuffer(cl_command_queue q, cl_mem s, cl_mem d, size_t so,
						size_t dof, size_t size, cl_uint nw,
						const cl_event *wl, cl_event *event);
static cl_int CL_API_CALL icd_EnqueueCopyBufferRect(cl_command_queue q, cl_mem s, cl_mem d,
						    const size_t *so, const size_t *dor,
						    const size_t *reg, size_t srp, size_t ssp,
						    size_t drp, size_t dsp, cl_uint nw,
						    const cl_event *wl, cl_event *event);
static cl_int CL_API_CALL icd_EnqueueCopyImageToBuffer(cl_command_queue q, cl_mem s, cl_mem d,
						       const size_t *so, const size_t *r, size_t dof,
						       cl_uint nw, const cl_event *wl, cl_event *e);
static cl_mem CL_API_CALL icd_CreateBuffer(cl_context ctx, cl_mem_flags flags, size_t size,
					   void *host, cl_int *errp);
static cl_command_queue CL_API_CALL icd_CreateCommandQueueWithProperties(
	cl_context ctx, cl_device_id dev, const cl_queue_properties *props, cl_int *errp);
static void pend_drain(void);
static bool pend_wanted(cl_command_queue q, cl_uint nw, cl_bool blocking);
static cl_int pend_start(cl_command_queue q, cl_mem tmp, cl_event cev, cl_command_type type,
			 uint8_t *dst, size_t rowb, size_t nrows, size_t nslices, size_t ystep,
			 size_t zstep, cl_event *event);

/* Before the ICD touches a shared buffer's memory itself: the events
 * waited for and the commands already in the queue must be done, as they
 * would be before the transfer ran on the device. */
static cl_int settle(cl_command_queue q, cl_uint nw, const cl_event *wl)
{
	cl_int err = CL_SUCCESS;

	/* The memory is here, but a server that is gone means the device
	 * is: fail like every other call. */
	if (!gp_icd_conn_alive(G.conn))
		return DEAD;
	if (nw) {
		err = icd_WaitForEvents(nw, wl);
		if (err != CL_SUCCESS && err != CL_OUT_OF_RESOURCES)
			return CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST;
	}
	if (err == CL_SUCCESS && __atomic_exchange_n(&q->dirty, 0, __ATOMIC_ACQ_REL))
		err = queue_finish(q);
	return err;
}

/* ---- platform and devices ---- */

static void icd_init(void)
{
	uint32_t n;

	/* gpupass-pvd itself must never load a connection to itself. */
	if (getenv("GPUPASS_PVD_SELF"))
		return;
	if (gp_icd_conn_open(&G.conn) < 0)
		return;
	n = gp_icd_conn_ndevices(G.conn);
	G.devs = calloc(n ? n : 1, sizeof(*G.devs));
	if (!G.devs)
		return;
	G.platform.h = (struct hdr){ .dispatch = &dispatch, .kind = GP_KIND_PLATFORM, .refs = 1 };
	for (uint32_t i = 0; i < n; i++) {
		G.devs[i].h = (struct hdr){ .dispatch = &dispatch, .kind = GP_KIND_DEVICE, .refs = 1,
					    .id = i + 1 };
		if (remote_info(GP_INFO_DEVICE, i + 1, 0, CL_DEVICE_TYPE, sizeof(cl_device_type),
				&G.devs[i].type, NULL) != CL_SUCCESS)
			G.devs[i].type = CL_DEVICE_TYPE_DEFAULT;
	}
	G.ndev = n;
}

static bool ready(void)
{
	pthread_once(&G.once, icd_init);
	return G.conn && G.ndev;
}

EXPORT cl_int CL_API_CALL clIcdGetPlatformIDsKHR(cl_uint num, cl_platform_id *plats, cl_uint *nout)
{
	if ((num == 0 && plats) || (!plats && !nout))
		return CL_INVALID_VALUE;
	if (!ready()) {
		if (nout)
			*nout = 0;
		return CL_PLATFORM_NOT_FOUND_KHR;
	}
	if (plats)
		plats[0] = &G.platform;
	if (nout)
		*nout = 1;
	return CL_SUCCESS;
}

static cl_int CL_API_CALL icd_GetPlatformIDs(cl_uint num, cl_platform_id *plats, cl_uint *nout)
{
	return clIcdGetPlatformIDsKHR(num, plats, nout);
}

static cl_int CL_API_CALL icd_GetPlatformInfo(cl_platform_id p, cl_platform_info param,
					      size_t size, void *val, size_t *ret)
{
	char buf[1024];
	size_t n = 0;
	cl_int err;

	if (p && p != &G.platform)
		return CL_INVALID_PLATFORM;
	if (!ready())
		return CL_INVALID_PLATFORM;
	switch (param) {
	case CL_PLATFORM_ICD_SUFFIX_KHR:
		return put_info("GPPV", 5, size, val, ret);
	case CL_PLATFORM_NAME: {
		char name[512];
		int len;

		err = remote_info(GP_INFO_PLATFORM, 1, 0, param, sizeof(name), name, &n);
		if (err != CL_SUCCESS)
			return err;
		name[n ? n - 1 : 0] = '\0';
		len = snprintf(buf, sizeof(buf), "gpupass PV (remote: %s)", name);
		return put_info(buf, (size_t)len + 1, size, val, ret);
	}
	default:
		return remote_info(GP_INFO_PLATFORM, 1, 0, param, size, val, ret);
	}
}

static cl_int CL_API_CALL icd_GetDeviceIDs(cl_platform_id p, cl_device_type type, cl_uint num,
					   cl_device_id *devs, cl_uint *nout)
{
	cl_uint n = 0;

	if (p && p != &G.platform)
		return CL_INVALID_PLATFORM;
	if ((num == 0 && devs) || (!devs && !nout))
		return CL_INVALID_VALUE;
	if (!ready())
		return CL_DEVICE_NOT_FOUND;
	if (type == 0 || ((type & ~(CL_DEVICE_TYPE_DEFAULT | CL_DEVICE_TYPE_CPU | CL_DEVICE_TYPE_GPU |
				    CL_DEVICE_TYPE_ACCELERATOR | CL_DEVICE_TYPE_CUSTOM)) &&
			  type != CL_DEVICE_TYPE_ALL))
		return CL_INVALID_DEVICE_TYPE;
	for (cl_uint i = 0; i < G.ndev; i++) {
		bool match = type == CL_DEVICE_TYPE_ALL || (G.devs[i].type & type) ||
			     ((type & CL_DEVICE_TYPE_DEFAULT) && i == 0);

		if (!match)
			continue;
		if (devs && n < num)
			devs[n] = &G.devs[i];
		n++;
	}
	if (nout)
		*nout = n;
	return n ? CL_SUCCESS : CL_DEVICE_NOT_FOUND;
}

static cl_int CL_API_CALL icd_GetDeviceInfo(cl_device_id d, cl_device_info param, size_t size,
					    void *val, size_t *ret)
{
	if (!is(d, GP_KIND_DEVICE))
		return CL_INVALID_DEVICE;
	switch (param) {
	case CL_DEVICE_PLATFORM:
		PUT(cl_platform_id, &G.platform);
	case CL_DEVICE_PARENT_DEVICE:
		PUT(cl_device_id, d->parent);
	case CL_DEVICE_REFERENCE_COUNT:
		/* Root devices are not counted (OpenCL 3.0, 4.3.2). */
		PUT(cl_uint, d->parent ? __atomic_load_n(&d->h.refs, __ATOMIC_RELAXED) : 1);
	/* Not forwarded by this version: SVM, IL programs, on-device
	 * queues. Saying so keeps applications off those paths. */
	case CL_DEVICE_SVM_CAPABILITIES:
		PUT(cl_device_svm_capabilities, 0);
	case CL_DEVICE_IL_VERSION:
		return put_info("", 1, size, val, ret);
	case CL_DEVICE_ILS_WITH_VERSION:
		return put_info("", 0, size, val, ret);
	case CL_DEVICE_QUEUE_ON_DEVICE_PROPERTIES:
		PUT(cl_command_queue_properties, 0);
	case CL_DEVICE_MAX_ON_DEVICE_QUEUES:
	case CL_DEVICE_MAX_ON_DEVICE_EVENTS:
	case CL_DEVICE_QUEUE_ON_DEVICE_PREFERRED_SIZE:
	case CL_DEVICE_QUEUE_ON_DEVICE_MAX_SIZE:
		PUT(cl_uint, 0);
	case CL_DEVICE_DEVICE_ENQUEUE_CAPABILITIES:
		PUT(cl_device_device_enqueue_capabilities, 0);
	case CL_DEVICE_EXECUTION_CAPABILITIES: {
		/* A native kernel is a function of the guest's: the host
		 * cannot run it (clEnqueueNativeKernel answers as on a
		 * device without CL_EXEC_NATIVE_KERNEL). */
		cl_device_exec_capabilities caps = 0;
		cl_int err = remote_info(GP_INFO_DEVICE, d->h.id, 0, param, sizeof(caps), &caps, NULL);

		if (err != CL_SUCCESS)
			return err;
		PUT(cl_device_exec_capabilities, caps & ~(cl_device_exec_capabilities)CL_EXEC_NATIVE_KERNEL);
	}
	default:
		return remote_info(GP_INFO_DEVICE, d->h.id, 0, param, size, val, ret);
	}
}

/* @d's limits, asked of the server the first time. When it cannot
 * answer, limits that check nothing (the server still does). */
static struct dev_lim dev_limits(cl_device_id d)
{
	struct dev_lim l = { .max_alloc = UINT64_MAX, .max_wg = SIZE_MAX,
			     .max_items = { SIZE_MAX, SIZE_MAX, SIZE_MAX }, .ver = 30,
			     .nonuniform = CL_TRUE };
	size_t items[3] = { 0 }, n = 0;
	char ver[1024] = "";
	unsigned maj, min;

	if (__atomic_load_n(&d->lim_ok, __ATOMIC_ACQUIRE))
		return d->lim;
	if (remote_info(GP_INFO_DEVICE, d->h.id, 0, CL_DEVICE_MAX_MEM_ALLOC_SIZE,
			sizeof(l.max_alloc), &l.max_alloc, NULL) != CL_SUCCESS ||
	    remote_info(GP_INFO_DEVICE, d->h.id, 0, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof(l.max_wg),
			&l.max_wg, NULL) != CL_SUCCESS ||
	    remote_info(GP_INFO_DEVICE, d->h.id, 0, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof(items),
			items, &n) != CL_SUCCESS ||
	    remote_info(GP_INFO_DEVICE, d->h.id, 0, CL_DEVICE_VERSION, sizeof(ver) - 1, ver,
			NULL) != CL_SUCCESS ||
	    sscanf(ver, "OpenCL %u.%u", &maj, &min) != 2)
		return l;
	for (size_t i = 0; i < 3; i++)
		l.max_items[i] = i < n / sizeof(size_t) ? items[i] : 1;
	l.ver = maj * 10 + min;
	/* 2.x devices have non-uniform work-groups; 3.0 ones say. */
	if (l.ver >= 30 && remote_info(GP_INFO_DEVICE, d->h.id, 0,
				       CL_DEVICE_NON_UNIFORM_WORK_GROUP_SUPPORT,
				       sizeof(l.nonuniform), &l.nonuniform, NULL) != CL_SUCCESS)
		l.nonuniform = CL_FALSE;
	if (l.ver < 20)
		l.nonuniform = CL_FALSE;
	pthread_mutex_lock(&G.cache_mu);
	d->lim = l;
	__atomic_store_n(&d->lim_ok, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&G.cache_mu);
	return l;
}

/* Entries of a partition property list before its final 0 (OpenCL 3.0,
 * 4.3.1), or 0 when it is not one the specification defines. */
static cl_uint partition_len(const cl_device_partition_property *p)
{
	cl_uint n;

	switch (p[0]) {
	case CL_DEVICE_PARTITION_EQUALLY:
	case CL_DEVICE_PARTITION_BY_AFFINITY_DOMAIN:
		n = 2;
		break;
	case CL_DEVICE_PARTITION_BY_COUNTS:
		n = 1;
		while (n < GP_PROTO_MAX_PARTITION && p[n] != CL_DEVICE_PARTITION_BY_COUNTS_LIST_END)
			n++;
		if (n == GP_PROTO_MAX_PARTITION)
			return 0;
		n++;
		break;
	default:
		return 0;
	}
	return p[n] == 0 ? n : 0;
}

/* CREATE_SUB_DEVICES with the ids of @m new sub-devices (m 0: only how
 * many the partition gives, in @count). */
static cl_int sub_devices_call(cl_device_id d, const cl_device_partition_property *p, cl_uint np,
			       cl_uint m, cl_device_id *subs, cl_uint *count)
{
	struct gp_icd_call k;
	cl_int err;

	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, d->h.id);
	gp_enc_u32(&k.e, np);
	for (cl_uint i = 0; i < np; i++)
		gp_enc_u64(&k.e, (uint64_t)(int64_t)p[i]);
	gp_enc_u32(&k.e, m);
	for (cl_uint i = 0; i < m; i++)
		gp_enc_u64(&k.e, subs[i]->h.id);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_SUB_DEVICES, CL_DEVICE_NOT_AVAILABLE);
	*count = gp_dec_u32(&k.d);
	if (err == CL_SUCCESS && k.d.err)
		err = CL_OUT_OF_RESOURCES;
	gp_icd_call_end(&k);
	return err;
}

/* Sub-devices are the host device's, partitioned on the server; each is a
 * device of ours that names its parent and counts its references. */
static cl_int CL_API_CALL icd_CreateSubDevices(cl_device_id d, const cl_device_partition_property *p,
					       cl_uint n, cl_device_id *out, cl_uint *nout)
{
	cl_device_id subs[64];
	cl_uint np, got = 0;
	cl_int err;

	if (!is(d, GP_KIND_DEVICE))
		return CL_INVALID_DEVICE;
	if (!p || !(np = partition_len(p)) || (out && n == 0))
		return CL_INVALID_VALUE;
	err = sub_devices_call(d, p, np, 0, NULL, &got);
	if (err != CL_SUCCESS)
		return err;
	if (out && n < got)
		return CL_INVALID_VALUE;
	if (out && got > sizeof(subs) / sizeof(subs[0]))
		return CL_OUT_OF_RESOURCES;
	if (out) {
		cl_uint made;

		for (made = 0; made < got; made++) {
			subs[made] = obj_new(sizeof(*subs[made]), GP_KIND_DEVICE);
			if (!subs[made])
				break;
			subs[made]->type = d->type;
			subs[made]->parent = d;
		}
		err = made < got ? CL_OUT_OF_HOST_MEMORY : sub_devices_call(d, p, np, got, subs, &got);
		if (err != CL_SUCCESS) {
			/* The server made none (or they are released with the
			 * ids, which it then drops as unknown). */
			for (cl_uint i = 0; i < made; i++)
				free(subs[i]);
			return err;
		}
		for (cl_uint i = 0; i < got; i++) {
			if (d->parent)
				retain(d);
			out[i] = subs[i];
		}
	}
	if (nout)
		*nout = got;
	return CL_SUCCESS;
}

static void device_free(void *o)
{
	cl_device_id d = o;
	cl_device_id parent = d->parent;

	obj_drop(d);
	free(d);
	if (parent->parent && unref(parent))
		device_free(parent);
}

static cl_int CL_API_CALL icd_RetainDevice(cl_device_id d)
{
	if (!is(d, GP_KIND_DEVICE))
		return CL_INVALID_DEVICE;
	if (d->parent)
		retain(d);
	return CL_SUCCESS;
}

static cl_int CL_API_CALL icd_ReleaseDevice(cl_device_id d)
{
	if (!is(d, GP_KIND_DEVICE))
		return CL_INVALID_DEVICE;
	return d->parent ? obj_release(d, GP_KIND_DEVICE) : CL_SUCCESS;
}

/* ---- contexts ---- */

static cl_context context_make(const cl_context_properties *props, cl_uint n,
			       const cl_device_id *devs, cl_int *errp)
{
	struct gp_icd_call k;
	cl_context ctx;
	cl_int err;
	size_t np = 0;

	if (!ready()) {
		set_err(errp, CL_DEVICE_NOT_AVAILABLE);
		return NULL;
	}
	if (props) {
		unsigned seen = 0;

		for (np = 0; props[np]; np += 2) {
			unsigned bit = props[np] == CL_CONTEXT_PLATFORM ? 1 : 2;

			/* Each property at most once (and so at most two pairs). */
			if (np + 3 > 8 || (seen & bit)) {
				set_err(errp, CL_INVALID_PROPERTY);
				return NULL;
			}
			seen |= bit;
			if (props[np] == CL_CONTEXT_PLATFORM) {
				if ((cl_platform_id)props[np + 1] != &G.platform) {
					set_err(errp, CL_INVALID_PLATFORM);
					return NULL;
				}
			} else if (props[np] != CL_CONTEXT_INTEROP_USER_SYNC) {
				set_err(errp, CL_INVALID_PROPERTY);
				return NULL;
			}
		}
		np++;
	}
	ctx = obj_new(sizeof(*ctx), GP_KIND_CONTEXT);
	if (!ctx || !(ctx->devs = calloc(n, sizeof(*devs)))) {
		free(ctx);
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	memcpy(ctx->devs, devs, n * sizeof(*devs));
	ctx->ndev = n;
	if (np)
		memcpy(ctx->props, props, np * sizeof(*props));
	ctx->nprops = np;
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, ctx->h.id);
	enc_devices(&k.e, n, devs);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_CONTEXT, CL_DEVICE_NOT_AVAILABLE);
	gp_icd_call_end(&k);
	if (err != CL_SUCCESS) {
		free(ctx->devs);
		free(ctx);
		ctx = NULL;
	} else {
		/* A context keeps its sub-devices (OpenCL 3.0, 4.4). */
		for (cl_uint i = 0; i < n; i++)
			icd_RetainDevice(devs[i]);
	}
	set_err(errp, err);
	return ctx;
}

static cl_context CL_API_CALL icd_CreateContext(const cl_context_properties *props, cl_uint n,
						const cl_device_id *devs,
						void (CL_CALLBACK *notify)(const char *, const void *, size_t, void *),
						void *ud, cl_int *err)
{
	if (!devs || n == 0 || (!notify && ud)) {
		set_err(err, CL_INVALID_VALUE);
		return NULL;
	}
	for (cl_uint i = 0; i < n; i++) {
		if (!is(devs[i], GP_KIND_DEVICE)) {
			set_err(err, CL_INVALID_DEVICE);
			return NULL;
		}
	}
	/* notify: errors are returned by the calls themselves; the server
	 * reports nothing asynchronously, so it is never called. */
	return context_make(props, n, devs, err);
}

static cl_context CL_API_CALL icd_CreateContextFromType(const cl_context_properties *props,
							cl_device_type type,
							void (CL_CALLBACK *notify)(const char *, const void *, size_t, void *),
							void *ud, cl_int *err)
{
	cl_device_id devs[64];
	cl_uint n = 0;
	cl_int e;

	if (!notify && ud) {
		set_err(err, CL_INVALID_VALUE);
		return NULL;
	}
	e = icd_GetDeviceIDs(&G.platform, type, 64, devs, &n);
	if (e != CL_SUCCESS) {
		set_err(err, e);
		return NULL;
	}
	return context_make(props, n < 64 ? n : 64, devs, err);
}

static cl_int CL_API_CALL icd_RetainContext(cl_context ctx)
{
	return obj_retain(ctx, GP_KIND_CONTEXT);
}

static void context_free(void *o)
{
	cl_context ctx = o;

	for (struct dtor_cb *c = ctx->dtor, *n; c; c = n) {
		n = c->next;
		((void (CL_CALLBACK *)(cl_context, void *))c->fn)(ctx, c->data);
		free(c);
	}
	obj_drop(ctx);
	for (cl_uint i = 0; i < ctx->ndev; i++)
		icd_ReleaseDevice(ctx->devs[i]);
	free(ctx->devs);
	free(ctx);
}

static cl_int CL_API_CALL icd_ReleaseContext(cl_context ctx)
{
	return obj_release(ctx, GP_KIND_CONTEXT);
}

static cl_int CL_API_CALL icd_SetContextDestructorCallback(cl_context ctx,
							   void (CL_CALLBACK *fn)(cl_context, void *),
							   void *data)
{
	if (!is(ctx, GP_KIND_CONTEXT))
		return CL_INVALID_CONTEXT;
	return dtor_push(&ctx->dtor, (void (*)(void))fn, data);
}

static cl_int CL_API_CALL icd_GetContextInfo(cl_context ctx, cl_context_info param, size_t size,
					     void *val, size_t *ret)
{
	if (!is(ctx, GP_KIND_CONTEXT))
		return CL_INVALID_CONTEXT;
	switch (param) {
	case CL_CONTEXT_REFERENCE_COUNT:
		PUT(cl_uint, __atomic_load_n(&ctx->h.refs, __ATOMIC_RELAXED));
	case CL_CONTEXT_NUM_DEVICES:
		PUT(cl_uint, ctx->ndev);
	case CL_CONTEXT_DEVICES:
		return put_info(ctx->devs, ctx->ndev * sizeof(cl_device_id), size, val, ret);
	case CL_CONTEXT_PROPERTIES:
		return put_info(ctx->props, ctx->nprops * sizeof(cl_context_properties), size, val, ret);
	default:
		return CL_INVALID_VALUE;
	}
}

/* ---- command queues ---- */

static cl_command_queue queue_make(cl_context ctx, cl_device_id dev,
				   cl_command_queue_properties props,
				   const cl_queue_properties *parr, size_t nparr, cl_int *errp)
{
	struct gp_icd_call k;
	cl_command_queue q;
	cl_int err;
	bool found = false;

	if (!is(ctx, GP_KIND_CONTEXT)) {
		set_err(errp, CL_INVALID_CONTEXT);
		return NULL;
	}
	for (cl_uint i = 0; i < ctx->ndev; i++)
		found |= ctx->devs[i] == dev;
	if (!is(dev, GP_KIND_DEVICE) || !found) {
		set_err(errp, CL_INVALID_DEVICE);
		return NULL;
	}
	/* Bits the specification does not define, or ON_DEVICE_DEFAULT without
	 * ON_DEVICE, or ON_DEVICE without OUT_OF_ORDER are not valid values;
	 * ON_DEVICE is valid but not supported (no on-device queues: see
	 * device info). OpenCL 3.0, clCreateCommandQueueWithProperties. */
	if ((props & ~(cl_command_queue_properties)(CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE |
						    CL_QUEUE_PROFILING_ENABLE | CL_QUEUE_ON_DEVICE |
						    CL_QUEUE_ON_DEVICE_DEFAULT)) ||
	    ((props & CL_QUEUE_ON_DEVICE_DEFAULT) && !(props & CL_QUEUE_ON_DEVICE)) ||
	    ((props & CL_QUEUE_ON_DEVICE) && !(props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE))) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	if (props & CL_QUEUE_ON_DEVICE) {
		set_err(errp, CL_INVALID_QUEUE_PROPERTIES);
		return NULL;
	}
	q = obj_new(sizeof(*q), GP_KIND_QUEUE);
	if (!q) {
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	q->ctx = ctx;
	q->dev = dev;
	q->props = props;
	if (nparr)
		memcpy(q->parr, parr, nparr * sizeof(*parr));
	q->nparr = nparr;
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, q->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	gp_enc_u64(&k.e, dev->h.id);
	gp_enc_u64(&k.e, props);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_QUEUE, DEAD);
	gp_icd_call_end(&k);
	if (err != CL_SUCCESS) {
		free(q);
		q = NULL;
	} else {
		retain(ctx);
	}
	set_err(errp, err);
	return q;
}

static cl_command_queue CL_API_CALL icd_CreateCommandQueue(cl_context ctx, cl_device_id dev,
							   cl_command_queue_properties props,
							   cl_int *err)
{
	return queue_make(ctx, dev, props, NULL, 0, err);
}

static cl_command_queue CL_API_CALL icd_CreateCommandQueueWithProperties(cl_context ctx,
									 cl_device_id dev,
									 const cl_queue_properties *p,
									 cl_int *err)
{
	cl_command_queue_properties props = 0;
	size_t n = 0;

	for (; p && p[n]; n += 2) {
		if (n + 3 > 8 || p[n] != CL_QUEUE_PROPERTIES) {
			/* CL_QUEUE_SIZE is only for on-device queues. */
			set_err(err, p[n] == CL_QUEUE_SIZE ? CL_INVALID_QUEUE_PROPERTIES : CL_INVALID_VALUE);
			return NULL;
		}
		props = (cl_command_queue_properties)p[n + 1];
	}
	return queue_make(ctx, dev, props, p, p ? n + 1 : 0, err);
}

static cl_int CL_API_CALL icd_RetainCommandQueue(cl_command_queue q)
{
	return obj_retain(q, GP_KIND_QUEUE);
}

static cl_int CL_API_CALL icd_Flush(cl_command_queue q);

static void queue_free(void *o)
{
	cl_command_queue q = o;

	/* clReleaseCommandQueue flushes (OpenCL 3.0, 5.1); the server's
	 * release does the same on the host queue. */
	obj_drop(q);
	icd_ReleaseContext(q->ctx);
	free(q);
}

static cl_int CL_API_CALL icd_ReleaseCommandQueue(cl_command_queue q)
{
	return obj_release(q, GP_KIND_QUEUE);
}

static cl_int CL_API_CALL icd_GetCommandQueueInfo(cl_command_queue q, cl_command_queue_info param,
						  size_t size, void *val, size_t *ret)
{
	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	switch (param) {
	case CL_QUEUE_CONTEXT:
		PUT(cl_context, q->ctx);
	case CL_QUEUE_DEVICE:
		PUT(cl_device_id, q->dev);
	case CL_QUEUE_REFERENCE_COUNT:
		PUT(cl_uint, __atomic_load_n(&q->h.refs, __ATOMIC_RELAXED));
	case CL_QUEUE_PROPERTIES:
		PUT(cl_command_queue_properties, q->props);
	case CL_QUEUE_PROPERTIES_ARRAY:
		return put_info(q->parr, q->nparr * sizeof(cl_queue_properties), size, val, ret);
	case CL_QUEUE_DEVICE_DEFAULT:
		PUT(cl_command_queue, NULL);
	case CL_QUEUE_SIZE:
		return CL_INVALID_COMMAND_QUEUE; /* not an on-device queue */
	default:
		return CL_INVALID_VALUE;
	}
}

static cl_int CL_API_CALL icd_SetCommandQueueProperty(cl_command_queue q,
						      cl_command_queue_properties p, cl_bool en,
						      cl_command_queue_properties *old)
{
	/* Deprecated in OpenCL 1.1; properties are fixed at creation here. */
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_OPERATION : CL_INVALID_COMMAND_QUEUE;
}

static cl_int CL_API_CALL icd_Flush(cl_command_queue q)
{
	struct gp_icd_call k;
	cl_int err;

	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, q->h.id);
	err = gp_icd_call_post(&k, GP_OP_FLUSH, DEAD);
	gp_icd_call_end(&k);
	return err;
}

/* clFinish as a marker (pipelined) and a wait for it that never holds
 * the connection for long: one round trip when the queue is done soon. */
static cl_int queue_finish(cl_command_queue q)
{
	struct timespec nap = { 0, 500000 };

	for (;;) {
		uint64_t id = gp_icd_conn_new_id(G.conn);
		struct gp_icd_call k;
		cl_int err, st = CL_COMPLETE;
		bool refused;

		/* A marker as post_marker() sends it, but without marking the
		 * queue busy again: it is what the caller waits for. */
		gp_icd_call_begin(G.conn, &k);
		gp_enc_u64(&k.e, q->h.id);
		enc_waitlist(&k.e, 0, NULL);
		gp_enc_u64(&k.e, id);
		err = gp_icd_call_post(&k, GP_OP_MARKER, DEAD);
		gp_icd_call_end(&k);
		if (err != CL_SUCCESS)
			return err;
		err = wait_ids(1, &id);
		/* A guest at its quota (memory_max, max_objects) gets its
		 * marker refused: its id unknown, or an event failed with
		 * CL_OUT_OF_RESOURCES. What fills the quota is mostly the
		 * queue's own commands, refunded as they end: ask again, as a
		 * native clFinish would go on waiting. */
		if (err == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST &&
		    remote_info(GP_INFO_EVENT, id, 0, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st),
				&st, NULL) != CL_SUCCESS)
			st = CL_COMPLETE;
		refused = gp_icd_conn_alive(G.conn) &&
			  (err == CL_INVALID_EVENT ||
			   (err == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST &&
			    st == CL_OUT_OF_RESOURCES));
		post_release(id);
		if (!refused)
			return err == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST ? CL_SUCCESS : err;
		nanosleep(&nap, NULL);
		if (nap.tv_nsec < 20000000)
			nap.tv_nsec *= 2;
	}
}

static cl_int CL_API_CALL icd_Finish(cl_command_queue q)
{
	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	__atomic_store_n(&q->dirty, 0, __ATOMIC_RELEASE);
	return queue_finish(q);
}

/* ---- memory objects ---- */

#define MEM_ACCESS (CL_MEM_READ_WRITE | CL_MEM_WRITE_ONLY | CL_MEM_READ_ONLY)
#define MEM_HOST (CL_MEM_HOST_WRITE_ONLY | CL_MEM_HOST_READ_ONLY | CL_MEM_HOST_NO_ACCESS)

static int popcount64(uint64_t v)
{
	return __builtin_popcountll(v);
}

static cl_int write_data(cl_command_queue q, cl_mem m, size_t off, size_t size, const void *ptr,
			 cl_uint nw, const cl_event *wl, uint64_t evid, bool blocking);
static cl_int post_marker(cl_command_queue q, uint16_t op, cl_uint nw, const cl_event *wl,
			  uint64_t id);
static cl_int image_xfer(bool write, cl_command_queue q, cl_mem m, const size_t *org,
			 const size_t *reg, size_t rp, size_t sp, void *ptr, cl_uint nw,
			 const cl_event *wl, uint64_t evid, bool blocking);

static cl_mem mem_new(cl_int *errp)
{
	cl_mem m = obj_new(sizeof(*m), GP_KIND_MEM);

	if (!m) {
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

/* The context and flags of a new buffer or image: no flags mean
 * READ_WRITE; one access mode, one host access mode, USE_HOST_PTR alone
 * of the host pointer flags, nothing unknown (OpenCL 3.0, table 12). */
static cl_int mem_create_check(cl_context ctx, cl_mem_flags *flags)
{
	cl_mem_flags f = *flags ? *flags : CL_MEM_READ_WRITE;

	if (!is(ctx, GP_KIND_CONTEXT))
		return CL_INVALID_CONTEXT;
	if (popcount64(f & MEM_ACCESS) > 1 || popcount64(f & MEM_HOST) > 1 ||
	    ((f & CL_MEM_USE_HOST_PTR) && (f & (CL_MEM_COPY_HOST_PTR | CL_MEM_ALLOC_HOST_PTR))) ||
	    (f & ~(cl_mem_flags)(MEM_ACCESS | MEM_HOST | CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR |
				 CL_MEM_ALLOC_HOST_PTR | CL_MEM_KERNEL_READ_AND_WRITE)))
		return CL_INVALID_VALUE;
	*flags = f;
	return CL_SUCCESS;
}

/* Host access flags are the ICD's to enforce (the server creates every
 * object without them, so that its own transfers, such as the initial
 * upload of COPY_HOST_PTR data, pass): CL_INVALID_OPERATION for a host
 * read of a HOST_WRITE_ONLY or HOST_NO_ACCESS object, a host write of a
 * HOST_READ_ONLY or HOST_NO_ACCESS one (OpenCL 3.0, 5.2.2, 5.3.3, 5.4.2). */
static cl_int host_access(cl_mem m, bool read, bool write)
{
	if (read && (m->flags & (CL_MEM_HOST_WRITE_ONLY | CL_MEM_HOST_NO_ACCESS)))
		return CL_INVALID_OPERATION;
	if (write && (m->flags & (CL_MEM_HOST_READ_ONLY | CL_MEM_HOST_NO_ACCESS)))
		return CL_INVALID_OPERATION;
	return CL_SUCCESS;
}

/* A map's host access: reads for CL_MAP_READ, writes for the others. */
static cl_int map_access(cl_mem m, cl_map_flags f)
{
	return host_access(m, f & CL_MAP_READ, f & (CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION));
}

/* A buffer of @size bytes is too big when it exceeds
 * CL_DEVICE_MAX_MEM_ALLOC_SIZE of every device of the context. */
static bool fits_some_device(cl_context ctx, size_t size)
{
	for (cl_uint i = 0; i < ctx->ndev; i++)
		if (size <= dev_limits(ctx->devs[i]).max_alloc)
			return true;
	return false;
}

static cl_mem buffer_make(cl_context ctx, cl_mem_flags flags, size_t size, void *host_ptr,
			  cl_int *errp)
{
	struct gp_icd_call k;
	cl_mem m;
	cl_int err;

	err = mem_create_check(ctx, &flags);
	if (err != CL_SUCCESS) {
		set_err(errp, err);
		return NULL;
	}
	if (size == 0 || !fits_some_device(ctx, size)) {
		set_err(errp, CL_INVALID_BUFFER_SIZE);
		return NULL;
	}
	if ((host_ptr == NULL) != !(flags & (CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR))) {
		set_err(errp, CL_INVALID_HOST_PTR);
		return NULL;
	}
	m = mem_new(errp);
	if (!m)
		return NULL;
	m->ctx = ctx;
	m->flags = flags;
	m->size = size;
	m->host_ptr = (flags & CL_MEM_USE_HOST_PTR) ? host_ptr : NULL;
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, m->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	gp_enc_u64(&k.e, flags);
	gp_enc_u64(&k.e, size);
	gp_enc_u32(&k.e, gp_icd_conn_shared(G.conn) && !(flags & CL_MEM_USE_HOST_PTR) &&
			 size >= SHARED_MIN);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_BUFFER, DEAD);
	if (err == CL_SUCCESS && gp_dec_u32(&k.d) == 1) {
		int fd = -1;

		if (gp_icd_recv_fd_locked(&k, &fd) < 0) {
			err = DEAD;
		} else {
			void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

			close(fd);
			if (p == MAP_FAILED) {
				err = CL_OUT_OF_HOST_MEMORY;
			} else {
				m->shared = p;
				m->shared_len = size;
			}
		}
		if (err != CL_SUCCESS)
			post_release(m->h.id);
	}
	gp_icd_call_end(&k);
	if (err == CL_SUCCESS && host_ptr && m->shared) {
		memcpy(m->shared, host_ptr, size); /* a fresh buffer: nothing to wait for */
	} else if (err == CL_SUCCESS && host_ptr) {
		/* COPY_HOST_PTR and USE_HOST_PTR: the device copy starts as the
		 * host data; with USE_HOST_PTR, maps hand back host_ptr. */
		err = write_data(NULL, m, 0, size, host_ptr, 0, NULL, 0, true);
		if (err != CL_SUCCESS)
			post_release(m->h.id);
	}
	if (err != CL_SUCCESS) {
		free(m);
		set_err(errp, err);
		return NULL;
	}
	retain(ctx);
	set_err(errp, CL_SUCCESS);
	return m;
}

static cl_mem CL_API_CALL icd_CreateBuffer(cl_context ctx, cl_mem_flags flags, size_t size,
					   void *host_ptr, cl_int *err)
{
	return buffer_make(ctx, flags, size, host_ptr, err);
}

/* CL_MEM_PROPERTIES answers the list given (just its final 0 in 3.0
 * core), or nothing when none was (OpenCL 3.0, clGetMemObjectInfo). */
static cl_mem with_props(cl_mem m, const cl_mem_properties *props)
{
	if (m && props)
		m->props = true;
	return m;
}

static cl_mem CL_API_CALL icd_CreateBufferWithProperties(cl_context ctx, const cl_mem_properties *props,
							 cl_mem_flags flags, size_t size,
							 void *host_ptr, cl_int *err)
{
	if (props && props[0] != 0) {
		set_err(err, CL_INVALID_PROPERTY); /* no buffer properties are defined in 3.0 core */
		return NULL;
	}
	return with_props(buffer_make(ctx, flags, size, host_ptr, err), props);
}

/* A sub-buffer's flags against its parent's (OpenCL 3.0,
 * clCreateSubBuffer): no host pointer flags, at most one access and one
 * host access mode, none that the parent forbids. The server creates
 * objects without host access flags, so these checks are ours. */
static bool subbuffer_flags_ok(cl_mem_flags pf, cl_mem_flags f)
{
	if ((f & ~(cl_mem_flags)(MEM_ACCESS | MEM_HOST)) || popcount64(f & MEM_ACCESS) > 1 ||
	    popcount64(f & MEM_HOST) > 1)
		return false;
	if ((pf & CL_MEM_WRITE_ONLY) && (f & (CL_MEM_READ_WRITE | CL_MEM_READ_ONLY)))
		return false;
	if ((pf & CL_MEM_READ_ONLY) && (f & (CL_MEM_READ_WRITE | CL_MEM_WRITE_ONLY)))
		return false;
	if ((pf & CL_MEM_HOST_WRITE_ONLY) && (f & CL_MEM_HOST_READ_ONLY))
		return false;
	if ((pf & CL_MEM_HOST_READ_ONLY) && (f & CL_MEM_HOST_WRITE_ONLY))
		return false;
	return !((pf & CL_MEM_HOST_NO_ACCESS) && (f & (CL_MEM_HOST_READ_ONLY | CL_MEM_HOST_WRITE_ONLY)));
}

static cl_mem CL_API_CALL icd_CreateSubBuffer(cl_mem parent, cl_mem_flags flags,
					      cl_buffer_create_type type, const void *info,
					      cl_int *errp)
{
	const cl_buffer_region *reg = info;
	struct gp_icd_call k;
	cl_mem m;
	cl_int err;

	if (!is(parent, GP_KIND_MEM) || parent->parent || parent->image) {
		set_err(errp, CL_INVALID_MEM_OBJECT);
		return NULL;
	}
	if (type != CL_BUFFER_CREATE_TYPE_REGION || !reg) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	if (reg->size == 0) {
		set_err(errp, CL_INVALID_BUFFER_SIZE);
		return NULL;
	}
	if (reg->origin > parent->size || reg->size > parent->size - reg->origin ||
	    !subbuffer_flags_ok(parent->flags, flags)) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	m = mem_new(errp);
	if (!m)
		return NULL;
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, m->h.id);
	gp_enc_u64(&k.e, parent->h.id);
	gp_enc_u64(&k.e, flags);
	gp_enc_u64(&k.e, reg->origin);
	gp_enc_u64(&k.e, reg->size);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_SUBBUFFER, DEAD);
	gp_icd_call_end(&k);
	if (err != CL_SUCCESS) {
		free(m);
		set_err(errp, err);
		return NULL;
	}
	/* Access flags not given are inherited; host-pointer flags always are. */
	if (!(flags & MEM_ACCESS))
		flags |= parent->flags & MEM_ACCESS;
	if (!(flags & MEM_HOST))
		flags |= parent->flags & MEM_HOST;
	flags |= parent->flags & (CL_MEM_USE_HOST_PTR | CL_MEM_ALLOC_HOST_PTR | CL_MEM_COPY_HOST_PTR);
	m->ctx = parent->ctx;
	m->flags = flags;
	m->size = reg->size;
	m->parent = parent;
	m->origin = reg->origin;
	m->host_ptr = parent->host_ptr ? (char *)parent->host_ptr + reg->origin : NULL;
	m->shared = parent->shared ? parent->shared + reg->origin : NULL;
	retain(parent);
	retain(m->ctx);
	set_err(errp, CL_SUCCESS);
	return m;
}

static cl_int CL_API_CALL icd_RetainMemObject(cl_mem m)
{
	return obj_retain(m, GP_KIND_MEM);
}

static void mem_free(void *o)
{
	cl_mem m = o;

	for (struct dtor_cb *c = m->dtor, *n; c; c = n) {
		n = c->next;
		((void (CL_CALLBACK *)(cl_mem, void *))c->fn)(m, c->data);
		free(c);
	}
	obj_drop(m);
	for (struct mapping *p = m->maps, *n; p; p = n) {
		n = p->next;
		if (p->owned)
			free(p->ptr);
		free(p);
	}
	if (m->shared_len)
		munmap(m->shared, m->shared_len);
	if (m->parent)
		icd_ReleaseMemObject(m->parent);
	if (m->image && m->desc.buffer)
		icd_ReleaseMemObject(m->desc.buffer);
	icd_ReleaseContext(m->ctx);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static cl_int CL_API_CALL icd_ReleaseMemObject(cl_mem m)
{
	return obj_release(m, GP_KIND_MEM);
}

static cl_int CL_API_CALL icd_SetMemObjectDestructorCallback(cl_mem m,
							     void (CL_CALLBACK *fn)(cl_mem, void *),
							     void *data)
{
	if (!is(m, GP_KIND_MEM))
		return CL_INVALID_MEM_OBJECT;
	return dtor_push(&m->dtor, (void (*)(void))fn, data);
}

static cl_int CL_API_CALL icd_GetMemObjectInfo(cl_mem m, cl_mem_info param, size_t size,
					       void *val, size_t *ret)
{
	if (!is(m, GP_KIND_MEM))
		return CL_INVALID_MEM_OBJECT;
	switch (param) {
	case CL_MEM_TYPE:
		PUT(cl_mem_object_type, m->image ? m->desc.image_type : CL_MEM_OBJECT_BUFFER);
	case CL_MEM_FLAGS:
		PUT(cl_mem_flags, m->flags);
	case CL_MEM_SIZE:
		PUT(size_t, m->size);
	case CL_MEM_HOST_PTR:
		PUT(void *, m->host_ptr);
	case CL_MEM_MAP_COUNT:
		PUT(cl_uint, m->nmaps);
	case CL_MEM_REFERENCE_COUNT:
		PUT(cl_uint, __atomic_load_n(&m->h.refs, __ATOMIC_RELAXED));
	case CL_MEM_CONTEXT:
		PUT(cl_context, m->ctx);
	case CL_MEM_ASSOCIATED_MEMOBJECT:
		PUT(cl_mem, m->image ? m->desc.buffer : m->parent);
	case CL_MEM_OFFSET:
		PUT(size_t, m->origin);
	case CL_MEM_USES_SVM_POINTER:
		PUT(cl_bool, CL_FALSE);
	case CL_MEM_PROPERTIES: {
		static const cl_mem_properties none[1] = { 0 };

		return put_info(none, m->props ? sizeof(none) : 0, size, val, ret);
	}
	default:
		return CL_INVALID_VALUE;
	}
}

/* Big transfers for a server that may read our memory: it maps the
 * buffer and copies straight from/to @ptr (one copy, as natively). */
static cl_int direct_transfer(uint16_t op, cl_command_queue q, cl_mem m, size_t off, size_t size,
			      const void *ptr, cl_uint nw, const cl_event *wl, uint64_t evid)
{
	struct gp_icd_call k;
	cl_int err;

	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, q ? q->h.id : 0);
	gp_enc_u64(&k.e, m->h.id);
	gp_enc_u64(&k.e, off);
	gp_enc_u64(&k.e, size);
	gp_enc_u32(&k.e, 2);
	if (op == GP_OP_WRITE_BUFFER)
		gp_enc_u32(&k.e, 1);
	gp_enc_u64(&k.e, (uint64_t)(uintptr_t)ptr);
	if (op == GP_OP_WRITE_BUFFER)
		gp_enc_blob(&k.e, NULL, 0);
	enc_waitlist(&k.e, nw, wl);
	gp_enc_u64(&k.e, evid);
	err = gp_icd_call_sync(&k, op, DEAD);
	gp_icd_call_end(&k);
	return err;
}

/* Writes @size bytes at @off of @m from @ptr: inline in the ring when
 * small (pipelined), else in chunks through the two halves of the bulk
 * region, the server copying one half while we fill the other. @q NULL:
 * the initial data of a new buffer. The event, if any, is the last
 * chunk's; the wait list holds for the first. */
static cl_int write_data(cl_command_queue q, cl_mem m, size_t off, size_t size, const void *ptr,
			 cl_uint nw, const cl_event *wl, uint64_t evid, bool blocking)
{
	struct gp_icd_call k;
	uint64_t bsize;
	uint8_t *bulk;
	size_t chunk, done = 0, nchunks, i;
	cl_int err = CL_SUCCESS, e;
	unsigned inflight = 0;

	/* A non-blocking write that may have to wait must not wait here:
	 * the server queues it from a private copy. */
	bool may_wait = q && (nw || may_wait_on(q));

	if (m->shared && (blocking || !may_wait)) {
		if (q)
			err = settle(q, nw, wl);
		else if (!gp_icd_conn_alive(G.conn))
			err = DEAD;
		if (err != CL_SUCCESS)
			return err;
		memcpy(m->shared + off, ptr, size);
		return evid ? post_marker(q, GP_OP_MARKER, 0, NULL, evid) : CL_SUCCESS;
	}
	if (q && blocking && may_wait) {
		/* As for reads: the waiting is done first, in bounded steps. */
		err = settle(q, nw, wl);
		if (err != CL_SUCCESS)
			return err;
	}
	if (size <= INLINE_MAX) {
		gp_icd_call_begin_heap(G.conn, &k);
		gp_enc_u64(&k.e, q ? q->h.id : 0);
		gp_enc_u64(&k.e, m->h.id);
		gp_enc_u64(&k.e, off);
		gp_enc_u64(&k.e, size);
		gp_enc_u32(&k.e, 0);
		gp_enc_u32(&k.e, blocking || !q);
		gp_enc_u64(&k.e, 0);
		gp_enc_blob(&k.e, ptr, size);
		enc_waitlist(&k.e, nw, wl);
		gp_enc_u64(&k.e, evid);
		if (q && blocking && !nw)
			__atomic_fetch_or(&q->dirty, DIRTY_LAZY, __ATOMIC_RELEASE);
		else
			touch(q);
		/* Initial data must be there before clCreateBuffer returns. */
		err = q ? gp_icd_call_post(&k, GP_OP_WRITE_BUFFER, DEAD)
			: gp_icd_call_sync(&k, GP_OP_WRITE_BUFFER, DEAD);
		gp_icd_call_end(&k);
		return err;
	}
	if (gp_icd_conn_direct(G.conn) && (blocking || !may_wait))
		return direct_transfer(GP_OP_WRITE_BUFFER, q, m, off, size, ptr, nw, wl, evid);
	bulk = gp_icd_conn_bulk(G.conn, &bsize);
	if (!bulk) {
		/* Stream mode (no bulk region): inline slices, the wait list on
		 * the first, the event on the last. */
		for (done = 0; done < size && err == CL_SUCCESS; done += chunk) {
			chunk = size - done < INLINE_MAX ? size - done : INLINE_MAX;
			err = write_data(q, m, off + done, chunk, (const uint8_t *)ptr + done,
					 done ? 0 : nw, wl, done + chunk == size ? evid : 0, blocking);
		}
		return err;
	}
	chunk = (size_t)(bsize / 2);
	nchunks = (size + chunk - 1) / chunk;
	gp_icd_call_begin(G.conn, &k);
	gp_icd_conn_lock(G.conn);
	for (i = 0; i < nchunks; i++) {
		size_t n = size - done < chunk ? size - done : chunk;
		size_t half = (i & 1) * chunk;

		if (inflight == 2) {
			e = gp_icd_collect_locked(&k, DEAD);
			inflight--;
			if (err == CL_SUCCESS)
				err = e;
		}
		if (err != CL_SUCCESS)
			break;
		memcpy(bulk + half, (const uint8_t *)ptr + done, n);
		gp_enc_reset(&k.e);
		gp_enc_u64(&k.e, q ? q->h.id : 0);
		gp_enc_u64(&k.e, m->h.id);
		gp_enc_u64(&k.e, off + done);
		gp_enc_u64(&k.e, n);
		gp_enc_u32(&k.e, 1);
		gp_enc_u32(&k.e, blocking || !q);
		gp_enc_u64(&k.e, half);
		gp_enc_blob(&k.e, NULL, 0);
		if (i == 0)
			enc_waitlist(&k.e, nw, wl);
		else
			enc_waitlist(&k.e, 0, NULL);
		gp_enc_u64(&k.e, i == nchunks - 1 ? evid : 0);
		if (gp_icd_send_locked(&k, GP_OP_WRITE_BUFFER, true) < 0) {
			err = DEAD;
			break;
		}
		inflight++;
		done += n;
	}
	while (inflight-- > 0) {
		e = gp_icd_collect_locked(&k, DEAD);
		if (err == CL_SUCCESS)
			err = e;
	}
	gp_icd_conn_unlock(G.conn);
	gp_icd_call_end(&k);
	return err;
}

/* Reads into @ptr: inline reply when small, else chunked through the bulk
 * region with two requests in flight. The last chunk carries the event. */
static cl_int read_data(cl_command_queue q, cl_mem m, size_t off, size_t size, void *ptr,
			cl_uint nw, const cl_event *wl, uint64_t evid)
{
	struct gp_icd_call k;
	uint64_t bsize;
	uint8_t *bulk;
	size_t chunk, nchunks, sent = 0, recvd = 0, i;
	cl_int err = CL_SUCCESS, e;

	/* Reads block on the server: what they wait for (events, earlier
	 * commands) is waited for first without holding the session, so the
	 * application's other threads go on (one may set a user event). */
	if (m->shared || nw || may_wait_on(q)) {
		err = settle(q, nw, wl);
		if (err != CL_SUCCESS)
			return err;
	}
	if (m->shared) {
		memcpy(ptr, m->shared + off, size);
		return evid ? post_marker(q, GP_OP_MARKER, 0, NULL, evid) : CL_SUCCESS;
	}
	if (size <= INLINE_MAX) {
		const void *p;
		size_t n = 0;

		call_begin(&k, nw);
		gp_enc_u64(&k.e, q->h.id);
		gp_enc_u64(&k.e, m->h.id);
		gp_enc_u64(&k.e, off);
		gp_enc_u64(&k.e, size);
		gp_enc_u32(&k.e, 0);
		gp_enc_u64(&k.e, 0);
		enc_waitlist(&k.e, nw, wl);
		gp_enc_u64(&k.e, evid);
		err = gp_icd_call_sync(&k, GP_OP_READ_BUFFER, DEAD);
		if (err == CL_SUCCESS) {
			p = gp_dec_blob(&k.d, INLINE_MAX, &n);
			if (!p || n != size)
				err = CL_OUT_OF_RESOURCES;
			else
				memcpy(ptr, p, n);
		}
		gp_icd_call_end(&k);
		return err;
	}
	if (gp_icd_conn_direct(G.conn))
		return direct_transfer(GP_OP_READ_BUFFER, q, m, off, size, ptr, nw, wl, evid);
	bulk = gp_icd_conn_bulk(G.conn, &bsize);
	if (!bulk) {
		/* Stream mode (no bulk region): inline slices, as in write_data. */
		for (sent = 0; sent < size && err == CL_SUCCESS; sent += chunk) {
			chunk = size - sent < INLINE_MAX ? size - sent : INLINE_MAX;
			err = read_data(q, m, off + sent, chunk, (uint8_t *)ptr + sent,
					sent ? 0 : nw, wl, sent + chunk == size ? evid : 0);
		}
		return err;
	}
	chunk = (size_t)(bsize / 2);
	nchunks = (size + chunk - 1) / chunk;
	gp_icd_call_begin(G.conn, &k);
	gp_icd_conn_lock(G.conn);
	for (i = 0; i < nchunks || recvd < sent; ) {
		/* Keep two requests in flight: send while a half is free. */
		if (i < nchunks && sent - recvd < 2 && err == CL_SUCCESS) {
			size_t n = size - i * chunk < chunk ? size - i * chunk : chunk;

			gp_enc_reset(&k.e);
			gp_enc_u64(&k.e, q->h.id);
			gp_enc_u64(&k.e, m->h.id);
			gp_enc_u64(&k.e, off + i * chunk);
			gp_enc_u64(&k.e, n);
			gp_enc_u32(&k.e, 1);
			gp_enc_u64(&k.e, (i & 1) * chunk);
			if (i == 0)
				enc_waitlist(&k.e, nw, wl);
			else
				enc_waitlist(&k.e, 0, NULL);
			gp_enc_u64(&k.e, i == nchunks - 1 ? evid : 0);
			if (gp_icd_send_locked(&k, GP_OP_READ_BUFFER, true) < 0) {
				err = DEAD;
				break;
			}
			sent++;
			i++;
			continue;
		}
		if (recvd == sent)
			break;
		e = gp_icd_collect_locked(&k, DEAD);
		if (e == CL_SUCCESS && err == CL_SUCCESS) {
			size_t n = size - recvd * chunk < chunk ? size - recvd * chunk : chunk;

			memcpy((uint8_t *)ptr + recvd * chunk, bulk + (recvd & 1) * chunk, n);
		} else if (err == CL_SUCCESS) {
			err = e;
		}
		recvd++;
		if (err != CL_SUCCESS && e == DEAD)
			break;
	}
	gp_icd_conn_unlock(G.conn);
	gp_icd_call_end(&k);
	return err;
}

static cl_int check_rw(cl_command_queue q, cl_mem m, size_t off, size_t size, const void *ptr,
		       cl_uint nw, const cl_event *wl)
{
	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	if (!is(m, GP_KIND_MEM) || m->image)
		return CL_INVALID_MEM_OBJECT;
	if (m->ctx != q->ctx)
		return CL_INVALID_CONTEXT;
	if (!ptr || off > m->size || size > m->size - off)
		return CL_INVALID_VALUE;
	return check_waitlist(q->ctx, nw, wl);
}

/* The event handed back for an enqueue: made before the call (its id goes
 * on the wire), dropped if the call fails. */
static cl_int with_event(cl_command_queue q, cl_command_type type, cl_event *event,
			 cl_event *out, uint64_t *id)
{
	*out = NULL;
	*id = 0;
	if (!event)
		return CL_SUCCESS;
	*out = event_new(q, q->ctx, type);
	if (!*out)
		return CL_OUT_OF_HOST_MEMORY;
	*id = (*out)->h.id;
	return CL_SUCCESS;
}

static cl_int done_event(cl_int err, cl_event ev, cl_event *event)
{
	if (!ev)
		return err;
	if (err != CL_SUCCESS) {
		/* The server registered an id only if it got the call. */
		if (ev->q)
			icd_ReleaseCommandQueue(ev->q);
		icd_ReleaseContext(ev->ctx);
		free(ev);
		return err;
	}
	*event = ev;
	return err;
}

static cl_int CL_API_CALL icd_EnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
						 size_t off, size_t size, const void *ptr, cl_uint nw,
						 const cl_event *wl, cl_event *event)
{
	cl_int err = check_rw(q, m, off, size, ptr, nw, wl);
	cl_event ev;
	uint64_t id;

	if (err == CL_SUCCESS)
		err = host_access(m, false, true);
	if (err == CL_SUCCESS)
		err = with_event(q, CL_COMMAND_WRITE_BUFFER, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	/* Non-blocking writes copy the data out at once as well (OpenCL lets
	 * an implementation finish the copy before returning). */
	return done_event(write_data(q, m, off, size, ptr, nw, wl, id, blocking), ev, event);
}

static cl_int CL_API_CALL icd_EnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
						size_t off, size_t size, void *ptr, cl_uint nw,
						const cl_event *wl, cl_event *event)
{
	cl_int err = check_rw(q, m, off, size, ptr, nw, wl);
	cl_event ev;
	uint64_t id;

	if (err == CL_SUCCESS)
		err = host_access(m, true, false);
	if (err == CL_SUCCESS && pend_wanted(q, nw, blocking)) {
		cl_mem t = icd_CreateBuffer(q->ctx, CL_MEM_READ_WRITE, size, NULL, &err);
		cl_event cev = NULL;

		if (t)
			err = icd_EnqueueCopyBuffer(q, m, t, off, 0, size, nw, wl, &cev);
		if (err != CL_SUCCESS) {
			if (t)
				icd_ReleaseMemObject(t);
			return err;
		}
		return pend_start(q, t, cev, CL_COMMAND_READ_BUFFER, ptr, size, 1, 1, size, size,
				  event);
	}
	if (err == CL_SUCCESS)
		err = with_event(q, CL_COMMAND_READ_BUFFER, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	/* Reads complete before returning (but see pend_start): the data
	 * must land in ptr, which only this process can write. */
	return done_event(read_data(q, m, off, size, ptr, nw, wl, id), ev, event);
}

/* Rectangular transfers, row by row (OpenCL 1.2, 5.2.2). */
static cl_int rect_params(const size_t *bo, const size_t *ho, const size_t *reg, size_t *brp,
			  size_t *bsp, size_t *hrp, size_t *hsp, size_t msize)
{
	size_t last;

	if (!bo || !ho || !reg || reg[0] == 0 || reg[1] == 0 || reg[2] == 0)
		return CL_INVALID_VALUE;
	if (*brp == 0)
		*brp = reg[0];
	if (*bsp == 0)
		*bsp = reg[1] * *brp;
	if (*hrp == 0)
		*hrp = reg[0];
	if (*hsp == 0)
		*hsp = reg[1] * *hrp;
	if (*brp < reg[0] || *bsp < reg[1] * *brp || *hrp < reg[0] || *hsp < reg[1] * *hrp)
		return CL_INVALID_VALUE;
	last = (bo[2] + reg[2] - 1) * *bsp + (bo[1] + reg[1] - 1) * *brp + bo[0] + reg[0];
	if (last > msize)
		return CL_INVALID_VALUE;
	return CL_SUCCESS;
}

static cl_int rect_rw(bool write, cl_command_queue q, cl_mem m, cl_bool blocking, const size_t *bo,
		      const size_t *ho, const size_t *reg, size_t brp, size_t bsp, size_t hrp,
		      size_t hsp, void *ptr, cl_uint nw, const cl_event *wl, cl_event *event)
{
	cl_int err = check_rw(q, m, 0, 0, ptr, nw, wl);
	cl_event ev;
	uint64_t id;

	if (err == CL_SUCCESS)
		err = host_access(m, !write, write);
	if (err == CL_SUCCESS)
		err = rect_params(bo, ho, reg, &brp, &bsp, &hrp, &hsp, m->size);
	if (err == CL_SUCCESS && !write && pend_wanted(q, nw, blocking)) {
		static const size_t zero[3];
		size_t n = reg[0] * reg[1] * reg[2];
		cl_mem t = icd_CreateBuffer(q->ctx, CL_MEM_READ_WRITE, n, NULL, &err);
		cl_event cev = NULL;

		if (t)
			err = icd_EnqueueCopyBufferRect(q, m, t, bo, zero, reg, brp, bsp, reg[0],
							reg[0] * reg[1], nw, wl, &cev);
		if (err != CL_SUCCESS) {
			if (t)
				icd_ReleaseMemObject(t);
			return err;
		}
		return pend_start(q, t, cev, CL_COMMAND_READ_BUFFER_RECT,
				  (uint8_t *)ptr + ho[2] * hsp + ho[1] * hrp + ho[0], reg[0], reg[1],
				  reg[2], hrp, hsp, event);
	}
	if (err == CL_SUCCESS)
		err = with_event(q, write ? CL_COMMAND_WRITE_BUFFER_RECT : CL_COMMAND_READ_BUFFER_RECT,
				 event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	for (size_t z = 0; z < reg[2] && err == CL_SUCCESS; z++) {
		for (size_t y = 0; y < reg[1] && err == CL_SUCCESS; y++) {
			size_t boff = (bo[2] + z) * bsp + (bo[1] + y) * brp + bo[0];
			size_t hoff = (ho[2] + z) * hsp + (ho[1] + y) * hrp + ho[0];
			bool first = z == 0 && y == 0, last = z == reg[2] - 1 && y == reg[1] - 1;

			if (write)
				err = write_data(q, m, boff, reg[0], (uint8_t *)ptr + hoff,
						 first ? nw : 0, first ? wl : NULL, last ? id : 0, true);
			else
				err = read_data(q, m, boff, reg[0], (uint8_t *)ptr + hoff,
						first ? nw : 0, first ? wl : NULL, last ? id : 0);
		}
	}
	return done_event(err, ev, event);
}

static cl_int CL_API_CALL icd_EnqueueReadBufferRect(cl_command_queue q, cl_mem m, cl_bool b,
						    const size_t *bo, const size_t *ho,
						    const size_t *reg, size_t brp, size_t bsp,
						    size_t hrp, size_t hsp, void *ptr, cl_uint nw,
						    const cl_event *wl, cl_event *ev)
{
	return rect_rw(false, q, m, b, bo, ho, reg, brp, bsp, hrp, hsp, ptr, nw, wl, ev);
}

static cl_int CL_API_CALL icd_EnqueueWriteBufferRect(cl_command_queue q, cl_mem m, cl_bool b,
						     const size_t *bo, const size_t *ho,
						     const size_t *reg, size_t brp, size_t bsp,
						     size_t hrp, size_t hsp, const void *ptr,
						     cl_uint nw, const cl_event *wl, cl_event *ev)
{
	return rect_rw(true, q, m, b, bo, ho, reg, brp, bsp, hrp, hsp, (void *)(uintptr_t)ptr, nw, wl,
		       ev);
}

/* The handles of a copy between two memory objects: a queue, a source and
 * a destination of the kinds the call takes (image or buffer), all three
 * of one context. */
static cl_int copy_check(cl_command_queue q, cl_mem s, bool s_image, cl_mem d, bool d_image)
{
	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	if (!is(s, GP_KIND_MEM) || !is(d, GP_KIND_MEM) || s->image != s_image ||
	    d->image != d_image)
		return CL_INVALID_MEM_OBJECT;
	if (s->ctx != q->ctx || d->ctx != q->ctx)
		return CL_INVALID_CONTEXT;
	return CL_SUCCESS;
}

static cl_int post_copy(cl_command_queue q, cl_mem s, cl_mem d, size_t so, size_t dof, size_t size,
			cl_uint nw, const cl_event *wl, uint64_t id)
{
	struct gp_icd_call k;
	cl_int err;

	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, q->h.id);
	gp_enc_u64(&k.e, s->h.id);
	gp_enc_u64(&k.e, d->h.id);
	gp_enc_u64(&k.e, so);
	gp_enc_u64(&k.e, dof);
	gp_enc_u64(&k.e, size);
	err = enq_post(&k, q, GP_OP_COPY_BUFFER, nw, wl, id);
	return err;
}

static cl_int CL_API_CALL icd_EnqueueCopyBuffer(cl_command_queue q, cl_mem s, cl_mem d, size_t so,
						size_t dof, size_t size, cl_uint nw,
						const cl_event *wl, cl_event *event)
{
	cl_event ev;
	uint64_t id;
	cl_int err;

	err = copy_check(q, s, false, d, false);
	if (err != CL_SUCCESS)
		return err;
	if (size == 0 || so > s->size || size > s->size - so || dof > d->size || size > d->size - dof)
		return CL_INVALID_VALUE;
	if (s == d && ((so <= dof && dof < so + size) || (dof <= so && so < dof + size)))
		return CL_MEM_COPY_OVERLAP;
	err = enq_begin(q, nw, wl, CL_COMMAND_COPY_BUFFER, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	return done_event(post_copy(q, s, d, so, dof, size, nw, wl, id), ev, event);
}

static cl_int CL_API_CALL icd_EnqueueCopyBufferRect(cl_command_queue q, cl_mem s, cl_mem d,
						    const size_t *so, const size_t *dor,
						    const size_t *reg, size_t srp, size_t ssp,
						    size_t drp, size_t dsp, cl_uint nw,
						    const cl_event *wl, cl_event *event)
{
	cl_event ev;
	uint64_t id;
	cl_int err;

	err = copy_check(q, s, false, d, false);
	if (err != CL_SUCCESS)
		return err;
	err = rect_params(so, dor, reg, &srp, &ssp, &drp, &dsp, s->size);
	if (err == CL_SUCCESS)
		err = rect_params(dor, so, reg, &drp, &dsp, &srp, &ssp, d->size);
	if (err == CL_SUCCESS)
		err = enq_begin(q, nw, wl, CL_COMMAND_COPY_BUFFER_RECT, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	for (size_t z = 0; z < reg[2] && err == CL_SUCCESS; z++) {
		for (size_t y = 0; y < reg[1] && err == CL_SUCCESS; y++) {
			bool first = z == 0 && y == 0, last = z == reg[2] - 1 && y == reg[1] - 1;

			err = post_copy(q, s, d, (so[2] + z) * ssp + (so[1] + y) * srp + so[0],
					(dor[2] + z) * dsp + (dor[1] + y) * drp + dor[0], reg[0],
					first ? nw : 0, first ? wl : NULL, last ? id : 0);
		}
	}
	return done_event(err, ev, event);
}

static cl_int CL_API_CALL icd_EnqueueFillBuffer(cl_command_queue q, cl_mem m, const void *pat,
						size_t psize, size_t off, size_t size, cl_uint nw,
						const cl_event *wl, cl_event *event)
{
	struct gp_icd_call k;
	cl_event ev;
	uint64_t id;
	cl_int err;

	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	if (!is(m, GP_KIND_MEM) || m->image)
		return CL_INVALID_MEM_OBJECT;
	if (m->ctx != q->ctx)
		return CL_INVALID_CONTEXT;
	if (!pat || psize == 0 || psize > 128 || (psize & (psize - 1)) || off % psize ||
	    size % psize || off > m->size || size > m->size - off)
		return CL_INVALID_VALUE;
	err = enq_begin(q, nw, wl, CL_COMMAND_FILL_BUFFER, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, q->h.id);
	gp_enc_u64(&k.e, m->h.id);
	gp_enc_blob(&k.e, pat, psize);
	gp_enc_u64(&k.e, off);
	gp_enc_u64(&k.e, size);
	return done_event(enq_post(&k, q, GP_OP_FILL_BUFFER, nw, wl, id), ev, event);
}

static cl_int post_marker(cl_command_queue q, uint16_t op, cl_uint nw, const cl_event *wl,
			  uint64_t id)
{
	struct gp_icd_call k;
	cl_int err;

	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, q->h.id);
	err = enq_post(&k, q, op, nw, wl, id);
	return err;
}

/* The start of a map after its own checks: the wait list, then the
 * record of the mapping. */
static cl_int map_new(cl_command_queue q, cl_uint nw, const cl_event *wl, struct mapping **mp)
{
	cl_int err = check_waitlist(q->ctx, nw, wl);

	if (err != CL_SUCCESS)
		return err;
	*mp = calloc(1, sizeof(**mp));
	return *mp ? CL_SUCCESS : CL_OUT_OF_HOST_MEMORY;
}

/* A map that succeeded: recorded on the object, its pointer returned. */
static void *map_add(cl_mem m, struct mapping *mp, cl_int *errp)
{
	pthread_mutex_lock(&m->lock);
	mp->next = m->maps;
	m->maps = mp;
	m->nmaps++;
	pthread_mutex_unlock(&m->lock);
	set_err(errp, CL_SUCCESS);
	return mp->ptr;
}

/* Map: the data comes to host memory (the application's own pointer with
 * USE_HOST_PTR), unmap sends back what a writable map may have changed. */
static void *CL_API_CALL icd_EnqueueMapBuffer(cl_command_queue q, cl_mem m, cl_bool blocking,
					      cl_map_flags flags, size_t off, size_t size,
					      cl_uint nw, const cl_event *wl, cl_event *event,
					      cl_int *errp)
{
	struct mapping *mp;
	cl_event ev;
	uint64_t id;
	cl_int err;
	bool defer;
	void *ptr;

	if (!is(q, GP_KIND_QUEUE)) {
		set_err(errp, CL_INVALID_COMMAND_QUEUE);
		return NULL;
	}
	if (!is(m, GP_KIND_MEM) || m->image) {
		set_err(errp, CL_INVALID_MEM_OBJECT);
		return NULL;
	}
	if (m->ctx != q->ctx) {
		set_err(errp, CL_INVALID_CONTEXT);
		return NULL;
	}
	if (size == 0 || off > m->size || size > m->size - off ||
	    (flags & ~(cl_map_flags)(CL_MAP_READ | CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION)) ||
	    ((flags & CL_MAP_WRITE_INVALIDATE_REGION) && (flags & (CL_MAP_READ | CL_MAP_WRITE)))) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	err = map_access(m, flags);
	if (err == CL_SUCCESS)
		err = map_new(q, nw, wl, &mp);
	if (err != CL_SUCCESS) {
		set_err(errp, err);
		return NULL;
	}
	if (m->shared) {
		/* Zero copy: the application works on the buffer's memory. */
		ptr = m->shared + off;
	} else if (m->host_ptr) {
		ptr = (char *)m->host_ptr + off;
	} else {
		if (posix_memalign(&ptr, 4096, size) != 0) {
			free(mp);
			set_err(errp, CL_MAP_FAILURE);
			return NULL;
		}
		mp->owned = true;
	}
	/* A non-blocking map must not wait either (see pend_start): on the
	 * buffer's own memory it is done when the queue gets there; else its
	 * data comes as a deferred read's. */
	defer = pend_wanted(q, nw, blocking);
	if (defer && !m->shared && !(flags & CL_MAP_WRITE_INVALIDATE_REGION)) {
		cl_mem t = icd_CreateBuffer(q->ctx, CL_MEM_READ_WRITE, size, NULL, &err);
		cl_event cev = NULL;

		if (t)
			err = icd_EnqueueCopyBuffer(q, m, t, off, 0, size, nw, wl, &cev);
		if (err == CL_SUCCESS)
			err = pend_start(q, t, cev, CL_COMMAND_MAP_BUFFER, ptr, size, 1, 1, size, size,
					 event);
		else if (t)
			icd_ReleaseMemObject(t);
	} else {
		err = with_event(q, CL_COMMAND_MAP_BUFFER, event, &ev, &id);
		if (err == CL_SUCCESS && m->shared && defer) {
			err = id ? post_marker(q, GP_OP_MARKER, nw, wl, id) : CL_SUCCESS;
		} else if (err == CL_SUCCESS && m->shared) {
			err = settle(q, nw, wl);
			if (err == CL_SUCCESS && id)
				err = post_marker(q, GP_OP_MARKER, 0, NULL, id);
		} else if (err == CL_SUCCESS) {
			if (flags & CL_MAP_WRITE_INVALIDATE_REGION)
				err = post_marker(q, GP_OP_MARKER, nw, wl, id);
			else
				err = read_data(q, m, off, size, ptr, nw, wl, id);
		}
		err = done_event(err, ev, event);
	}
	if (err != CL_SUCCESS) {
		if (mp->owned)
			free(ptr);
		free(mp);
		set_err(errp, err == CL_OUT_OF_RESOURCES ? err : CL_MAP_FAILURE);
		return NULL;
	}
	mp->ptr = ptr;
	mp->off = off;
	mp->size = size;
	mp->flags = flags;
	return map_add(m, mp, errp);
}

static cl_int CL_API_CALL icd_EnqueueUnmapMemObject(cl_command_queue q, cl_mem m, void *ptr,
						    cl_uint nw, const cl_event *wl,
						    cl_event *event)
{
	struct mapping **pp, *mp = NULL;
	cl_event ev;
	uint64_t id;
	cl_int err;

	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	if (!is(m, GP_KIND_MEM))
		return CL_INVALID_MEM_OBJECT;
	if (m->ctx != q->ctx)
		return CL_INVALID_CONTEXT;
	err = check_waitlist(q->ctx, nw, wl);
	if (err != CL_SUCCESS)
		return err;
	pthread_mutex_lock(&m->lock);
	for (pp = &m->maps; *pp; pp = &(*pp)->next) {
		if ((*pp)->ptr == ptr) {
			mp = *pp;
			*pp = mp->next;
			m->nmaps--;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (!mp)
		return CL_INVALID_VALUE;
	err = with_event(q, CL_COMMAND_UNMAP_MEM_OBJECT, event, &ev, &id);
	if (err == CL_SUCCESS) {
		/* Shared memory: the writes are already in the buffer. */
		if (mp->image && (mp->flags & (CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION)))
			err = image_xfer(true, q, m, mp->org, mp->reg, mp->rp, mp->sp, mp->ptr, nw, wl,
					 id, false);
		else if (!m->shared && (mp->flags & (CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION)))
			err = write_data(q, m, mp->off, mp->size, mp->ptr, nw, wl, id, false);
		else
			err = post_marker(q, GP_OP_MARKER, nw, wl, id);
		err = done_event(err, ev, event);
	}
	if (mp->owned)
		free(mp->ptr);
	free(mp);
	return err;
}

static cl_int CL_API_CALL icd_EnqueueMigrateMemObjects(cl_command_queue q, cl_uint n,
						       const cl_mem *mems, cl_mem_migration_flags f,
						       cl_uint nw, const cl_event *wl,
						       cl_event *event)
{
	cl_event ev;
	uint64_t id;
	cl_int err;

	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	if (n == 0 || !mems ||
	    (f & ~(cl_mem_migration_flags)(CL_MIGRATE_MEM_OBJECT_HOST |
					   CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED)))
		return CL_INVALID_VALUE;
	for (cl_uint i = 0; i < n; i++) {
		if (!is(mems[i], GP_KIND_MEM))
			return CL_INVALID_MEM_OBJECT;
		if (mems[i]->ctx != q->ctx)
			return CL_INVALID_CONTEXT;
	}
	err = enq_begin(q, nw, wl, CL_COMMAND_MIGRATE_MEM_OBJECTS, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	/* Data lives on the host device already: a migration is an ordering
	 * point only. */
	return done_event(post_marker(q, GP_OP_MARKER, nw, wl, id), ev, event);
}

/* ---- samplers ---- */

static cl_sampler sampler_make(cl_context ctx, cl_bool norm, cl_addressing_mode addr,
			       cl_filter_mode filt, const cl_sampler_properties *props,
			       cl_int *errp)
{
	struct gp_icd_call k;
	cl_sampler s;
	cl_int err;

	if (!is(ctx, GP_KIND_CONTEXT)) {
		set_err(errp, CL_INVALID_CONTEXT);
		return NULL;
	}
	if ((norm != CL_TRUE && norm != CL_FALSE) || addr < CL_ADDRESS_NONE ||
	    addr > CL_ADDRESS_MIRRORED_REPEAT ||
	    (filt != CL_FILTER_NEAREST && filt != CL_FILTER_LINEAR)) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	s = obj_new(sizeof(*s), GP_KIND_SAMPLER);
	if (!s) {
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	s->ctx = ctx;
	s->norm = norm;
	s->addr = addr;
	s->filter = filt;
	if (props) {
		while (s->nprops < 6 && props[s->nprops])
			s->nprops += 2;
		memcpy(s->props, props, s->nprops * sizeof(*props));
		s->props[s->nprops++] = 0;
	}
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, s->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	gp_enc_u32(&k.e, norm);
	gp_enc_u32(&k.e, addr);
	gp_enc_u32(&k.e, filt);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_SAMPLER, DEAD);
	gp_icd_call_end(&k);
	if (err != CL_SUCCESS) {
		free(s);
		set_err(errp, err);
		return NULL;
	}
	retain(ctx);
	set_err(errp, CL_SUCCESS);
	return s;
}

static cl_sampler CL_API_CALL icd_CreateSampler(cl_context ctx, cl_bool norm, cl_addressing_mode a,
						cl_filter_mode f, cl_int *err)
{
	return sampler_make(ctx, norm, a, f, NULL, err);
}

/* OpenCL 3.0, 5.7.1: each property at most once, defaults for the rest. */
static cl_sampler CL_API_CALL icd_CreateSamplerWithProperties(cl_context ctx,
							      const cl_sampler_properties *p,
							      cl_int *err)
{
	cl_bool norm = CL_TRUE;
	cl_addressing_mode addr = CL_ADDRESS_CLAMP;
	cl_filter_mode filt = CL_FILTER_NEAREST;
	unsigned seen = 0;

	for (size_t i = 0; p && p[i]; i += 2) {
		unsigned bit;

		switch (p[i]) {
		case CL_SAMPLER_NORMALIZED_COORDS: bit = 1; norm = (cl_bool)p[i + 1]; break;
		case CL_SAMPLER_ADDRESSING_MODE: bit = 2; addr = (cl_addressing_mode)p[i + 1]; break;
		case CL_SAMPLER_FILTER_MODE: bit = 4; filt = (cl_filter_mode)p[i + 1]; break;
		default:
			set_err(err, CL_INVALID_VALUE);
			return NULL;
		}
		if (seen & bit) {
			set_err(err, CL_INVALID_VALUE);
			return NULL;
		}
		seen |= bit;
	}
	return sampler_make(ctx, norm, addr, filt, p, err);
}

static cl_int CL_API_CALL icd_RetainSampler(cl_sampler s)
{
	return obj_retain(s, GP_KIND_SAMPLER);
}

static void sampler_free(void *o)
{
	cl_sampler s = o;

	obj_drop(s);
	icd_ReleaseContext(s->ctx);
	free(s);
}

static cl_int CL_API_CALL icd_ReleaseSampler(cl_sampler s)
{
	return obj_release(s, GP_KIND_SAMPLER);
}

static cl_int CL_API_CALL icd_GetSamplerInfo(cl_sampler s, cl_sampler_info p, size_t size,
					     void *val, size_t *ret)
{
	if (!is(s, GP_KIND_SAMPLER))
		return CL_INVALID_SAMPLER;
	switch (p) {
	case CL_SAMPLER_REFERENCE_COUNT:
		PUT(cl_uint, __atomic_load_n(&s->h.refs, __ATOMIC_RELAXED));
	case CL_SAMPLER_CONTEXT:
		PUT(cl_context, s->ctx);
	case CL_SAMPLER_NORMALIZED_COORDS:
		PUT(cl_bool, s->norm);
	case CL_SAMPLER_ADDRESSING_MODE:
		PUT(cl_addressing_mode, s->addr);
	case CL_SAMPLER_FILTER_MODE:
		PUT(cl_filter_mode, s->filter);
	case CL_SAMPLER_PROPERTIES:
		return put_info(s->props, s->nprops * sizeof(s->props[0]), size, val, ret);
	default:
		return remote_info(GP_INFO_SAMPLER, s->h.id, 0, p, size, val, ret);
	}
}

/* ---- programs ---- */

static cl_program program_new(cl_context ctx)
{
	cl_program p = obj_new(sizeof(*p), GP_KIND_PROGRAM);

	if (!p)
		return NULL;
	p->ctx = ctx;
	p->ndev = ctx->ndev;
	p->devs = calloc(ctx->ndev, sizeof(*p->devs));
	if (!p->devs) {
		free(p);
		return NULL;
	}
	memcpy(p->devs, ctx->devs, ctx->ndev * sizeof(*p->devs));
	return p;
}

static cl_int check_devices(cl_context ctx, cl_uint n, const cl_device_id *devs)
{
	if ((n == 0) != (devs == NULL))
		return CL_INVALID_VALUE;
	for (cl_uint i = 0; i < n; i++) {
		bool found = false;

		for (cl_uint j = 0; j < ctx->ndev; j++)
			found |= ctx->devs[j] == devs[i];
		if (!found)
			return CL_INVALID_DEVICE;
	}
	return CL_SUCCESS;
}

static void program_drop(cl_program p)
{
	free(p->devs);
	free(p);
}

/* The end of a clCreateProgram* / clLinkProgram: the new program holds
 * its context, or is dropped when the server refused it. */
static cl_program program_done(cl_program p, cl_int err, cl_int *errp)
{
	set_err(errp, err);
	if (err != CL_SUCCESS) {
		program_drop(p);
		return NULL;
	}
	retain(p->ctx);
	return p;
}

/* Sources and binaries larger than one message: the data goes first, in
 * STAGE slices, then @k (its data fields encoded as u64 lengths) as @op
 * with F_STAGED; the connection is held from the first slice to the
 * reply, so no other thread's message comes in between (gp_icd_call_end
 * lets it go). Up to GP_PROTO_MAX_STAGE bytes in all. */
static cl_int call_staged(struct gp_icd_call *k, uint16_t op, cl_uint n, const void *const *ptrs,
			  const size_t *lens, uint64_t total)
{
	uint64_t off = 0;

	gp_dec_init(&k->d, NULL, 0);
	if (k->e.err)
		return CL_OUT_OF_HOST_MEMORY;
	gp_icd_conn_lock(G.conn);
	k->locked = true;
	for (cl_uint i = 0; i < n; i++) {
		for (size_t done = 0; done < lens[i];) {
			struct gp_icd_call sl;
			size_t chunk = lens[i] - done < SLICE ? lens[i] - done : SLICE;
			int r;

			gp_icd_call_begin_heap(G.conn, &sl);
			gp_enc_u64(&sl.e, off);
			gp_enc_u64(&sl.e, total);
			gp_enc_blob(&sl.e, (const uint8_t *)ptrs[i] + done, chunk);
			r = gp_icd_send_locked(&sl, GP_OP_STAGE, false);
			gp_icd_call_end(&sl);
			if (r < 0)
				return DEAD;
			off += chunk;
			done += chunk;
		}
	}
	k->flags = GP_PROTO_F_STAGED;
	if (gp_icd_send_locked(k, op, true) < 0)
		return DEAD;
	return gp_icd_collect_locked(k, DEAD);
}

static cl_program CL_API_CALL icd_CreateProgramWithSource(cl_context ctx, cl_uint n,
							  const char **strs, const size_t *lens,
							  cl_int *errp)
{
	struct gp_icd_call k;
	size_t total = 0;
	cl_program p;
	cl_int err;
	char *src, *w;

	if (!is(ctx, GP_KIND_CONTEXT)) {
		set_err(errp, CL_INVALID_CONTEXT);
		return NULL;
	}
	if (n == 0 || !strs) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	for (cl_uint i = 0; i < n; i++) {
		if (!strs[i]) {
			set_err(errp, CL_INVALID_VALUE);
			return NULL;
		}
		total += (lens && lens[i]) ? lens[i] : strlen(strs[i]);
	}
	if (total > GP_PROTO_MAX_STAGE) {
		set_err(errp, CL_OUT_OF_RESOURCES); /* more than the server stages */
		return NULL;
	}
	src = malloc(total + 1);
	p = program_new(ctx);
	if (!src || !p) {
		free(src);
		if (p)
			program_drop(p);
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	w = src;
	for (cl_uint i = 0; i < n; i++) {
		size_t l = (lens && lens[i]) ? lens[i] : strlen(strs[i]);

		memcpy(w, strs[i], l);
		w += l;
	}
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, p->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	if (total <= GP_PROTO_MAX_PAYLOAD - 256) {
		gp_enc_blob(&k.e, src, total);
		err = gp_icd_call_sync(&k, GP_OP_CREATE_PROGRAM_SOURCE, DEAD);
	} else {
		const void *one = src;

		gp_enc_u64(&k.e, total);
		err = call_staged(&k, GP_OP_CREATE_PROGRAM_SOURCE, 1, &one, &total, total);
	}
	gp_icd_call_end(&k);
	free(src);
	return program_done(p, err, errp);
}

static cl_program CL_API_CALL icd_CreateProgramWithBinary(cl_context ctx, cl_uint n,
							  const cl_device_id *devs,
							  const size_t *lens,
							  const unsigned char **bins,
							  cl_int *status, cl_int *errp)
{
	struct gp_icd_call k;
	cl_program p;
	cl_int err;
	uint64_t total = 0;
	bool staged;

	if (!is(ctx, GP_KIND_CONTEXT)) {
		set_err(errp, CL_INVALID_CONTEXT);
		return NULL;
	}
	if (n == 0 || !devs || !lens || !bins) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	for (cl_uint i = 0; i < n; i++) {
		bool found = false;

		for (cl_uint j = 0; j < ctx->ndev; j++)
			found |= ctx->devs[j] == devs[i];
		if (!found) {
			set_err(errp, CL_INVALID_DEVICE);
			return NULL;
		}
		if (!bins[i] || lens[i] == 0) {
			if (status)
				status[i] = CL_INVALID_VALUE;
			set_err(errp, CL_INVALID_VALUE);
			return NULL;
		}
	}
	p = program_new(ctx);
	if (!p) {
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	p->ndev = n;
	memcpy(p->devs, devs, n * sizeof(*devs));
	for (cl_uint i = 0; i < n; i++)
		total += lens[i];
	if (total > GP_PROTO_MAX_STAGE) {
		program_drop(p);
		set_err(errp, CL_OUT_OF_RESOURCES); /* more than the server stages */
		return NULL;
	}
	staged = total + 16u * n > GP_PROTO_MAX_PAYLOAD - 256;
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, p->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	gp_enc_u32(&k.e, n);
	for (cl_uint i = 0; i < n; i++) {
		gp_enc_u64(&k.e, devs[i]->h.id);
		if (staged)
			gp_enc_u64(&k.e, lens[i]);
		else
			gp_enc_blob(&k.e, bins[i], lens[i]);
	}
	err = staged ? call_staged(&k, GP_OP_CREATE_PROGRAM_BINARY, n, (const void *const *)bins, lens,
				   total)
		     : gp_icd_call_sync(&k, GP_OP_CREATE_PROGRAM_BINARY, DEAD);
	if (!k.d.err && k.d.len) {
		uint32_t m = gp_dec_count(&k.d, 4, n);

		for (uint32_t i = 0; i < m && status; i++)
			status[i] = gp_dec_i32(&k.d);
	}
	gp_icd_call_end(&k);
	return program_done(p, err, errp);
}

static cl_program CL_API_CALL icd_CreateProgramWithBuiltInKernels(cl_context ctx, cl_uint n,
								  const cl_device_id *d,
								  const char *names, cl_int *errp)
{
	struct gp_icd_call k;
	cl_program p;
	cl_int err;

	if (!is(ctx, GP_KIND_CONTEXT)) {
		set_err(errp, CL_INVALID_CONTEXT);
		return NULL;
	}
	/* The host answers CL_INVALID_VALUE for a name no device lists
	 * (OpenCL 3.0, 5.8.1); the checks here are the ones it cannot see. */
	if (n == 0 || !d || !names || !names[0]) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	err = check_devices(ctx, n, d);
	p = err == CL_SUCCESS ? program_new(ctx) : NULL;
	if (err == CL_SUCCESS && !p)
		err = CL_OUT_OF_HOST_MEMORY;
	if (err != CL_SUCCESS) {
		set_err(errp, err);
		return NULL;
	}
	p->ndev = n;
	memcpy(p->devs, d, n * sizeof(*d));
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, p->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	enc_devices(&k.e, n, d);
	gp_enc_str(&k.e, names);
	err = k.e.err ? CL_INVALID_VALUE : gp_icd_call_sync(&k, GP_OP_CREATE_PROGRAM_BUILTIN, DEAD);
	gp_icd_call_end(&k);
	p->opt = PROG_BUILTIN | PROG_ARG_INFO | PROG_NONUNIFORM;
	return program_done(p, err, errp);
}

static cl_program CL_API_CALL icd_CreateProgramWithIL(cl_context ctx, const void *il, size_t len,
						      cl_int *err)
{
	/* No device reports an IL (CL_DEVICE_IL_VERSION is empty). */
	set_err(err, is(ctx, GP_KIND_CONTEXT) ? CL_INVALID_OPERATION : CL_INVALID_CONTEXT);
	return NULL;
}

static cl_int CL_API_CALL icd_RetainProgram(cl_program p)
{
	return obj_retain(p, GP_KIND_PROGRAM);
}

static void program_free(void *o)
{
	cl_program p = o;

	obj_drop(p);
	icd_ReleaseContext(p->ctx);
	program_drop(p);
}

static cl_int CL_API_CALL icd_ReleaseProgram(cl_program p)
{
	return obj_release(p, GP_KIND_PROGRAM);
}

/* The PROG_* bits build options give a program's kernels. */
static uint32_t opt_bits(const char *opts)
{
	uint32_t b = 0;

	if (!opts)
		return 0;
	if (strstr(opts, "-cl-kernel-arg-info"))
		b |= PROG_ARG_INFO;
	if ((strstr(opts, "-cl-std=CL2.") || strstr(opts, "-cl-std=CL3.")) &&
	    !strstr(opts, "-cl-uniform-work-group-size"))
		b |= PROG_NONUNIFORM;
	return b;
}

static cl_int CL_API_CALL icd_BuildProgram(cl_program p, cl_uint n, const cl_device_id *devs,
					   const char *opts,
					   void (CL_CALLBACK *notify)(cl_program, void *), void *ud)
{
	struct gp_icd_call k;
	cl_int err;

	if (!is(p, GP_KIND_PROGRAM))
		return CL_INVALID_PROGRAM;
	if ((n == 0) != (devs == NULL) || (!notify && ud))
		return CL_INVALID_VALUE;
	for (cl_uint i = 0; i < n; i++)
		if (!is(devs[i], GP_KIND_DEVICE))
			return CL_INVALID_DEVICE;
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, p->h.id);
	enc_devices(&k.e, n, devs);
	gp_enc_str(&k.e, opts);
	err = gp_icd_call_sync(&k, GP_OP_BUILD_PROGRAM, DEAD);
	gp_icd_call_end(&k);
	if (!(__atomic_load_n(&p->opt, __ATOMIC_RELAXED) & PROG_BUILTIN))
		__atomic_store_n(&p->opt, opt_bits(opts), __ATOMIC_RELAXED);
	/* The build is done when the server answers: the callback may run now. */
	if (notify && (err == CL_SUCCESS || err == CL_BUILD_PROGRAM_FAILURE))
		notify(p, ud);
	return err;
}

static cl_int CL_API_CALL icd_CompileProgram(cl_program p, cl_uint n, const cl_device_id *d,
					     const char *opts, cl_uint nh, const cl_program *h,
					     const char **names,
					     void (CL_CALLBACK *notify)(cl_program, void *), void *ud)
{
	struct gp_icd_call k;
	cl_int err;

	if (!is(p, GP_KIND_PROGRAM))
		return CL_INVALID_PROGRAM;
	if ((nh == 0) != (h == NULL) || (nh == 0) != (names == NULL) || (!notify && ud))
		return CL_INVALID_VALUE;
	err = check_devices(p->ctx, n, d);
	if (err != CL_SUCCESS)
		return err;
	for (cl_uint i = 0; i < nh; i++) {
		if (!is(h[i], GP_KIND_PROGRAM))
			return CL_INVALID_PROGRAM;
		if (!names[i])
			return CL_INVALID_VALUE;
	}
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, p->h.id);
	enc_devices(&k.e, n, d);
	gp_enc_str(&k.e, opts);
	gp_enc_u32(&k.e, nh);
	for (cl_uint i = 0; i < nh; i++) {
		gp_enc_u64(&k.e, h[i]->h.id);
		gp_enc_str(&k.e, names[i]);
	}
	err = k.e.err ? CL_OUT_OF_RESOURCES : gp_icd_call_sync(&k, GP_OP_COMPILE_PROGRAM, DEAD);
	gp_icd_call_end(&k);
	__atomic_store_n(&p->opt, opt_bits(opts), __ATOMIC_RELAXED);
	/* Done when the server answers: the callback may run now. */
	if (notify && (err == CL_SUCCESS || err == CL_COMPILE_PROGRAM_FAILURE))
		notify(p, ud);
	return err;
}

static cl_program CL_API_CALL icd_LinkProgram(cl_context ctx, cl_uint n, const cl_device_id *d,
					      const char *opts, cl_uint np, const cl_program *ps,
					      void (CL_CALLBACK *notify)(cl_program, void *), void *ud,
					      cl_int *errp)
{
	struct gp_icd_call k;
	cl_program p;
	uint32_t made = 0;
	cl_int err;

	if (!is(ctx, GP_KIND_CONTEXT)) {
		set_err(errp, CL_INVALID_CONTEXT);
		return NULL;
	}
	if (np == 0 || !ps || (!notify && ud)) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	err = check_devices(ctx, n, d);
	for (cl_uint i = 0; err == CL_SUCCESS && i < np; i++)
		if (!is(ps[i], GP_KIND_PROGRAM) || ps[i]->ctx != ctx)
			err = CL_INVALID_PROGRAM;
	p = err == CL_SUCCESS ? program_new(ctx) : NULL;
	if (err == CL_SUCCESS && !p)
		err = CL_OUT_OF_HOST_MEMORY;
	if (err != CL_SUCCESS) {
		set_err(errp, err);
		return NULL;
	}
	if (n) {
		p->ndev = n;
		memcpy(p->devs, d, n * sizeof(*d));
	}
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, p->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	enc_devices(&k.e, n, d);
	gp_enc_str(&k.e, opts);
	gp_enc_u32(&k.e, np);
	for (cl_uint i = 0; i < np; i++)
		gp_enc_u64(&k.e, ps[i]->h.id);
	err = k.e.err ? CL_OUT_OF_RESOURCES : gp_icd_call_sync(&k, GP_OP_LINK_PROGRAM, DEAD);
	if (!k.d.err && k.d.len)
		made = gp_dec_u32(&k.d);
	gp_icd_call_end(&k);
	if (!made) {
		program_drop(p);
		set_err(errp, err == CL_SUCCESS ? CL_OUT_OF_RESOURCES : err);
		return NULL;
	}
	/* A failed link still yields a program whose log tells why
	 * (OpenCL 3.0, 5.8.5). Argument info if any part compiled with it;
	 * non-uniform work-groups if every part allows them. */
	p->opt = PROG_NONUNIFORM;
	for (cl_uint i = 0; i < np; i++) {
		uint32_t o = __atomic_load_n(&ps[i]->opt, __ATOMIC_RELAXED);

		p->opt = (p->opt | (o & PROG_ARG_INFO)) & (o | PROG_ARG_INFO);
	}
	if (opts && strstr(opts, "-cl-uniform-work-group-size"))
		p->opt &= ~(uint32_t)PROG_NONUNIFORM;
	retain(ctx);
	if (notify)
		notify(p, ud);
	set_err(errp, err);
	return p;
}

static cl_int CL_API_CALL icd_UnloadCompiler(void)
{
	return CL_SUCCESS;
}

static cl_int CL_API_CALL icd_UnloadPlatformCompiler(cl_platform_id p)
{
	return p == &G.platform ? CL_SUCCESS : CL_INVALID_PLATFORM;
}

static cl_int CL_API_CALL icd_GetProgramInfo(cl_program p, cl_program_info param, size_t size,
					     void *val, size_t *ret)
{
	if (!is(p, GP_KIND_PROGRAM))
		return CL_INVALID_PROGRAM;
	switch (param) {
	case CL_PROGRAM_REFERENCE_COUNT:
		PUT(cl_uint, __atomic_load_n(&p->h.refs, __ATOMIC_RELAXED));
	case CL_PROGRAM_CONTEXT:
		PUT(cl_context, p->ctx);
	case CL_PROGRAM_NUM_DEVICES:
		PUT(cl_uint, p->ndev);
	case CL_PROGRAM_DEVICES:
		return put_info(p->devs, p->ndev * sizeof(cl_device_id), size, val, ret);
	case CL_PROGRAM_BINARIES: {
		unsigned char **bins = val;
		size_t sizes[64];
		cl_int err;

		if (ret)
			*ret = p->ndev * sizeof(unsigned char *);
		if (!val)
			return CL_SUCCESS;
		if (size < p->ndev * sizeof(unsigned char *) || p->ndev > 64)
			return CL_INVALID_VALUE;
		err = remote_info(GP_INFO_PROGRAM, p->h.id, 0, CL_PROGRAM_BINARY_SIZES,
				  sizeof(sizes), sizes, NULL);
		for (cl_uint i = 0; err == CL_SUCCESS && i < p->ndev; i++)
			if (bins[i] && sizes[i])
				err = remote_info(GP_INFO_PROGRAM_BINARY, p->h.id, i, 0, sizes[i],
						  bins[i], NULL);
		return err;
	}
	case CL_PROGRAM_SCOPE_GLOBAL_CTORS_PRESENT:
	case CL_PROGRAM_SCOPE_GLOBAL_DTORS_PRESENT:
		PUT(cl_bool, CL_FALSE);
	case CL_PROGRAM_IL:
		return put_info(NULL, 0, size, val, ret);
	default:
		return remote_info(GP_INFO_PROGRAM, p->h.id, 0, param, size, val, ret);
	}
}

static cl_int CL_API_CALL icd_GetProgramBuildInfo(cl_program p, cl_device_id d,
						  cl_program_build_info param, size_t size,
						  void *val, size_t *ret)
{
	if (!is(p, GP_KIND_PROGRAM))
		return CL_INVALID_PROGRAM;
	if (!is(d, GP_KIND_DEVICE))
		return CL_INVALID_DEVICE;
	return remote_info(GP_INFO_PROGRAM_BUILD, p->h.id, d->h.id, param, size, val, ret);
}

static cl_int CL_API_CALL icd_SetProgramReleaseCallback(cl_program p,
							void (CL_CALLBACK *fn)(cl_program, void *),
							void *d)
{
	/* Deprecated in 3.0; no global destructors are supported. */
	return is(p, GP_KIND_PROGRAM) ? CL_INVALID_OPERATION : CL_INVALID_PROGRAM;
}

static cl_int CL_API_CALL icd_SetProgramSpecializationConstant(cl_program p, cl_uint id,
							       size_t size, const void *v)
{
	/* Only IL programs have specialization constants. */
	return is(p, GP_KIND_PROGRAM) ? CL_INVALID_PROGRAM : CL_INVALID_PROGRAM;
}

/* ---- kernels ---- */

static cl_kernel CL_API_CALL icd_CreateKernel(cl_program p, const char *name, cl_int *errp)
{
	struct gp_icd_call k;
	cl_kernel kn;
	cl_int err;

	if (!is(p, GP_KIND_PROGRAM)) {
		set_err(errp, CL_INVALID_PROGRAM);
		return NULL;
	}
	if (!name) {
		set_err(errp, CL_INVALID_VALUE);
		return NULL;
	}
	kn = obj_new(sizeof(*kn), GP_KIND_KERNEL);
	if (!kn) {
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, kn->h.id);
	gp_enc_u64(&k.e, p->h.id);
	gp_enc_str(&k.e, name);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_KERNEL, DEAD);
	kn->nargs = gp_dec_u32(&k.d);
	gp_icd_call_end(&k);
	if (err != CL_SUCCESS) {
		free(kn);
		set_err(errp, err);
		return NULL;
	}
	kn->prog = p;
	retain(p);
	/* Which arguments are memory objects, local memory or samplers
	 * decides how clSetKernelArg values travel, and what a by-value
	 * argument's size must be: ask once, here. */
	kn->args = calloc(kn->nargs ? kn->nargs : 1, sizeof(*kn->args));
	for (cl_uint i = 0; kn->args && i < kn->nargs; i++) {
		struct karg *a = &kn->args[i];
		char type[64] = "";

		if (remote_info(GP_INFO_KERNEL_ARG, kn->h.id, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER,
				sizeof(a->qual), &a->qual, NULL) != CL_SUCCESS)
			a->qual = 0; /* unknown: values are passed as bytes */
		if (a->qual == CL_KERNEL_ARG_ADDRESS_PRIVATE &&
		    remote_info(GP_INFO_KERNEL_ARG, kn->h.id, i, CL_KERNEL_ARG_TYPE_NAME,
				sizeof(type) - 1, type, NULL) == CL_SUCCESS) {
			a->sampler = strcmp(type, "sampler_t") == 0;
			/* size_t & co: unknown here (the device's
			 * address bits), so checked by the server */
			a->size = a->sampler ? sizeof(cl_sampler) : gp_cl_type_size(type, 0);
		}
	}
	set_err(errp, CL_SUCCESS);
	return kn;
}

static cl_int CL_API_CALL icd_CreateKernelsInProgram(cl_program p, cl_uint num, cl_kernel *ks,
						     cl_uint *nout)
{
	char *names, *tok, *save = NULL;
	size_t len = 0;
	cl_uint n = 0;
	cl_int err;

	if (!is(p, GP_KIND_PROGRAM))
		return CL_INVALID_PROGRAM;
	err = remote_info(GP_INFO_PROGRAM, p->h.id, 0, CL_PROGRAM_KERNEL_NAMES, 0, NULL, &len);
	if (err != CL_SUCCESS)
		return err;
	names = calloc(1, len + 1);
	if (!names)
		return CL_OUT_OF_HOST_MEMORY;
	err = remote_info(GP_INFO_PROGRAM, p->h.id, 0, CL_PROGRAM_KERNEL_NAMES, len, names, NULL);
	for (tok = strtok_r(names, ";", &save); err == CL_SUCCESS && tok;
	     tok = strtok_r(NULL, ";", &save))
		n++;
	if (err == CL_SUCCESS && ks && num < n)
		err = CL_INVALID_VALUE;
	if (err == CL_SUCCESS && ks) {
		cl_uint i = 0;

		err = remote_info(GP_INFO_PROGRAM, p->h.id, 0, CL_PROGRAM_KERNEL_NAMES, len, names, NULL);
		save = NULL;
		for (tok = strtok_r(names, ";", &save); err == CL_SUCCESS && tok;
		     tok = strtok_r(NULL, ";", &save)) {
			ks[i] = icd_CreateKernel(p, tok, &err);
			if (err == CL_SUCCESS)
				i++;
		}
		if (err != CL_SUCCESS) {
			while (i-- > 0)
				icd_ReleaseKernel(ks[i]);
		}
	}
	free(names);
	if (err == CL_SUCCESS && nout)
		*nout = n;
	return err;
}

static cl_int CL_API_CALL icd_RetainKernel(cl_kernel k)
{
	return obj_retain(k, GP_KIND_KERNEL);
}

static void kernel_free(void *o)
{
	cl_kernel k = o;

	obj_drop(k);
	icd_ReleaseProgram(k->prog);
	free(k->args);
	free(k);
}

static cl_int CL_API_CALL icd_ReleaseKernel(cl_kernel k)
{
	return obj_release(k, GP_KIND_KERNEL);
}

/* clSetKernelArg is posted (its errors would come back late), so every
 * error the specification names for it is found here from the argument
 * info; only a by-value argument of a type we cannot size (a structure)
 * is set synchronously, and the server's answer returned. */
static cl_int CL_API_CALL icd_SetKernelArg(cl_kernel kn, cl_uint idx, size_t size, const void *v)
{
	struct gp_icd_call k;
	const struct karg *a;
	cl_int err;
	bool sync = false;

	if (!is(kn, GP_KIND_KERNEL))
		return CL_INVALID_KERNEL;
	if (idx >= kn->nargs)
		return CL_INVALID_ARG_INDEX;
	a = kn->args ? &kn->args[idx] : &(struct karg){ 0 };
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, kn->h.id);
	gp_enc_u32(&k.e, idx);
	if (a->qual == CL_KERNEL_ARG_ADDRESS_GLOBAL || a->qual == CL_KERNEL_ARG_ADDRESS_CONSTANT) {
		cl_mem m = v ? *(const cl_mem *)v : NULL;

		if (size != sizeof(cl_mem))
			err = CL_INVALID_ARG_SIZE;
		else if (m && !is(m, GP_KIND_MEM))
			err = CL_INVALID_MEM_OBJECT;
		else
			err = CL_SUCCESS;
		gp_enc_u32(&k.e, 1);
		gp_enc_u64(&k.e, m && err == CL_SUCCESS ? m->h.id : 0);
		gp_enc_blob(&k.e, NULL, 0);
	} else if (a->sampler) {
		cl_sampler smp = v && size == sizeof(cl_sampler) ? *(const cl_sampler *)v : NULL;

		if (size != sizeof(cl_sampler))
			err = CL_INVALID_ARG_SIZE;
		else if (!v || !is(smp, GP_KIND_SAMPLER))
			err = CL_INVALID_SAMPLER;
		else
			err = CL_SUCCESS;
		gp_enc_u32(&k.e, 3);
		gp_enc_u64(&k.e, err == CL_SUCCESS ? smp->h.id : 0);
		gp_enc_blob(&k.e, NULL, 0);
	} else if (a->qual == CL_KERNEL_ARG_ADDRESS_LOCAL) {
		err = v ? CL_INVALID_ARG_VALUE : size == 0 ? CL_INVALID_ARG_SIZE : CL_SUCCESS;
		gp_enc_u32(&k.e, 2);
		gp_enc_u64(&k.e, size);
		gp_enc_blob(&k.e, NULL, 0);
	} else {
		if (!v && a->qual == CL_KERNEL_ARG_ADDRESS_PRIVATE)
			err = CL_INVALID_ARG_VALUE;
		else if (size > GP_PROTO_MAX_STR || (a->size && size != a->size))
			err = CL_INVALID_ARG_SIZE;
		else
			err = CL_SUCCESS;
		sync = !a->size;
		gp_enc_u32(&k.e, 0);
		gp_enc_u64(&k.e, 0);
		gp_enc_blob(&k.e, v, v && err == CL_SUCCESS ? size : 0);
	}
	if (err == CL_SUCCESS)
		err = sync ? gp_icd_call_sync(&k, GP_OP_SET_KERNEL_ARG, DEAD)
			   : gp_icd_call_post(&k, GP_OP_SET_KERNEL_ARG, DEAD);
	gp_icd_call_end(&k);
	if (err == CL_SUCCESS && kn->args)
		kn->args[idx].set = true;
	return err;
}

static cl_int CL_API_CALL icd_GetKernelInfo(cl_kernel k, cl_kernel_info param, size_t size,
					    void *val, size_t *ret)
{
	if (!is(k, GP_KIND_KERNEL))
		return CL_INVALID_KERNEL;
	switch (param) {
	case CL_KERNEL_REFERENCE_COUNT:
		PUT(cl_uint, __atomic_load_n(&k->h.refs, __ATOMIC_RELAXED));
	case CL_KERNEL_CONTEXT:
		PUT(cl_context, k->prog->ctx);
	case CL_KERNEL_PROGRAM:
		PUT(cl_program, k->prog);
	case CL_KERNEL_NUM_ARGS:
		PUT(cl_uint, k->nargs);
	default:
		return remote_info(GP_INFO_KERNEL, k->h.id, 0, param, size, val, ret);
	}
}

static cl_int CL_API_CALL icd_GetKernelWorkGroupInfo(cl_kernel k, cl_device_id d,
						     cl_kernel_work_group_info param, size_t size,
						     void *val, size_t *ret)
{
	if (!is(k, GP_KIND_KERNEL))
		return CL_INVALID_KERNEL;
	if (!d) {
		if (k->prog->ndev != 1)
			return CL_INVALID_DEVICE;
		d = k->prog->devs[0];
	}
	if (!is(d, GP_KIND_DEVICE))
		return CL_INVALID_DEVICE;
	return remote_info(GP_INFO_KERNEL_WORK_GROUP, k->h.id, d->h.id, param, size, val, ret);
}

static cl_int CL_API_CALL icd_GetKernelArgInfo(cl_kernel k, cl_uint idx, cl_kernel_arg_info param,
					       size_t size, void *val, size_t *ret)
{
	if (!is(k, GP_KIND_KERNEL))
		return CL_INVALID_KERNEL;
	if (idx >= k->nargs)
		return CL_INVALID_ARG_INDEX;
	/* The server always has the info (it builds with
	 * -cl-kernel-arg-info); the application has it only if it asked. */
	if (!(__atomic_load_n(&k->prog->opt, __ATOMIC_RELAXED) & PROG_ARG_INFO))
		return CL_KERNEL_ARG_INFO_NOT_AVAILABLE;
	return remote_info(GP_INFO_KERNEL_ARG, k->h.id, idx, param, size, val, ret);
}

static cl_int CL_API_CALL icd_GetKernelSubGroupInfo(cl_kernel k, cl_device_id d,
						    cl_kernel_sub_group_info p, size_t is_,
						    const void *iv, size_t size, void *val,
						    size_t *ret)
{
	/* Sub-groups are optional in 3.0 and not forwarded. */
	return is(k, GP_KIND_KERNEL) ? CL_INVALID_OPERATION : CL_INVALID_KERNEL;
}

static cl_kernel CL_API_CALL icd_CloneKernel(cl_kernel src, cl_int *errp)
{
	struct gp_icd_call k;
	cl_kernel kn;
	cl_int err;

	if (!is(src, GP_KIND_KERNEL)) {
		set_err(errp, CL_INVALID_KERNEL);
		return NULL;
	}
	kn = obj_new(sizeof(*kn), GP_KIND_KERNEL);
	if (kn)
		kn->args = calloc(src->nargs ? src->nargs : 1, sizeof(*kn->args));
	if (!kn || !kn->args) {
		free(kn);
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, kn->h.id);
	gp_enc_u64(&k.e, src->h.id);
	err = gp_icd_call_sync(&k, GP_OP_CLONE_KERNEL, DEAD);
	gp_icd_call_end(&k);
	if (err != CL_SUCCESS) {
		free(kn->args);
		free(kn);
		set_err(errp, err);
		return NULL;
	}
	/* A clone has the source's argument values (OpenCL 3.0, 5.9.3). */
	kn->prog = src->prog;
	kn->nargs = src->nargs;
	if (src->args)
		memcpy(kn->args, src->args, src->nargs * sizeof(*kn->args));
	else
		free(kn->args), kn->args = NULL;
	kn->wg_dev = src->wg_dev;
	kn->wg_max = src->wg_max;
	memcpy(kn->wg_reqd, src->wg_reqd, sizeof(kn->wg_reqd));
	retain(kn->prog);
	set_err(errp, CL_SUCCESS);
	return kn;
}

static cl_int CL_API_CALL icd_SetKernelArgSVMPointer(cl_kernel k, cl_uint i, const void *v)
{
	return is(k, GP_KIND_KERNEL) ? CL_INVALID_OPERATION : CL_INVALID_KERNEL;
}

static cl_int CL_API_CALL icd_SetKernelExecInfo(cl_kernel k, cl_kernel_exec_info p, size_t s,
						const void *v)
{
	return is(k, GP_KIND_KERNEL) ? CL_INVALID_OPERATION : CL_INVALID_KERNEL;
}

/* ---- enqueue: kernels, markers, barriers ---- */

/* @kn's work-group limits on @d (asked once per device; nothing
 * checked when the server cannot say). */
static void kernel_wg(cl_kernel kn, cl_device_id d, size_t *max, size_t reqd[3])
{
	size_t m = SIZE_MAX, r[3] = { 0, 0, 0 };

	pthread_mutex_lock(&G.cache_mu);
	if (kn->wg_dev == d) {
		*max = kn->wg_max;
		memcpy(reqd, kn->wg_reqd, sizeof(r));
		pthread_mutex_unlock(&G.cache_mu);
		return;
	}
	pthread_mutex_unlock(&G.cache_mu);
	if (remote_info(GP_INFO_KERNEL_WORK_GROUP, kn->h.id, d->h.id, CL_KERNEL_WORK_GROUP_SIZE,
			sizeof(m), &m, NULL) != CL_SUCCESS ||
	    remote_info(GP_INFO_KERNEL_WORK_GROUP, kn->h.id, d->h.id,
			CL_KERNEL_COMPILE_WORK_GROUP_SIZE, sizeof(r), r, NULL) != CL_SUCCESS) {
		*max = SIZE_MAX;
		memset(reqd, 0, sizeof(r));
		return;
	}
	pthread_mutex_lock(&G.cache_mu);
	kn->wg_dev = d;
	kn->wg_max = m;
	memcpy(kn->wg_reqd, r, sizeof(r));
	pthread_mutex_unlock(&G.cache_mu);
	*max = m;
	memcpy(reqd, r, sizeof(r));
}

/* The errors clEnqueueNDRangeKernel must report from the call (OpenCL
 * 3.0, 5.10), found from what the ICD knows: arguments set, device and
 * kernel work-group limits, the program's uniformity. *@empty: a global
 * size of 0, which a 2.1+ device runs as a command without work. */
static cl_int ndrange_check(cl_command_queue q, cl_kernel kn, cl_uint dim, const size_t *off,
			    const size_t *glob, const size_t *loc, bool *empty)
{
	struct dev_lim l = dev_limits(q->dev);
	size_t wg_max, reqd[3], items = 1;
	bool uniform_only;

	*empty = false;
	for (cl_uint i = 0; kn->args && i < kn->nargs; i++)
		if (!kn->args[i].set)
			return CL_INVALID_KERNEL_ARGS;
	for (cl_uint i = 0; i < dim; i++) {
		if (glob[i] == 0) {
			if (l.ver < 21)
				return CL_INVALID_GLOBAL_WORK_SIZE;
			*empty = true;
		}
		if (off && off[i] > SIZE_MAX - glob[i])
			return CL_INVALID_GLOBAL_OFFSET;
	}
	kernel_wg(kn, q->dev, &wg_max, reqd);
	if (reqd[0] && !loc)
		return CL_INVALID_WORK_GROUP_SIZE;
	if (!loc)
		return CL_SUCCESS;
	uniform_only = !(__atomic_load_n(&kn->prog->opt, __ATOMIC_RELAXED) & PROG_NONUNIFORM) ||
		       !l.nonuniform;
	for (cl_uint i = 0; i < dim; i++) {
		if (loc[i] == 0 || (reqd[0] && loc[i] != reqd[i]))
			return CL_INVALID_WORK_GROUP_SIZE;
		if (loc[i] > l.max_items[i])
			return CL_INVALID_WORK_ITEM_SIZE;
		if (uniform_only && glob[i] % loc[i])
			return CL_INVALID_WORK_GROUP_SIZE;
		items = items > SIZE_MAX / loc[i] ? SIZE_MAX : items * loc[i];
	}
	for (cl_uint i = dim; reqd[0] && i < 3; i++)
		if (reqd[i] != 1)
			return CL_INVALID_WORK_GROUP_SIZE;
	if (items > wg_max || items > l.max_wg)
		return CL_INVALID_WORK_GROUP_SIZE;
	return CL_SUCCESS;
}

static cl_int CL_API_CALL icd_EnqueueNDRangeKernel(cl_command_queue q, cl_kernel kn, cl_uint dim,
						   const size_t *off, const size_t *glob,
						   const size_t *loc, cl_uint nw, const cl_event *wl,
						   cl_event *event)
{
	struct gp_icd_call k;
	uint64_t id, sizes[9];
	cl_event ev;
	cl_int err;
	bool empty;

	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	if (!is(kn, GP_KIND_KERNEL))
		return CL_INVALID_KERNEL;
	if (kn->prog->ctx != q->ctx)
		return CL_INVALID_CONTEXT;
	if (dim < 1 || dim > 3)
		return CL_INVALID_WORK_DIMENSION;
	if (!glob)
		return CL_INVALID_GLOBAL_WORK_SIZE;
	err = ndrange_check(q, kn, dim, off, glob, loc, &empty);
	if (err == CL_SUCCESS)
		err = enq_begin(q, nw, wl, CL_COMMAND_NDRANGE_KERNEL, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	if (empty) /* nothing to run: an ordering point with the kernel's event */
		return done_event(post_marker(q, GP_OP_MARKER, nw, wl, id), ev, event);
	call_begin(&k, nw);
	gp_enc_u64(&k.e, q->h.id);
	gp_enc_u64(&k.e, kn->h.id);
	gp_enc_u32(&k.e, dim);
	gp_enc_u32(&k.e, off != NULL);
	gp_enc_u32(&k.e, loc != NULL);
	for (cl_uint i = 0; i < 3; i++) {
		sizes[i] = off && i < dim ? off[i] : 0;
		sizes[3 + i] = i < dim ? glob[i] : 1;
		sizes[6 + i] = loc && i < dim ? loc[i] : 1;
	}
	enc_u64s(&k.e, sizes, 9);
	return done_event(enq_post(&k, q, GP_OP_ENQUEUE_NDRANGE, nw, wl, id), ev, event);
}

static cl_int CL_API_CALL icd_EnqueueTask(cl_command_queue q, cl_kernel k, cl_uint nw,
					  const cl_event *wl, cl_event *ev)
{
	static const size_t one[1] = { 1 };
	cl_int err = icd_EnqueueNDRangeKernel(q, k, 1, NULL, one, one, nw, wl, ev);

	if (err == CL_SUCCESS && ev)
		(*ev)->type = CL_COMMAND_TASK;
	return err;
}

static cl_int CL_API_CALL icd_EnqueueNativeKernel(cl_command_queue q,
						  void (CL_CALLBACK *fn)(void *), void *args,
						  size_t cb, cl_uint nm, const cl_mem *ml,
						  const void **loc, cl_uint nw, const cl_event *wl,
						  cl_event *ev)
{
	/* Host code cannot run on the server (CL_EXEC_NATIVE_KERNEL absent). */
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_OPERATION : CL_INVALID_COMMAND_QUEUE;
}

static cl_int marker_like(cl_command_queue q, uint16_t op, cl_command_type type, cl_uint nw,
			  const cl_event *wl, cl_event *event)
{
	cl_event ev;
	uint64_t id;
	cl_int err;

	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	err = enq_begin(q, nw, wl, type, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	return done_event(post_marker(q, op, nw, wl, id), ev, event);
}

static cl_int CL_API_CALL icd_EnqueueMarkerWithWaitList(cl_command_queue q, cl_uint nw,
							const cl_event *wl, cl_event *ev)
{
	return marker_like(q, GP_OP_MARKER, CL_COMMAND_MARKER, nw, wl, ev);
}

static cl_int CL_API_CALL icd_EnqueueBarrierWithWaitList(cl_command_queue q, cl_uint nw,
							 const cl_event *wl, cl_event *ev)
{
	return marker_like(q, GP_OP_BARRIER, CL_COMMAND_BARRIER, nw, wl, ev);
}

static cl_int CL_API_CALL icd_EnqueueMarker(cl_command_queue q, cl_event *ev)
{
	if (!ev)
		return is(q, GP_KIND_QUEUE) ? CL_INVALID_VALUE : CL_INVALID_COMMAND_QUEUE;
	return marker_like(q, GP_OP_MARKER, CL_COMMAND_MARKER, 0, NULL, ev);
}

static cl_int CL_API_CALL icd_EnqueueBarrier(cl_command_queue q)
{
	return marker_like(q, GP_OP_BARRIER, CL_COMMAND_BARRIER, 0, NULL, NULL);
}

static cl_int CL_API_CALL icd_EnqueueWaitForEvents(cl_command_queue q, cl_uint n, const cl_event *l)
{
	if (is(q, GP_KIND_QUEUE) && (n == 0 || !l))
		return CL_INVALID_VALUE;
	return marker_like(q, GP_OP_BARRIER, CL_COMMAND_BARRIER, n, l, NULL);
}

/* ---- events ---- */

/* Waits for events by bounded waits on the server (the server answers
 * "not done" after the bound): the application's other threads get the
 * connection in between, and one of them may set the user event this one
 * waits for. Usually the first answer says done: one round trip.
 * A poll takes the connection only when no other thread wants it
 * (gp_icd_call_sync_yield). While nobody else asks, the bound grows from
 * WAIT_POLL_MIN_US to WAIT_POLL_MAX_US: a long wait costs a few hundred
 * wake-ups a second. Once another thread asked for the connection during
 * a poll, that thread waited for our bound, and so would its next call:
 * for WAIT_POLL_BUSY_NS after the last time one asked, the polls become
 * bare checks (bound 0) WAIT_POLL_NAP_US apart, the connection free in
 * between. */
#define WAIT_POLL_MIN_US 500u
#define WAIT_POLL_MAX_US 4000u
#define WAIT_POLL_NAP_US 250u
#define WAIT_POLL_BUSY_NS 20000000ll

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static cl_int wait_ids(cl_uint n, const uint64_t *ids)
{
	cl_int err, first = CL_SUCCESS;
	uint32_t us = WAIT_POLL_MIN_US;
	unsigned polls = 0;
	long long asked_at = 0;

	for (;;) {
		struct gp_icd_call k;
		uint32_t done = 0;
		bool asked;

		call_begin(&k, n);
		/* Past the first answer "not done", the next one is probably
		 * the bound away: no spinning for it. */
		k.patient = polls++ > 0 && us > 0;
		enc_ids(&k.e, n, ids);
		gp_enc_u32(&k.e, us);
		err = gp_icd_call_sync_yield(&k, GP_OP_WAIT_POLL, DEAD, &asked);
		if (err != DEAD && !k.d.err && k.d.len >= 8) {
			done = gp_dec_u32(&k.d);
		} else if (err != DEAD) {
			done = 1; /* a reply without the field: never spin on it */
			err = err == CL_SUCCESS ? CL_OUT_OF_RESOURCES : err;
		}
		gp_icd_call_end(&k);
		/* An earlier pipelined call's error may come with an answer
		 * that is not done yet: it is returned once the wait is over. */
		if (first == CL_SUCCESS)
			first = err;
		if (done || err == DEAD) {
			/* What the application may now look at includes the
			 * data of non-blocking reads that are complete. */
			pend_drain();
			break;
		}
		if (asked)
			asked_at = mono_ns();
		if (asked_at && mono_ns() - asked_at < WAIT_POLL_BUSY_NS) {
			struct timespec nap = { 0, WAIT_POLL_NAP_US * 1000L };

			us = 0;
			nanosleep(&nap, NULL);
		} else {
			us = us < WAIT_POLL_MIN_US ? WAIT_POLL_MIN_US
			     : us < WAIT_POLL_MAX_US ? us * 2 : us;
		}
	}
	return first;
}

static cl_int CL_API_CALL icd_WaitForEvents(cl_uint n, const cl_event *l)
{
	uint64_t small[16], *ids;
	cl_int err;

	if (n == 0 || !l)
		return CL_INVALID_VALUE;
	for (cl_uint i = 0; i < n; i++) {
		if (!is(l[i], GP_KIND_EVENT))
			return CL_INVALID_EVENT;
		if (l[i]->ctx != l[0]->ctx)
			return CL_INVALID_CONTEXT;
	}
	ids = n <= 16 ? small : calloc(n, sizeof(*ids));
	if (!ids)
		return CL_OUT_OF_HOST_MEMORY;
	for (cl_uint i = 0; i < n; i++)
		ids[i] = l[i]->h.id;
	err = wait_ids(n, ids);
	if (ids != small)
		free(ids);
	return err;
}

static cl_int CL_API_CALL icd_GetEventInfo(cl_event ev, cl_event_info param, size_t size,
					   void *val, size_t *ret)
{
	if (!is(ev, GP_KIND_EVENT))
		return CL_INVALID_EVENT;
	switch (param) {
	case CL_EVENT_COMMAND_QUEUE:
		PUT(cl_command_queue, ev->q);
	case CL_EVENT_CONTEXT:
		PUT(cl_context, ev->ctx);
	case CL_EVENT_COMMAND_TYPE:
		PUT(cl_command_type, ev->type);
	case CL_EVENT_REFERENCE_COUNT:
		PUT(cl_uint, __atomic_load_n(&ev->h.refs, __ATOMIC_RELAXED));
	case CL_EVENT_COMMAND_EXECUTION_STATUS: {
		cl_int st = CL_QUEUED;
		cl_int err = remote_info(GP_INFO_EVENT, ev->h.id, 0, param, sizeof(st), &st, NULL);

		if (err != CL_SUCCESS)
			return err;
		/* Complete: a non-blocking read's data is in place first. */
		if (st <= CL_COMPLETE)
			pend_drain();
		PUT(cl_int, st);
	}
	default:
		return remote_info(GP_INFO_EVENT, ev->h.id, 0, param, size, val, ret);
	}
}

static cl_int CL_API_CALL icd_GetEventProfilingInfo(cl_event ev, cl_profiling_info param,
						    size_t size, void *val, size_t *ret)
{
	if (!is(ev, GP_KIND_EVENT))
		return CL_INVALID_EVENT;
	if (!ev->q || !(ev->q->props & CL_QUEUE_PROFILING_ENABLE))
		return CL_PROFILING_INFO_NOT_AVAILABLE;
	return remote_info(GP_INFO_EVENT_PROFILING, ev->h.id, 0, param, size, val, ret);
}

static cl_int CL_API_CALL icd_RetainEvent(cl_event ev)
{
	return obj_retain(ev, GP_KIND_EVENT);
}

static cl_int CL_API_CALL icd_ReleaseEvent(cl_event ev)
{
	return obj_release(ev, GP_KIND_EVENT);
}

static cl_event CL_API_CALL icd_CreateUserEvent(cl_context ctx, cl_int *errp)
{
	struct gp_icd_call k;
	cl_event ev;
	cl_int err;

	if (!is(ctx, GP_KIND_CONTEXT)) {
		set_err(errp, CL_INVALID_CONTEXT);
		return NULL;
	}
	ev = event_new(NULL, ctx, CL_COMMAND_USER);
	if (!ev) {
		set_err(errp, CL_OUT_OF_HOST_MEMORY);
		return NULL;
	}
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, ev->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_USER_EVENT, DEAD);
	gp_icd_call_end(&k);
	if (err != CL_SUCCESS) {
		icd_ReleaseContext(ctx);
		free(ev);
		ev = NULL;
	} else {
		__atomic_add_fetch(&ctx->unset_users, 1, __ATOMIC_ACQ_REL);
	}
	set_err(errp, err);
	return ev;
}

static cl_int CL_API_CALL icd_SetUserEventStatus(cl_event ev, cl_int status)
{
	struct gp_icd_call k;
	cl_int err;

	if (!is(ev, GP_KIND_EVENT) || ev->type != CL_COMMAND_USER)
		return CL_INVALID_EVENT;
	if (status > 0 || (status != CL_COMPLETE && status >= 0))
		return CL_INVALID_VALUE;
	/* Synchronous: setting a status twice must fail with
	 * CL_INVALID_OPERATION, which only the server knows. */
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, ev->h.id);
	gp_enc_i32(&k.e, status);
	err = gp_icd_call_sync(&k, GP_OP_SET_USER_EVENT_STATUS, DEAD);
	gp_icd_call_end(&k);
	if (err == CL_SUCCESS)
		__atomic_sub_fetch(&ev->ctx->unset_users, 1, __ATOMIC_ACQ_REL);
	return err;
}

struct ev_cb {
	cl_event ev;
	cl_int type;
	void (CL_CALLBACK *fn)(cl_event, cl_int, void *);
	void *data;
};

/* Event callbacks: a thread per callback polls the status with growing
 * pauses (the server keeps no channel back to the guest) and calls the
 * function once the event reaches the status asked for or fails. */
static void *callback_thread(void *arg)
{
	struct ev_cb *c = arg;
	struct timespec ts = { 0, 50000 };
	cl_int st = CL_QUEUED;

	for (;;) {
		if (icd_GetEventInfo(c->ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st,
				     NULL) != CL_SUCCESS)
			st = CL_OUT_OF_RESOURCES; /* server gone: report the event failed */
		if (st <= c->type)
			break;
		nanosleep(&ts, NULL);
		if (ts.tv_nsec < 5000000)
			ts.tv_nsec *= 2;
	}
	c->fn(c->ev, st < 0 ? st : c->type, c->data);
	icd_ReleaseEvent(c->ev);
	free(c);
	return NULL;
}

static cl_int CL_API_CALL icd_SetEventCallback(cl_event ev, cl_int type,
					       void (CL_CALLBACK *fn)(cl_event, cl_int, void *),
					       void *data)
{
	struct ev_cb *c;
	pthread_attr_t a;
	pthread_t t;

	if (!is(ev, GP_KIND_EVENT))
		return CL_INVALID_EVENT;
	if (!fn || (type != CL_SUBMITTED && type != CL_RUNNING && type != CL_COMPLETE))
		return CL_INVALID_VALUE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return CL_OUT_OF_HOST_MEMORY;
	c->ev = ev;
	c->type = type;
	c->fn = fn;
	c->data = data;
	retain(ev);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, callback_thread, c) != 0) {
		pthread_attr_destroy(&a);
		icd_ReleaseEvent(ev);
		free(c);
		return CL_OUT_OF_HOST_MEMORY;
	}
	pthread_attr_destroy(&a);
	return CL_SUCCESS;
}

/* ---- non-blocking reads that must not wait ----
 * A non-blocking read may not wait for its wait list or its queue: one of
 * them may hold a user event that the application sets only after the
 * read returned, from this very thread. While a context has a user event
 * not set yet, such a read becomes a device copy of the region into a
 * buffer of our own, queued where the read is (later commands of the
 * queue keep their order), whose event is the read's. The data goes from
 * that buffer to the application's memory once the application can see
 * the read complete: before any wait, finish or status query that
 * reports completion returns (pend_drain), callbacks included (they poll
 * the status). Without unset user events every wait ends by itself, and
 * a read waits as before (no extra copy). */
struct pend_read {
	struct pend_read *next;
	cl_event ev;                 /* the read's event (our reference) */
	cl_mem tmp;                  /* the region, packed: rows of rowb bytes */
	uint8_t *dst;                /* where the first row goes */
	size_t rowb, nrows, nslices; /* packed layout */
	size_t ystep, zstep;         /* the application's pitches */
};

/* The drain's own calls never drain again (no recursion on pend_mu). */
static __thread bool pend_draining;

static bool pend_wanted(cl_command_queue q, cl_uint nw, cl_bool blocking)
{
	return !blocking && (nw || may_wait_on(q)) &&
	       __atomic_load_n(&q->ctx->unset_users, __ATOMIC_ACQUIRE) > 0;
}

/* The region from @p->tmp (complete) to the application's memory. A queue
 * of our own reads it: the read's queue may still wait for anything. */
static cl_int pend_fetch(struct pend_read *p)
{
	size_t total = p->rowb * p->nrows * p->nslices;
	bool packed = (p->nrows * p->nslices == 1) ||
		      (p->ystep == p->rowb && p->zstep == p->rowb * p->nrows);
	const uint8_t *src = p->tmp->shared;
	uint8_t *buf = NULL;
	cl_int err = CL_SUCCESS;

	if (!src) {
		cl_command_queue fq;

		buf = packed ? p->dst : malloc(total);
		if (!buf)
			return CL_OUT_OF_HOST_MEMORY;
		fq = icd_CreateCommandQueueWithProperties(p->tmp->ctx, p->tmp->ctx->devs[0], NULL,
							  &err);
		if (fq) {
			err = read_data(fq, p->tmp, 0, total, buf, 0, NULL, 0);
			icd_ReleaseCommandQueue(fq);
		}
		src = buf;
	}
	if (err == CL_SUCCESS && src != p->dst) {
		for (size_t z = 0; z < p->nslices; z++)
			for (size_t y = 0; y < p->nrows; y++)
				memcpy(p->dst + z * p->zstep + y * p->ystep,
				       src + (z * p->nrows + y) * p->rowb, p->rowb);
	}
	if (buf != p->dst)
		free(buf);
	return err;
}

static void pend_drain(void)
{
	struct pend_read **pp, *p;

	if (!__atomic_load_n(&G.npend, __ATOMIC_ACQUIRE) || pend_draining)
		return;
	/* One drain at a time: a thread that returns from here knows every
	 * read complete before it came is delivered. */
	pthread_mutex_lock(&G.pend_mu);
	pend_draining = true;
	for (pp = &G.pend; (p = *pp);) {
		cl_int st = CL_QUEUED;

		if (remote_info(GP_INFO_EVENT, p->ev->h.id, 0, CL_EVENT_COMMAND_EXECUTION_STATUS,
				sizeof(st), &st, NULL) != CL_SUCCESS)
			st = DEAD;
		if (st > CL_COMPLETE) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		if (st == CL_COMPLETE)
			(void)pend_fetch(p); /* the server is gone if it fails */
		icd_ReleaseMemObject(p->tmp);
		icd_ReleaseEvent(p->ev);
		free(p);
		__atomic_sub_fetch(&G.npend, 1, __ATOMIC_RELEASE);
	}
	pend_draining = false;
	pthread_mutex_unlock(&G.pend_mu);
}

/* Records a read whose device copy into @tmp was queued with event @cev
 * (ours): the application's event, if it asked for one, is @cev as a
 * command of @type. Takes @tmp and @cev. */
static cl_int pend_start(cl_command_queue q, cl_mem tmp, cl_event cev, cl_command_type type,
			 uint8_t *dst, size_t rowb, size_t nrows, size_t nslices, size_t ystep,
			 size_t zstep, cl_event *event)
{
	struct pend_read *p = calloc(1, sizeof(*p));

	(void)q;
	if (!p) {
		/* (The copy runs, into a buffer nobody reads.) */
		icd_ReleaseMemObject(tmp);
		icd_ReleaseEvent(cev);
		return CL_OUT_OF_HOST_MEMORY;
	}
	cev->type = type;
	*p = (struct pend_read){ .ev = cev, .tmp = tmp, .dst = dst, .rowb = rowb, .nrows = nrows,
				 .nslices = nslices, .ystep = ystep, .zstep = zstep };
	if (event) {
		retain(cev);
		*event = cev;
	}
	pthread_mutex_lock(&G.pend_mu);
	p->next = G.pend;
	G.pend = p;
	__atomic_add_fetch(&G.npend, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&G.pend_mu);
	return CL_SUCCESS;
}

/* ---- images ----
 * Images live on the server only (no shared memory): data moves in
 * tightly packed blocks of at most IMG_BLOCK bytes, each one message. */

#define IMG_BLOCK (512u * 1024u)

static bool image_type_ok(cl_mem_object_type t)
{
	return t == CL_MEM_OBJECT_IMAGE1D || t == CL_MEM_OBJECT_IMAGE1D_BUFFER ||
	       t == CL_MEM_OBJECT_IMAGE1D_ARRAY || t == CL_MEM_OBJECT_IMAGE2D ||
	       t == CL_MEM_OBJECT_IMAGE2D_ARRAY || t == CL_MEM_OBJECT_IMAGE3D;
}

/* The whole image as a region (OpenCL 3.0, 5.3.3: arrays count in the
 * next free dimension). */
static void image_extent(const cl_mem m, size_t reg[3])
{
	const cl_image_desc *d = &m->desc;

	reg[0] = d->image_width;
	reg[1] = 1;
	reg[2] = 1;
	switch (d->image_type) {
	case CL_MEM_OBJECT_IMAGE1D_ARRAY: reg[1] = d->image_array_size; break;
	case CL_MEM_OBJECT_IMAGE2D: reg[1] = d->image_height; break;
	case CL_MEM_OBJECT_IMAGE2D_ARRAY:
		reg[1] = d->image_height;
		reg[2] = d->image_array_size;
		break;
	case CL_MEM_OBJECT_IMAGE3D:
		reg[1] = d->image_height;
		reg[2] = d->image_depth;
		break;
	default: break;
	}
}

/* Host-side steps between rows (y) and slices (z) for pitches @rp, @sp
 * as the application gives them (0: tightly packed). In a 1D image array
 * the images follow each other at the slice pitch (OpenCL 3.0, 5.3.3). */
static void host_steps(const cl_mem m, const size_t reg[3], size_t rp, size_t sp, size_t *ystep,
		       size_t *zstep)
{
	size_t rowb = reg[0] * m->elem;

	if (m->desc.image_type == CL_MEM_OBJECT_IMAGE1D_ARRAY) {
		*ystep = sp ? sp : rowb;
		*zstep = *ystep * reg[1];
		return;
	}
	*ystep = rp ? rp : rowb;
	*zstep = sp ? sp : *ystep * reg[1];
}

static cl_int image_region_check(const cl_mem m, const size_t *org, const size_t *reg)
{
	size_t ext[3];

	if (!org || !reg)
		return CL_INVALID_VALUE;
	image_extent(m, ext);
	for (int i = 0; i < 3; i++)
		if (reg[i] == 0 || org[i] > ext[i] || reg[i] > ext[i] - org[i])
			return CL_INVALID_VALUE;
	return CL_SUCCESS;
}

/* Moves a region between the image and @ptr (host pitches @rp, @sp), in
 * blocks that each fit one message. Every block waits for the wait list;
 * the event is the last block's, or a marker's after several. Reads are
 * synchronous; writes are posted, the last one synchronously if
 * @blocking (then errors come back) or when @q is NULL (initial data). */
static cl_int image_xfer(bool write, cl_command_queue q, cl_mem m, const size_t *org,
			 const size_t *reg, size_t rp, size_t sp, void *ptr, cl_uint nw,
			 const cl_event *wl, uint64_t evid, bool blocking)
{
	size_t elem = m->elem, ystep, zstep, xs, ys, zs, nblk, blk = 0;
	cl_int err = CL_SUCCESS;
	uint8_t *tmp;

	/* As for buffers: what a read (or blocking write) waits for is
	 * waited for first, in bounded steps that free the connection. */
	if (q && (!write || blocking) && (nw || may_wait_on(q))) {
		err = settle(q, nw, wl);
		if (err != CL_SUCCESS)
			return err;
	}
	host_steps(m, reg, rp, sp, &ystep, &zstep);
	xs = reg[0] < IMG_BLOCK / elem ? reg[0] : IMG_BLOCK / elem;
	ys = xs < reg[0] ? 1 : (reg[1] < IMG_BLOCK / (xs * elem) ? reg[1] : IMG_BLOCK / (xs * elem));
	if (ys == 0)
		ys = 1;
	zs = ys < reg[1] ? 1 : (reg[2] < IMG_BLOCK / (xs * ys * elem) ? reg[2]
							       : IMG_BLOCK / (xs * ys * elem));
	if (zs == 0)
		zs = 1;
	nblk = ((reg[0] + xs - 1) / xs) * ((reg[1] + ys - 1) / ys) * ((reg[2] + zs - 1) / zs);
	tmp = malloc(xs * ys * zs * elem);
	if (!tmp)
		return CL_OUT_OF_HOST_MEMORY;
	for (size_t z = 0; z < reg[2] && err == CL_SUCCESS; z += zs)
	for (size_t y = 0; y < reg[1] && err == CL_SUCCESS; y += ys)
	for (size_t x = 0; x < reg[0] && err == CL_SUCCESS; x += xs) {
		size_t b[3] = { reg[0] - x < xs ? reg[0] - x : xs, reg[1] - y < ys ? reg[1] - y : ys,
				reg[2] - z < zs ? reg[2] - z : zs };
		size_t bo[3] = { org[0] + x, org[1] + y, org[2] + z };
		size_t rowb = b[0] * elem, n = rowb * b[1] * b[2];
		bool last = ++blk == nblk;
		uint64_t id = last && nblk == 1 ? evid : 0;
		struct gp_icd_call k;

		if (write) {
			for (size_t zz = 0; zz < b[2]; zz++)
				for (size_t yy = 0; yy < b[1]; yy++)
					memcpy(tmp + (zz * b[1] + yy) * rowb,
					       (const uint8_t *)ptr + (z + zz) * zstep + (y + yy) * ystep +
						       x * elem, rowb);
		}
		gp_icd_call_begin_heap(G.conn, &k);
		gp_enc_u64(&k.e, q ? q->h.id : 0);
		gp_enc_u64(&k.e, m->h.id);
		for (int i = 0; i < 3; i++)
			gp_enc_u64(&k.e, bo[i]);
		for (int i = 0; i < 3; i++)
			gp_enc_u64(&k.e, b[i]);
		if (write) {
			gp_enc_u32(&k.e, blocking || !q);
			gp_enc_blob(&k.e, tmp, n);
		}
		enc_waitlist(&k.e, q ? nw : 0, wl);
		gp_enc_u64(&k.e, q ? id : 0);
		touch(q);
		if (write && !(last && (blocking || !q))) {
			err = gp_icd_call_post(&k, GP_OP_WRITE_IMAGE, DEAD);
		} else {
			err = gp_icd_call_sync(&k, write ? GP_OP_WRITE_IMAGE : GP_OP_READ_IMAGE, DEAD);
			if (err == CL_SUCCESS && !write) {
				size_t got = 0;
				const uint8_t *p = gp_dec_blob(&k.d, IMG_BLOCK, &got);

				if (!p || got != n) {
					err = CL_OUT_OF_RESOURCES;
				} else {
					for (size_t zz = 0; zz < b[2]; zz++)
						for (size_t yy = 0; yy < b[1]; yy++)
							memcpy((uint8_t *)ptr + (z + zz) * zstep +
								       (y + yy) * ystep + x * elem,
							       p + (zz * b[1] + yy) * rowb, rowb);
				}
			}
		}
		gp_icd_call_end(&k);
	}
	free(tmp);
	if (err == CL_SUCCESS && q && evid && nblk > 1)
		err = post_marker(q, GP_OP_MARKER, 0, NULL, evid);
	return err;
}

static cl_mem image_make(cl_context ctx, cl_mem_flags flags, const cl_image_format *fmt,
			 const cl_image_desc *desc, void *host_ptr, cl_int *errp)
{
	struct gp_icd_call k;
	cl_mem m, buf;
	size_t reg[3];
	cl_int err;

	err = mem_create_check(ctx, &flags);
	if (err != CL_SUCCESS) {
		set_err(errp, err);
		return NULL;
	}
	if (!fmt) {
		set_err(errp, CL_INVALID_IMAGE_FORMAT_DESCRIPTOR);
		return NULL;
	}
	buf = desc ? desc->buffer : NULL;
	if (!desc || !image_type_ok(desc->image_type) || desc->num_mip_levels || desc->num_samples ||
	    (buf && !is(buf, GP_KIND_MEM)) || (buf && buf->image) ||
	    (!host_ptr && !buf && (desc->image_row_pitch || desc->image_slice_pitch)) ||
	    ((desc->image_type == CL_MEM_OBJECT_IMAGE1D_BUFFER) != (buf != NULL) &&
	     desc->image_type != CL_MEM_OBJECT_IMAGE2D)) {
		set_err(errp, CL_INVALID_IMAGE_DESCRIPTOR);
		return NULL;
	}
	if ((host_ptr == NULL) != !(flags & (CL_MEM_USE_HOST_PTR | CL_MEM_COPY_HOST_PTR)) ||
	    (buf && host_ptr)) {
		set_err(errp, CL_INVALID_HOST_PTR);
		return NULL;
	}
	m = mem_new(errp);
	if (!m)
		return NULL;
	m->ctx = ctx;
	m->flags = flags;
	m->image = true;
	m->fmt = *fmt;
	m->desc = *desc;
	m->host_ptr = (flags & CL_MEM_USE_HOST_PTR) ? host_ptr : NULL;
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, m->h.id);
	gp_enc_u64(&k.e, ctx->h.id);
	gp_enc_u64(&k.e, flags);
	gp_enc_u32(&k.e, fmt->image_channel_order);
	gp_enc_u32(&k.e, fmt->image_channel_data_type);
	gp_enc_u32(&k.e, desc->image_type);
	gp_enc_u64(&k.e, desc->image_width);
	gp_enc_u64(&k.e, desc->image_height);
	gp_enc_u64(&k.e, desc->image_depth);
	gp_enc_u64(&k.e, desc->image_array_size);
	gp_enc_u64(&k.e, desc->image_row_pitch);
	gp_enc_u64(&k.e, desc->image_slice_pitch);
	gp_enc_u64(&k.e, buf ? buf->h.id : 0);
	err = gp_icd_call_sync(&k, GP_OP_CREATE_IMAGE, DEAD);
	m->elem = (size_t)gp_dec_u64(&k.d);
	m->size = (size_t)gp_dec_u64(&k.d);
	gp_icd_call_end(&k);
	if (err == CL_SUCCESS && m->elem == 0)
		err = CL_OUT_OF_RESOURCES;
	if (err == CL_SUCCESS && host_ptr) {
		static const size_t zero[3];

		image_extent(m, reg);
		m->hrow = desc->image_row_pitch ? desc->image_row_pitch : reg[0] * m->elem;
		m->hslice = desc->image_slice_pitch ? desc->image_slice_pitch :
			    desc->image_type == CL_MEM_OBJECT_IMAGE1D_ARRAY ? m->hrow : m->hrow * reg[1];
		err = image_xfer(true, NULL, m, zero, reg, m->hrow, m->hslice, host_ptr, 0, NULL, 0,
				 true);
		if (err != CL_SUCCESS)
			post_release(m->h.id);
	}
	if (err != CL_SUCCESS) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		set_err(errp, err);
		return NULL;
	}
	if (buf)
		retain(buf);
	retain(ctx);
	set_err(errp, CL_SUCCESS);
	return m;
}

static cl_mem CL_API_CALL icd_CreateImage(cl_context ctx, cl_mem_flags f, const cl_image_format *fmt,
					  const cl_image_desc *d, void *hp, cl_int *err)
{
	return image_make(ctx, f, fmt, d, hp, err);
}

static cl_mem CL_API_CALL icd_CreateImageWithProperties(cl_context ctx, const cl_mem_properties *p,
							cl_mem_flags f, const cl_image_format *fmt,
							const cl_image_desc *d, void *hp,
							cl_int *err)
{
	if (p && p[0] != 0) {
		set_err(err, CL_INVALID_PROPERTY); /* no image properties in 3.0 core */
		return NULL;
	}
	return with_props(image_make(ctx, f, fmt, d, hp, err), p);
}

static cl_mem CL_API_CALL icd_CreateImage2D(cl_context ctx, cl_mem_flags f, const cl_image_format *fmt,
					    size_t w, size_t h, size_t rp, void *hp, cl_int *err)
{
	cl_image_desc d = { .image_type = CL_MEM_OBJECT_IMAGE2D, .image_width = w,
			    .image_height = h, .image_row_pitch = rp };

	return image_make(ctx, f, fmt, &d, hp, err);
}

static cl_mem CL_API_CALL icd_CreateImage3D(cl_context ctx, cl_mem_flags f, const cl_image_format *fmt,
					    size_t w, size_t h, size_t dp, size_t rp, size_t sp,
					    void *hp, cl_int *err)
{
	cl_image_desc d = { .image_type = CL_MEM_OBJECT_IMAGE3D, .image_width = w,
			    .image_height = h, .image_depth = dp, .image_row_pitch = rp,
			    .image_slice_pitch = sp };

	return image_make(ctx, f, fmt, &d, hp, err);
}

static cl_int CL_API_CALL icd_GetSupportedImageFormats(cl_context ctx, cl_mem_flags f,
						       cl_mem_object_type t, cl_uint n,
						       cl_image_format *fmts, cl_uint *nout)
{
	struct gp_icd_call k;
	uint32_t got;
	cl_int err;

	if (!is(ctx, GP_KIND_CONTEXT))
		return CL_INVALID_CONTEXT;
	if ((n == 0 && fmts) || !image_type_ok(t))
		return CL_INVALID_VALUE;
	gp_icd_call_begin(G.conn, &k);
	gp_enc_u64(&k.e, ctx->h.id);
	gp_enc_u64(&k.e, f);
	gp_enc_u32(&k.e, t);
	err = gp_icd_call_sync(&k, GP_OP_IMAGE_FORMATS, DEAD);
	if (err == CL_SUCCESS) {
		got = gp_dec_count(&k.d, 8, 4096);
		for (uint32_t i = 0; i < got && !k.d.err; i++) {
			cl_image_format fm;

			fm.image_channel_order = gp_dec_u32(&k.d);
			fm.image_channel_data_type = gp_dec_u32(&k.d);
			if (fmts && i < n)
				fmts[i] = fm;
		}
		if (k.d.err)
			err = CL_OUT_OF_RESOURCES;
		else if (nout)
			*nout = got;
	}
	gp_icd_call_end(&k);
	return err;
}

static cl_int CL_API_CALL icd_GetImageInfo(cl_mem m, cl_image_info p, size_t s, void *v, size_t *r)
{
	if (!is(m, GP_KIND_MEM) || !m->image)
		return CL_INVALID_MEM_OBJECT;
	switch (p) {
	case CL_IMAGE_FORMAT:
		return put_info(&m->fmt, sizeof(m->fmt), s, v, r);
	case CL_IMAGE_ELEMENT_SIZE:
		return put_info(&m->elem, sizeof(m->elem), s, v, r);
	case CL_IMAGE_BUFFER:
		return put_info(&m->desc.buffer, sizeof(cl_mem), s, v, r);
	default:
		return remote_info(GP_INFO_IMAGE, m->h.id, 0, p, s, v, r);
	}
}

static cl_int check_image_op(cl_command_queue q, cl_mem m)
{
	if (!is(q, GP_KIND_QUEUE))
		return CL_INVALID_COMMAND_QUEUE;
	if (!is(m, GP_KIND_MEM) || !m->image)
		return CL_INVALID_MEM_OBJECT;
	if (m->ctx != q->ctx)
		return CL_INVALID_CONTEXT;
	return CL_SUCCESS;
}

static cl_int image_rw(bool write, cl_command_queue q, cl_mem m, cl_bool b, const size_t *o,
		       const size_t *r, size_t rp, size_t sp, void *p, cl_uint nw,
		       const cl_event *wl, cl_event *event)
{
	cl_event ev;
	uint64_t id;
	cl_int err = check_image_op(q, m);

	if (err == CL_SUCCESS)
		err = host_access(m, !write, write);
	if (err == CL_SUCCESS)
		err = image_region_check(m, o, r);
	if (err == CL_SUCCESS && !p)
		err = CL_INVALID_VALUE;
	if (err == CL_SUCCESS && ((rp && rp < r[0] * m->elem) ||
				  (sp && rp && sp < rp * r[1])))
		err = CL_INVALID_VALUE;
	if (err == CL_SUCCESS && !write && pend_wanted(q, nw, b))
		err = check_waitlist(q->ctx, nw, wl);
	if (err == CL_SUCCESS && !write && pend_wanted(q, nw, b)) {
		size_t ystep, zstep, rowb = r[0] * m->elem;
		cl_mem t = icd_CreateBuffer(q->ctx, CL_MEM_READ_WRITE, rowb * r[1] * r[2], NULL, &err);
		cl_event cev = NULL;

		if (t)
			err = icd_EnqueueCopyImageToBuffer(q, m, t, o, r, 0, nw, wl, &cev);
		if (err != CL_SUCCESS) {
			if (t)
				icd_ReleaseMemObject(t);
			return err;
		}
		host_steps(m, r, rp, sp, &ystep, &zstep);
		return pend_start(q, t, cev, CL_COMMAND_READ_IMAGE, p, rowb, r[1], r[2], ystep, zstep,
				  event);
	}
	if (err == CL_SUCCESS)
		err = enq_begin(q, nw, wl, write ? CL_COMMAND_WRITE_IMAGE : CL_COMMAND_READ_IMAGE, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	return done_event(image_xfer(write, q, m, o, r, rp, sp, p, nw, wl, id, b), ev, event);
}

static cl_int CL_API_CALL icd_EnqueueReadImage(cl_command_queue q, cl_mem m, cl_bool b,
					       const size_t *o, const size_t *r, size_t rp, size_t sp,
					       void *p, cl_uint nw, const cl_event *wl, cl_event *e)
{
	return image_rw(false, q, m, b, o, r, rp, sp, p, nw, wl, e);
}

static cl_int CL_API_CALL icd_EnqueueWriteImage(cl_command_queue q, cl_mem m, cl_bool b,
						const size_t *o, const size_t *r, size_t rp, size_t sp,
						const void *p, cl_uint nw, const cl_event *wl,
						cl_event *e)
{
	return image_rw(true, q, m, b, o, r, rp, sp, (void *)(uintptr_t)p, nw, wl, e);
}

/* kind 0: image -> image, 1: image -> buffer, 2: buffer -> image */
static cl_int post_image_copy(uint32_t kind, cl_command_queue q, cl_mem s, cl_mem d,
			      const size_t *so, const size_t *dor, const size_t *r, cl_uint nw,
			      const cl_event *wl, cl_event *event, cl_command_type type)
{
	struct gp_icd_call k;
	cl_event ev;
	uint64_t id;
	cl_int err;

	err = copy_check(q, s, kind != 2, d, kind != 1);
	if (err != CL_SUCCESS)
		return err;
	if (!so || !dor || !r)
		return CL_INVALID_VALUE;
	err = enq_begin(q, nw, wl, type, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u32(&k.e, kind);
	gp_enc_u64(&k.e, q->h.id);
	gp_enc_u64(&k.e, s->h.id);
	gp_enc_u64(&k.e, d->h.id);
	for (int i = 0; i < 3; i++)
		gp_enc_u64(&k.e, so[i]);
	for (int i = 0; i < 3; i++)
		gp_enc_u64(&k.e, dor[i]);
	for (int i = 0; i < 3; i++)
		gp_enc_u64(&k.e, r[i]);
	return done_event(enq_post(&k, q, GP_OP_COPY_IMAGE, nw, wl, id), ev, event);
}

static cl_int CL_API_CALL icd_EnqueueCopyImage(cl_command_queue q, cl_mem s, cl_mem d,
					       const size_t *so, const size_t *dor, const size_t *r,
					       cl_uint nw, const cl_event *wl, cl_event *e)
{
	return post_image_copy(0, q, s, d, so, dor, r, nw, wl, e, CL_COMMAND_COPY_IMAGE);
}

static cl_int CL_API_CALL icd_EnqueueCopyImageToBuffer(cl_command_queue q, cl_mem s, cl_mem d,
						       const size_t *so, const size_t *r, size_t dof,
						       cl_uint nw, const cl_event *wl, cl_event *e)
{
	size_t dor[3] = { dof, 0, 0 };

	return post_image_copy(1, q, s, d, so, dor, r, nw, wl, e, CL_COMMAND_COPY_IMAGE_TO_BUFFER);
}

static cl_int CL_API_CALL icd_EnqueueCopyBufferToImage(cl_command_queue q, cl_mem s, cl_mem d,
						       size_t so, const size_t *dor, const size_t *r,
						       cl_uint nw, const cl_event *wl, cl_event *e)
{
	size_t sor[3] = { so, 0, 0 };

	return post_image_copy(2, q, s, d, sor, dor, r, nw, wl, e, CL_COMMAND_COPY_BUFFER_TO_IMAGE);
}

static cl_int CL_API_CALL icd_EnqueueFillImage(cl_command_queue q, cl_mem m, const void *c,
					       const size_t *o, const size_t *r, cl_uint nw,
					       const cl_event *wl, cl_event *event)
{
	struct gp_icd_call k;
	cl_event ev;
	uint64_t id;
	cl_int err = check_image_op(q, m);

	if (err == CL_SUCCESS && !c)
		err = CL_INVALID_VALUE;
	if (err == CL_SUCCESS)
		err = image_region_check(m, o, r);
	if (err == CL_SUCCESS)
		err = enq_begin(q, nw, wl, CL_COMMAND_FILL_IMAGE, event, &ev, &id);
	if (err != CL_SUCCESS)
		return err;
	gp_icd_call_begin_heap(G.conn, &k);
	gp_enc_u64(&k.e, q->h.id);
	gp_enc_u64(&k.e, m->h.id);
	/* The fill colour is four 32-bit channels (float4, int4 or uint4). */
	gp_enc_blob(&k.e, c, 16);
	for (int i = 0; i < 3; i++)
		gp_enc_u64(&k.e, o[i]);
	for (int i = 0; i < 3; i++)
		gp_enc_u64(&k.e, r[i]);
	return done_event(enq_post(&k, q, GP_OP_FILL_IMAGE, nw, wl, id), ev, event);
}

/* Image maps: the region is read into host memory (the application's own
 * with USE_HOST_PTR, at its pitches; else a tightly packed copy) and
 * written back at unmap when the map was writable. */
static void *CL_API_CALL icd_EnqueueMapImage(cl_command_queue q, cl_mem m, cl_bool b, cl_map_flags f,
					     const size_t *o, const size_t *r, size_t *rp, size_t *sp,
					     cl_uint nw, const cl_event *wl, cl_event *event,
					     cl_int *errp)
{
	struct mapping *mp;
	cl_event ev;
	uint64_t id;
	size_t hrow, hslice;
	bool slice_out;
	void *ptr;
	cl_int err = check_image_op(q, m);

	if (err == CL_SUCCESS)
		err = image_region_check(m, o, r);
	slice_out = m->desc.image_type == CL_MEM_OBJECT_IMAGE3D ||
		    m->desc.image_type == CL_MEM_OBJECT_IMAGE1D_ARRAY ||
		    m->desc.image_type == CL_MEM_OBJECT_IMAGE2D_ARRAY;
	if (err == CL_SUCCESS &&
	    (!rp || (slice_out && !sp) ||
	     (f & ~(cl_map_flags)(CL_MAP_READ | CL_MAP_WRITE | CL_MAP_WRITE_INVALIDATE_REGION)) ||
	     ((f & CL_MAP_WRITE_INVALIDATE_REGION) && (f & (CL_MAP_READ | CL_MAP_WRITE)))))
		err = CL_INVALID_VALUE;
	if (err == CL_SUCCESS)
		err = map_access(m, f);
	if (err == CL_SUCCESS)
		err = map_new(q, nw, wl, &mp);
	if (err != CL_SUCCESS) {
		set_err(errp, err);
		return NULL;
	}
	if (m->host_ptr) {
		hrow = m->hrow;
		hslice = m->hslice;
		ptr = (uint8_t *)m->host_ptr + o[2] * hslice + o[0] * m->elem +
		      (m->desc.image_type == CL_MEM_OBJECT_IMAGE1D_ARRAY ? o[1] * hslice : o[1] * hrow);
	} else {
		hrow = r[0] * m->elem;
		hslice = m->desc.image_type == CL_MEM_OBJECT_IMAGE1D_ARRAY ? hrow : hrow * r[1];
		if (posix_memalign(&ptr, 4096, hslice * r[2] * (m->desc.image_type ==
				   CL_MEM_OBJECT_IMAGE1D_ARRAY ? r[1] : 1)) != 0) {
			free(mp);
			set_err(errp, CL_MAP_FAILURE);
			return NULL;
		}
		mp->owned = true;
	}
	if (pend_wanted(q, nw, b) && !(f & CL_MAP_WRITE_INVALIDATE_REGION)) {
		/* A non-blocking map must not wait either (see pend_start): its
		 * region comes as a deferred read's, into the map's memory. */
		size_t ystep, zstep, rowb = r[0] * m->elem;
		cl_mem t = icd_CreateBuffer(q->ctx, CL_MEM_READ_WRITE, rowb * r[1] * r[2], NULL, &err);
		cl_event cev = NULL;

		if (t)
			err = icd_EnqueueCopyImageToBuffer(q, m, t, o, r, 0, nw, wl, &cev);
		host_steps(m, r, hrow, hslice, &ystep, &zstep);
		if (err == CL_SUCCESS)
			err = pend_start(q, t, cev, CL_COMMAND_MAP_IMAGE, ptr, rowb, r[1], r[2], ystep,
					 zstep, event);
		else if (t)
			icd_ReleaseMemObject(t);
	} else {
		err = with_event(q, CL_COMMAND_MAP_IMAGE, event, &ev, &id);
		if (err == CL_SUCCESS) {
			if (f & CL_MAP_WRITE_INVALIDATE_REGION)
				err = post_marker(q, GP_OP_MARKER, nw, wl, id);
			else
				err = image_xfer(false, q, m, o, r, hrow, hslice, ptr, nw, wl, id, true);
			err = done_event(err, ev, event);
		}
	}
	if (err != CL_SUCCESS) {
		if (mp->owned)
			free(ptr);
		free(mp);
		set_err(errp, err == CL_OUT_OF_RESOURCES ? err : CL_MAP_FAILURE);
		return NULL;
	}
	*rp = hrow;
	if (sp)
		*sp = slice_out ? hslice : 0;
	mp->ptr = ptr;
	mp->flags = f;
	mp->image = true;
	memcpy(mp->org, o, sizeof(mp->org));
	memcpy(mp->reg, r, sizeof(mp->reg));
	mp->rp = hrow;
	mp->sp = hslice;
	return map_add(m, mp, errp);
}

/* ---- not forwarded: pipes, SVM, GL/EGL sharing, timers ----
 * Each answers as OpenCL 3.0 says for a device without the feature. */

static cl_mem CL_API_CALL icd_CreatePipe(cl_context ctx, cl_mem_flags f, cl_uint ps, cl_uint mp,
					 const cl_pipe_properties *p, cl_int *err)
{
	/* No device supports pipes here (OpenCL 3.0, 5.4.1). */
	set_err(err, is(ctx, GP_KIND_CONTEXT) ? CL_INVALID_OPERATION : CL_INVALID_CONTEXT);
	return NULL;
}

static cl_int CL_API_CALL icd_GetPipeInfo(cl_mem m, cl_pipe_info p, size_t s, void *v, size_t *r)
{
	return is(m, GP_KIND_MEM) ? CL_INVALID_MEM_OBJECT : CL_INVALID_MEM_OBJECT;
}

static void *CL_API_CALL icd_SVMAlloc(cl_context ctx, cl_svm_mem_flags f, size_t s, cl_uint a)
{
	return NULL; /* no SVM (CL_DEVICE_SVM_CAPABILITIES is 0) */
}

static void CL_API_CALL icd_SVMFree(cl_context ctx, void *p)
{
}

static cl_int CL_API_CALL icd_EnqueueSVMFree(cl_command_queue q, cl_uint n, void *ps[],
					     void (CL_CALLBACK *fn)(cl_command_queue, cl_uint, void *[], void *),
					     void *d, cl_uint nw, const cl_event *wl, cl_event *e)
{
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_OPERATION : CL_INVALID_COMMAND_QUEUE;
}

static cl_int CL_API_CALL icd_EnqueueSVMMemcpy(cl_command_queue q, cl_bool b, void *d, const void *s,
					       size_t n, cl_uint nw, const cl_event *wl, cl_event *e)
{
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_OPERATION : CL_INVALID_COMMAND_QUEUE;
}

static cl_int CL_API_CALL icd_EnqueueSVMMemFill(cl_command_queue q, void *p, const void *pat,
						size_t ps, size_t n, cl_uint nw, const cl_event *wl,
						cl_event *e)
{
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_OPERATION : CL_INVALID_COMMAND_QUEUE;
}

static cl_int CL_API_CALL icd_EnqueueSVMMap(cl_command_queue q, cl_bool b, cl_map_flags f, void *p,
					    size_t n, cl_uint nw, const cl_event *wl, cl_event *e)
{
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_OPERATION : CL_INVALID_COMMAND_QUEUE;
}

static cl_int CL_API_CALL icd_EnqueueSVMUnmap(cl_command_queue q, void *p, cl_uint nw,
					      const cl_event *wl, cl_event *e)
{
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_OPERATION : CL_INVALID_COMMAND_QUEUE;
}

static cl_int CL_API_CALL icd_EnqueueSVMMigrateMem(cl_command_queue q, cl_uint n, const void **p,
						   const size_t *s, cl_mem_migration_flags f,
						   cl_uint nw, const cl_event *wl, cl_event *e)
{
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_OPERATION : CL_INVALID_COMMAND_QUEUE;
}

static cl_int CL_API_CALL icd_SetDefaultDeviceCommandQueue(cl_context ctx, cl_device_id d,
							   cl_command_queue q)
{
	/* No on-device queues (CL_DEVICE_DEVICE_ENQUEUE_CAPABILITIES is 0). */
	return is(ctx, GP_KIND_CONTEXT) ? CL_INVALID_OPERATION : CL_INVALID_CONTEXT;
}

static cl_int CL_API_CALL icd_GetDeviceAndHostTimer(cl_device_id d, cl_ulong *dt, cl_ulong *ht)
{
	/* CL_PLATFORM_HOST_TIMER_RESOLUTION is not forwarded: 3.0, 4.2. */
	return is(d, GP_KIND_DEVICE) ? CL_INVALID_OPERATION : CL_INVALID_DEVICE;
}

static cl_int CL_API_CALL icd_GetHostTimer(cl_device_id d, cl_ulong *ht)
{
	return is(d, GP_KIND_DEVICE) ? CL_INVALID_OPERATION : CL_INVALID_DEVICE;
}

/* GL / EGL sharing: the platform does not list cl_khr_gl_sharing or
 * cl_khr_egl_image, so no context can be a GL context. */
static cl_mem CL_API_CALL icd_CreateFromGLBuffer(cl_context ctx, cl_mem_flags f, cl_GLuint b,
						 cl_int *err)
{
	set_err(err, CL_INVALID_CONTEXT);
	return NULL;
}

static cl_mem CL_API_CALL icd_CreateFromGLTexture(cl_context ctx, cl_mem_flags f, cl_GLenum t,
						  cl_GLint m, cl_GLuint tex, cl_int *err)
{
	set_err(err, CL_INVALID_CONTEXT);
	return NULL;
}

static cl_mem CL_API_CALL icd_CreateFromGLRenderbuffer(cl_context ctx, cl_mem_flags f, cl_GLuint r,
						       cl_int *err)
{
	set_err(err, CL_INVALID_CONTEXT);
	return NULL;
}

static cl_int CL_API_CALL icd_GetGLObjectInfo(cl_mem m, cl_gl_object_type *t, cl_GLuint *n)
{
	return CL_INVALID_GL_OBJECT;
}

static cl_int CL_API_CALL icd_GetGLTextureInfo(cl_mem m, cl_gl_texture_info p, size_t s, void *v,
					       size_t *r)
{
	return CL_INVALID_GL_OBJECT;
}

static cl_int CL_API_CALL icd_EnqueueGLObjects(cl_command_queue q, cl_uint n, const cl_mem *m,
					       cl_uint nw, const cl_event *wl, cl_event *e)
{
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_CONTEXT : CL_INVALID_COMMAND_QUEUE;
}

static cl_int CL_API_CALL icd_GetGLContextInfoKHR(const cl_context_properties *p,
						  cl_gl_context_info i, size_t s, void *v, size_t *r)
{
	return CL_INVALID_OPERATION;
}

static cl_event CL_API_CALL icd_CreateEventFromGLsyncKHR(cl_context ctx, cl_GLsync s, cl_int *err)
{
	set_err(err, CL_INVALID_CONTEXT);
	return NULL;
}

static cl_mem CL_API_CALL icd_CreateFromEGLImageKHR(cl_context ctx, CLeglDisplayKHR d,
						    CLeglImageKHR i, cl_mem_flags f,
						    const cl_egl_image_properties_khr *p, cl_int *err)
{
	set_err(err, CL_INVALID_CONTEXT);
	return NULL;
}

static cl_int CL_API_CALL icd_EnqueueEGLObjectsKHR(cl_command_queue q, cl_uint n, const cl_mem *m,
						   cl_uint nw, const cl_event *wl, cl_event *e)
{
	return is(q, GP_KIND_QUEUE) ? CL_INVALID_CONTEXT : CL_INVALID_COMMAND_QUEUE;
}

static cl_event CL_API_CALL icd_CreateEventFromEGLSyncKHR(cl_context ctx, CLeglSyncKHR s,
							  CLeglDisplayKHR d, cl_int *err)
{
	set_err(err, CL_INVALID_CONTEXT);
	return NULL;
}

static cl_int CL_API_CALL icd_CreateSubDevicesEXT(cl_device_id d, const cl_device_partition_property_ext *p,
						  cl_uint n, cl_device_id *o, cl_uint *no)
{
	return is(d, GP_KIND_DEVICE) ? CL_INVALID_VALUE : CL_INVALID_DEVICE;
}

static void *CL_API_CALL icd_GetExtensionFunctionAddressForPlatform(cl_platform_id p, const char *n);
static void *CL_API_CALL icd_GetExtensionFunctionAddress(const char *n);

/* The dispatch table every object points to (cl_khr_icd). D3D entries
 * are Windows-only and stay NULL. */
static const cl_icd_dispatch dispatch = {
	.clGetPlatformIDs = icd_GetPlatformIDs,
	.clGetPlatformInfo = icd_GetPlatformInfo,
	.clGetDeviceIDs = icd_GetDeviceIDs,
	.clGetDeviceInfo = icd_GetDeviceInfo,
	.clCreateContext = icd_CreateContext,
	.clCreateContextFromType = icd_CreateContextFromType,
	.clRetainContext = icd_RetainContext,
	.clReleaseContext = icd_ReleaseContext,
	.clGetContextInfo = icd_GetContextInfo,
	.clCreateCommandQueue = icd_CreateCommandQueue,
	.clRetainCommandQueue = icd_RetainCommandQueue,
	.clReleaseCommandQueue = icd_ReleaseCommandQueue,
	.clGetCommandQueueInfo = icd_GetCommandQueueInfo,
	.clSetCommandQueueProperty = icd_SetCommandQueueProperty,
	.clCreateBuffer = icd_CreateBuffer,
	.clCreateImage2D = icd_CreateImage2D,
	.clCreateImage3D = icd_CreateImage3D,
	.clRetainMemObject = icd_RetainMemObject,
	.clReleaseMemObject = icd_ReleaseMemObject,
	.clGetSupportedImageFormats = icd_GetSupportedImageFormats,
	.clGetMemObjectInfo = icd_GetMemObjectInfo,
	.clGetImageInfo = icd_GetImageInfo,
	.clCreateSampler = icd_CreateSampler,
	.clRetainSampler = icd_RetainSampler,
	.clReleaseSampler = icd_ReleaseSampler,
	.clGetSamplerInfo = icd_GetSamplerInfo,
	.clCreateProgramWithSource = icd_CreateProgramWithSource,
	.clCreateProgramWithBinary = icd_CreateProgramWithBinary,
	.clRetainProgram = icd_RetainProgram,
	.clReleaseProgram = icd_ReleaseProgram,
	.clBuildProgram = icd_BuildProgram,
	.clUnloadCompiler = icd_UnloadCompiler,
	.clGetProgramInfo = icd_GetProgramInfo,
	.clGetProgramBuildInfo = icd_GetProgramBuildInfo,
	.clCreateKernel = icd_CreateKernel,
	.clCreateKernelsInProgram = icd_CreateKernelsInProgram,
	.clRetainKernel = icd_RetainKernel,
	.clReleaseKernel = icd_ReleaseKernel,
	.clSetKernelArg = icd_SetKernelArg,
	.clGetKernelInfo = icd_GetKernelInfo,
	.clGetKernelWorkGroupInfo = icd_GetKernelWorkGroupInfo,
	.clWaitForEvents = icd_WaitForEvents,
	.clGetEventInfo = icd_GetEventInfo,
	.clRetainEvent = icd_RetainEvent,
	.clReleaseEvent = icd_ReleaseEvent,
	.clGetEventProfilingInfo = icd_GetEventProfilingInfo,
	.clFlush = icd_Flush,
	.clFinish = icd_Finish,
	.clEnqueueReadBuffer = icd_EnqueueReadBuffer,
	.clEnqueueWriteBuffer = icd_EnqueueWriteBuffer,
	.clEnqueueCopyBuffer = icd_EnqueueCopyBuffer,
	.clEnqueueReadImage = icd_EnqueueReadImage,
	.clEnqueueWriteImage = icd_EnqueueWriteImage,
	.clEnqueueCopyImage = icd_EnqueueCopyImage,
	.clEnqueueCopyImageToBuffer = icd_EnqueueCopyImageToBuffer,
	.clEnqueueCopyBufferToImage = icd_EnqueueCopyBufferToImage,
	.clEnqueueMapBuffer = icd_EnqueueMapBuffer,
	.clEnqueueMapImage = icd_EnqueueMapImage,
	.clEnqueueUnmapMemObject = icd_EnqueueUnmapMemObject,
	.clEnqueueNDRangeKernel = icd_EnqueueNDRangeKernel,
	.clEnqueueTask = icd_EnqueueTask,
	.clEnqueueNativeKernel = icd_EnqueueNativeKernel,
	.clEnqueueMarker = icd_EnqueueMarker,
	.clEnqueueWaitForEvents = icd_EnqueueWaitForEvents,
	.clEnqueueBarrier = icd_EnqueueBarrier,
	.clGetExtensionFunctionAddress = icd_GetExtensionFunctionAddress,
	.clCreateFromGLBuffer = icd_CreateFromGLBuffer,
	.clCreateFromGLTexture2D = icd_CreateFromGLTexture,
	.clCreateFromGLTexture3D = icd_CreateFromGLTexture,
	.clCreateFromGLRenderbuffer = icd_CreateFromGLRenderbuffer,
	.clGetGLObjectInfo = icd_GetGLObjectInfo,
	.clGetGLTextureInfo = icd_GetGLTextureInfo,
	.clEnqueueAcquireGLObjects = icd_EnqueueGLObjects,
	.clEnqueueReleaseGLObjects = icd_EnqueueGLObjects,
	.clGetGLContextInfoKHR = icd_GetGLContextInfoKHR,
	.clSetEventCallback = icd_SetEventCallback,
	.clCreateSubBuffer = icd_CreateSubBuffer,
	.clSetMemObjectDestructorCallback = icd_SetMemObjectDestructorCallback,
	.clCreateUserEvent = icd_CreateUserEvent,
	.clSetUserEventStatus = icd_SetUserEventStatus,
	.clEnqueueReadBufferRect = icd_EnqueueReadBufferRect,
	.clEnqueueWriteBufferRect = icd_EnqueueWriteBufferRect,
	.clEnqueueCopyBufferRect = icd_EnqueueCopyBufferRect,
	.clCreateSubDevicesEXT = icd_CreateSubDevicesEXT,
	.clRetainDeviceEXT = icd_RetainDevice,
	.clReleaseDeviceEXT = icd_ReleaseDevice,
	.clCreateEventFromGLsyncKHR = icd_CreateEventFromGLsyncKHR,
	.clCreateSubDevices = icd_CreateSubDevices,
	.clRetainDevice = icd_RetainDevice,
	.clReleaseDevice = icd_ReleaseDevice,
	.clCreateImage = icd_CreateImage,
	.clCreateProgramWithBuiltInKernels = icd_CreateProgramWithBuiltInKernels,
	.clCompileProgram = icd_CompileProgram,
	.clLinkProgram = icd_LinkProgram,
	.clUnloadPlatformCompiler = icd_UnloadPlatformCompiler,
	.clGetKernelArgInfo = icd_GetKernelArgInfo,
	.clEnqueueFillBuffer = icd_EnqueueFillBuffer,
	.clEnqueueFillImage = icd_EnqueueFillImage,
	.clEnqueueMigrateMemObjects = icd_EnqueueMigrateMemObjects,
	.clEnqueueMarkerWithWaitList = icd_EnqueueMarkerWithWaitList,
	.clEnqueueBarrierWithWaitList = icd_EnqueueBarrierWithWaitList,
	.clGetExtensionFunctionAddressForPlatform = icd_GetExtensionFunctionAddressForPlatform,
	.clCreateFromGLTexture = icd_CreateFromGLTexture,
	.clCreateFromEGLImageKHR = icd_CreateFromEGLImageKHR,
	.clEnqueueAcquireEGLObjectsKHR = icd_EnqueueEGLObjectsKHR,
	.clEnqueueReleaseEGLObjectsKHR = icd_EnqueueEGLObjectsKHR,
	.clCreateEventFromEGLSyncKHR = icd_CreateEventFromEGLSyncKHR,
	.clCreateCommandQueueWithProperties = icd_CreateCommandQueueWithProperties,
	.clCreatePipe = icd_CreatePipe,
	.clGetPipeInfo = icd_GetPipeInfo,
	.clSVMAlloc = icd_SVMAlloc,
	.clSVMFree = icd_SVMFree,
	.clEnqueueSVMFree = icd_EnqueueSVMFree,
	.clEnqueueSVMMemcpy = icd_EnqueueSVMMemcpy,
	.clEnqueueSVMMemFill = icd_EnqueueSVMMemFill,
	.clEnqueueSVMMap = icd_EnqueueSVMMap,
	.clEnqueueSVMUnmap = icd_EnqueueSVMUnmap,
	.clCreateSamplerWithProperties = icd_CreateSamplerWithProperties,
	.clSetKernelArgSVMPointer = icd_SetKernelArgSVMPointer,
	.clSetKernelExecInfo = icd_SetKernelExecInfo,
	.clGetKernelSubGroupInfoKHR = icd_GetKernelSubGroupInfo,
	.clCloneKernel = icd_CloneKernel,
	.clCreateProgramWithIL = icd_CreateProgramWithIL,
	.clEnqueueSVMMigrateMem = icd_EnqueueSVMMigrateMem,
	.clGetDeviceAndHostTimer = icd_GetDeviceAndHostTimer,
	.clGetHostTimer = icd_GetHostTimer,
	.clGetKernelSubGroupInfo = icd_GetKernelSubGroupInfo,
	.clSetDefaultDeviceCommandQueue = icd_SetDefaultDeviceCommandQueue,
	.clSetProgramReleaseCallback = icd_SetProgramReleaseCallback,
	.clSetProgramSpecializationConstant = icd_SetProgramSpecializationConstant,
	.clCreateBufferWithProperties = icd_CreateBufferWithProperties,
	.clCreateImageWithProperties = icd_CreateImageWithProperties,
	.clSetContextDestructorCallback = icd_SetContextDestructorCallback,
};

/* Our functions by name. Called by both entry points below: a call to
 * the exported name from inside this library would bind to the loader's
 * function of that name, which knows nothing of ours. */
static void *ext_function(const char *name)
{
	if (name && strcmp(name, "clIcdGetPlatformIDsKHR") == 0)
		return (void *)clIcdGetPlatformIDsKHR;
	/* ocl-icd asks for this one by name before it uses our dispatch table. */
	if (name && strcmp(name, "clGetPlatformInfo") == 0)
		return (void *)icd_GetPlatformInfo;
	return NULL; /* no other extension function is offered */
}

EXPORT void *CL_API_CALL clGetExtensionFunctionAddress(const char *name)
{
	return ext_function(name);
}

static void *CL_API_CALL icd_GetExtensionFunctionAddress(const char *n)
{
	return ext_function(n);
}

static void *CL_API_CALL icd_GetExtensionFunctionAddressForPlatform(cl_platform_id p, const char *n)
{
	return p == &G.platform ? ext_function(n) : NULL;
}
