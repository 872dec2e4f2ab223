/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Completion callbacks that also come for failed commands.
 *
 * OpenCL 3.0 (5.11) calls a CL_COMPLETE callback when its command
 * completes or is abnormally terminated. PoCL 3.1 never calls it for a
 * command that failed (a user event set to an error fails every command
 * behind it, at once): measured, see tests/pv/pv_nonblock.c. Every record
 * the server keeps until a command ends (quota records, queued write
 * copies, the watchdog's entries, wakers) would stay forever, and a guest
 * could pile them up at will.
 *
 * So each callback is registered through pvd_on_complete, which keeps the
 * event (retained) in a list. The worker's loop (pvd_done_poll) looks at
 * the pending events' status after a user event was set to an error (or
 * once a second): a failed one whose callback the platform will not call
 * (found once, by a probe on a user event) gets its function called from
 * there, once. Events whose callback ran are released from the loop too,
 * never from inside a callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "pvd.h"

struct done_rec {
	struct done_rec *prev, *next;
	cl_event ev; /* retained until the loop releases it */
	/* Retained with it, released after it: PoCL's clReleaseEvent of a
	 * command's event touches its queue (and device), which the guest
	 * may have released meanwhile (a sub-device's: a crash, seen). */
	cl_command_queue q;
	cl_device_id dev; /* the queue's: PoCL's queue does not keep it */
	cl_context ctx;   /* a user event's (no queue) */
	pvd_done_fn fn;
	void *data;
	int fired; /* atomic: 0 until the callback or the sweep claims it */
};

enum { MODE_UNKNOWN, MODE_CALLS, MODE_NEVER };

static struct {
	pthread_mutex_t lock;
	struct done_rec pending; /* circular, with a head */
	struct done_rec *graves; /* fired: to release (singly linked) */
	size_t ngraves;
	int mode;       /* atomic MODE_* */
	int want_sweep; /* atomic */
	int wake_fd;    /* the worker loop's wake pipe, or -1 */
	uint64_t last_sweep_ns;
	int probe_called; /* atomic; static: a late call is harmless */
} D = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.pending = { &D.pending, &D.pending, NULL, NULL, NULL, 0 },
	.wake_fd = -1,
};

/* Fired records go to the graveyard in batches: wake the loop when it has
 * a few hundred, so retained events do not pile up between its ticks. */
#define GRAVES_WAKE 256

static void wake_loop(void)
{
	char c = 'd';

	if (D.wake_fd >= 0 && write(D.wake_fd, &c, 1) < 0) {
		/* full: the loop is awake anyway */
	}
}

static void unlink_rec(struct done_rec *r)
{
	r->prev->next = r->next;
	r->next->prev = r->prev;
	r->prev = r->next = r;
}

/* Under D.lock: @r (fired) to the graveyard. */
static bool bury(struct done_rec *r)
{
	unlink_rec(r);
	r->next = D.graves;
	D.graves = r;
	return ++D.ngraves == GRAVES_WAKE;
}

static void release_rec(struct done_rec *r)
{
	clReleaseEvent(r->ev);
	if (r->q)
		clReleaseCommandQueue(r->q);
	if (r->ctx)
		clReleaseContext(r->ctx);
	if (r->dev)
		clReleaseDevice(r->dev);
	free(r);
}

static void CL_CALLBACK trampoline(cl_event ev, cl_int status, void *data)
{
	struct done_rec *r = data;
	bool wake;

	if (status < 0)
		__atomic_store_n(&D.mode, MODE_CALLS, __ATOMIC_RELEASE);
	if (__atomic_exchange_n(&r->fired, 1, __ATOMIC_ACQ_REL))
		return; /* the sweep had it (a platform that calls late) */
	r->fn(ev, status, r->data);
	pthread_mutex_lock(&D.lock);
	wake = bury(r);
	pthread_mutex_unlock(&D.lock);
	if (wake)
		wake_loop();
}

void pvd_done_init(int wake_fd)
{
	D.wake_fd = wake_fd;
}

int pvd_on_complete(cl_event ev, pvd_done_fn fn, void *data)
{
	struct done_rec *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	if (clGetEventInfo(ev, CL_EVENT_COMMAND_QUEUE, sizeof(r->q), &r->q, NULL) != CL_SUCCESS)
		r->q = NULL;
	if (!r->q &&
	    clGetEventInfo(ev, CL_EVENT_CONTEXT, sizeof(r->ctx), &r->ctx, NULL) != CL_SUCCESS)
		r->ctx = NULL;
	if (r->q && clGetCommandQueueInfo(r->q, CL_QUEUE_DEVICE, sizeof(r->dev), &r->dev, NULL) !=
			    CL_SUCCESS)
		r->dev = NULL;
	if (r->dev)
		clRetainDevice(r->dev);
	if ((r->q && clRetainCommandQueue(r->q) != CL_SUCCESS) ||
	    (r->ctx && clRetainContext(r->ctx) != CL_SUCCESS)) {
		if (r->dev)
			clReleaseDevice(r->dev);
		free(r);
		return -EINVAL;
	}
	if (clRetainEvent(ev) != CL_SUCCESS) {
		if (r->q)
			clReleaseCommandQueue(r->q);
		if (r->ctx)
			clReleaseContext(r->ctx);
		if (r->dev)
			clReleaseDevice(r->dev);
		free(r);
		return -EINVAL;
	}
	r->ev = ev;
	r->fn = fn;
	r->data = data;
	pthread_mutex_lock(&D.lock);
	r->prev = D.pending.prev;
	r->next = &D.pending;
	D.pending.prev->next = r;
	D.pending.prev = r;
	pthread_mutex_unlock(&D.lock);
	if (clSetEventCallback(ev, CL_COMPLETE, trampoline, r) != CL_SUCCESS) {
		pthread_mutex_lock(&D.lock);
		unlink_rec(r);
		pthread_mutex_unlock(&D.lock);
		release_rec(r);
		return -EINVAL;
	}
	return 0;
}

void pvd_done_failed(void)
{
	__atomic_store_n(&D.want_sweep, 1, __ATOMIC_RELEASE);
	wake_loop();
}

static void CL_CALLBACK probe_cb(cl_event ev, cl_int status, void *data)
{
	(void)ev;
	(void)status;
	(void)data;
	__atomic_store_n(&D.probe_called, 1, __ATOMIC_RELEASE);
}

/* Does the platform call CL_COMPLETE callbacks of a failed event? Asked
 * once, of a user event of @ev's context set to an error (50 ms for a
 * platform that calls them from another thread). */
static int probe(cl_event ev)
{
	cl_context ctx = NULL;
	cl_event u;
	cl_int err;

	if (clGetEventInfo(ev, CL_EVENT_CONTEXT, sizeof(ctx), &ctx, NULL) != CL_SUCCESS)
		return MODE_UNKNOWN;
	u = clCreateUserEvent(ctx, &err);
	if (!u)
		return MODE_UNKNOWN;
	if (clSetEventCallback(u, CL_COMPLETE, probe_cb, NULL) == CL_SUCCESS &&
	    clSetUserEventStatus(u, -1) == CL_SUCCESS) {
		for (int i = 0; i < 50 && !__atomic_load_n(&D.probe_called, __ATOMIC_ACQUIRE); i++) {
			struct timespec ms = { 0, 1000000 };

			nanosleep(&ms, NULL);
		}
		err = __atomic_load_n(&D.probe_called, __ATOMIC_ACQUIRE) ? MODE_CALLS : MODE_NEVER;
	} else {
		err = MODE_UNKNOWN;
	}
	clReleaseEvent(u);
	return err;
}

/* Calls the functions of failed events the platform will not call. Only
 * the loop's thread sweeps and frees records (pvd_done_poll), so the
 * pending ones it saw stay valid while it looks at them. A status query
 * takes the event's own lock, which the platform may hold while it calls
 * the trampoline (which takes D.lock): it is asked without D.lock. */
static void sweep(void)
{
	int mode = __atomic_load_n(&D.mode, __ATOMIC_ACQUIRE);
	struct done_rec **v;
	size_t n = 0, cap = 0;

	if (mode == MODE_CALLS)
		return;
	pthread_mutex_lock(&D.lock);
	for (struct done_rec *r = D.pending.next; r != &D.pending; r = r->next)
		cap++;
	v = cap ? malloc(cap * sizeof(*v)) : NULL;
	for (struct done_rec *r = D.pending.next; v && r != &D.pending; r = r->next)
		v[n++] = r;
	pthread_mutex_unlock(&D.lock);
	for (size_t i = 0; i < n && mode != MODE_CALLS; i++) {
		struct done_rec *r = v[i];
		cl_int st = CL_QUEUED;

		if (__atomic_load_n(&r->fired, __ATOMIC_ACQUIRE) ||
		    clGetEventInfo(r->ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st, NULL) !=
			    CL_SUCCESS ||
		    st >= 0)
			continue;
		if (mode == MODE_UNKNOWN) {
			mode = probe(r->ev);
			__atomic_store_n(&D.mode, mode, __ATOMIC_RELEASE);
		}
		if (mode != MODE_NEVER || __atomic_exchange_n(&r->fired, 1, __ATOMIC_ACQ_REL))
			continue;
		r->fn(r->ev, st, r->data);
		pthread_mutex_lock(&D.lock);
		bury(r);
		pthread_mutex_unlock(&D.lock);
	}
	free(v);
}

void pvd_done_poll(bool force)
{
	struct done_rec *g;
	uint64_t now = pvd_now_ns();

	if (force || __atomic_exchange_n(&D.want_sweep, 0, __ATOMIC_ACQ_REL) ||
	    now - D.last_sweep_ns > 1000000000ull) {
		D.last_sweep_ns = now;
		sweep();
	}
	pthread_mutex_lock(&D.lock);
	g = D.graves;
	D.graves = NULL;
	D.ngraves = 0;
	pthread_mutex_unlock(&D.lock);
	while (g) {
		struct done_rec *next = g->next;

		release_rec(g);
		g = next;
	}
}

size_t pvd_done_pending(void)
{
	size_t n = 0;

	pthread_mutex_lock(&D.lock);
	for (struct done_rec *r = D.pending.next; r != &D.pending; r = r->next)
		n++;
	pthread_mutex_unlock(&D.lock);
	return n;
}
