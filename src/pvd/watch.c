/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's half of the watchdog (issue 10): the device commands it
 * runs for its guest, oldest first, and the oldest one's start and name
 * published in the guest's slot of the shared table, where the supervisor
 * (supervisor.c, pvd_workers_watch) compares it with command_timeout.
 *
 * An enqueued command (kernel, copy, fill) counts from the moment the
 * worker's loop sees it run (pvd_watch_tick asks the platform for the
 * status of queued commands every PVD_WATCH_TICK_MS while there are any)
 * to its completion: a command queued behind others is not late. (A
 * CL_RUNNING callback per command cost a wake-up of the platform's
 * callback thread on every launch, and never comes for a command that
 * fails before it runs.) A blocking transfer (read, write, map)
 * counts from the call to its return. Waits (clFinish, clWaitForEvents) are
 * not commands of their own: what they wait for is watched, and a wait on a
 * guest's user event only holds that guest's session (its hang-up then
 * ends the worker, see pvd_workers_watch).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvd.h"
#include "quota.h"

struct pvd_watch {
	pthread_mutex_t lock;
	struct pvd_cmd head;   /* circular list of commands running, oldest first */
	struct pvd_cmd queued; /* enqueued commands not seen running yet */
	struct pvd_guest *g;
	const struct pvd_cmd *published;
};

int pvd_watch_init(struct pvd_server *srv, struct pvd_guest *g)
{
	struct pvd_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	w->head.next = w->head.prev = &w->head;
	w->queued.next = w->queued.prev = &w->queued;
	w->g = g;
	srv->watch = w;
	pvd_table_set_cmd(g, 0, "");
	return 0;
}

void pvd_watch_free(struct pvd_server *srv)
{
	/* Records of commands still in flight belong to their callbacks,
	 * which may still run: the list head stays valid while they do, so
	 * this is called only once no session is left (worker exit). */
	if (!srv->watch)
		return;
	pthread_mutex_destroy(&srv->watch->lock);
	free(srv->watch);
	srv->watch = NULL;
}

/* Under w->lock: the table shows the list's head. */
static void publish(struct pvd_watch *w)
{
	const struct pvd_cmd *first = w->head.next == &w->head ? NULL : w->head.next;

	if (first == w->published)
		return;
	w->published = first;
	pvd_table_set_cmd(w->g, first ? first->start_ns : 0, first ? first->what : "");
}

static void list_add(struct pvd_watch *w, struct pvd_cmd *c)
{
	pthread_mutex_lock(&w->lock);
	/* Monotonic start times, appended under the lock: the list stays
	 * sorted, its head is the oldest. */
	c->start_ns = pvd_now_ns();
	c->prev = w->head.prev;
	c->next = &w->head;
	w->head.prev->next = c;
	w->head.prev = c;
	c->listed = true;
	publish(w);
	pthread_mutex_unlock(&w->lock);
}

static void list_del(struct pvd_watch *w, struct pvd_cmd *c)
{
	pthread_mutex_lock(&w->lock);
	if (c->listed) {
		c->prev->next = c->next;
		c->next->prev = c->prev;
		c->listed = false;
		publish(w);
	}
	pthread_mutex_unlock(&w->lock);
}

void pvd_cmd_begin(struct pvd_server *srv, struct pvd_cmd *c, const char *fmt, ...)
{
	va_list ap;

	memset(c, 0, sizeof(*c));
	if (!srv->watch)
		return;
	va_start(ap, fmt);
	vsnprintf(c->what, sizeof(c->what), fmt, ap);
	va_end(ap);
	list_add(srv->watch, c);
}

void pvd_cmd_end(struct pvd_server *srv, struct pvd_cmd *c)
{
	if (srv->watch)
		list_del(srv->watch, c);
}

/* An enqueued command's record: its completion's, and the tick's while
 * it looks at it. */
struct event_cmd {
	struct pvd_cmd c;
	cl_event ev;                 /* kept alive by pvd_on_complete's record */
	struct pvd_watch *w;
	struct pvd_guest *kernel_of; /* a kernel: busy count and device time */
	int refs;                    /* atomic */
};

static void event_put(struct event_cmd *e)
{
	if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(e);
}

/* Under w->lock: @c out of whichever list holds it. */
static void unlist(struct pvd_watch *w, struct pvd_cmd *c)
{
	if (!c->listed)
		return;
	c->prev->next = c->next;
	c->next->prev = c->prev;
	c->listed = false;
	publish(w);
}

static void CL_CALLBACK on_complete(cl_event ev, cl_int status, void *data)
{
	struct event_cmd *e = data;

	if (e->w) {
		pthread_mutex_lock(&e->w->lock);
		e->c.done = true;
		unlist(e->w, &e->c);
		pthread_mutex_unlock(&e->w->lock);
	}
	if (e->kernel_of) {
		cl_ulong t0 = 0, t1 = 0;

		if (status == CL_COMPLETE &&
		    clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof(t0), &t0, NULL) == CL_SUCCESS &&
		    clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof(t1), &t1, NULL) == CL_SUCCESS &&
		    t1 > t0)
			pvd_sched_account(e->kernel_of, t1 - t0);
		__atomic_sub_fetch(&e->kernel_of->busy, 1, __ATOMIC_RELAXED);
		/* The launch's record (quota.c), taken by op_ndrange. */
		pvd_quota_put_record(e->kernel_of, PVD_RECORD_BYTES, PVD_CHARGE_RECORD);
	}
	event_put(e);
}

int pvd_watch_event(struct pvd_server *srv, struct pvd_guest *kernel_of, cl_event ev,
		    const char *what)
{
	struct pvd_watch *w = srv->watch;
	struct event_cmd *e;

	if (!w && !kernel_of)
		return 0;
	e = calloc(1, sizeof(*e));
	if (!e) {
		if (kernel_of)
			pvd_quota_put_record(kernel_of, PVD_RECORD_BYTES, PVD_CHARGE_RECORD);
		return -ENOMEM;
	}
	e->w = w;
	e->ev = ev;
	e->kernel_of = kernel_of;
	e->refs = 1;
	snprintf(e->c.what, sizeof(e->c.what), "%s", what);
	if (kernel_of)
		__atomic_add_fetch(&kernel_of->busy, 1, __ATOMIC_RELAXED);
	if (w) {
		/* Queued until the tick sees it run (start_ns 0 till then). */
		pthread_mutex_lock(&w->lock);
		e->c.prev = w->queued.prev;
		e->c.next = &w->queued;
		w->queued.prev->next = &e->c;
		w->queued.prev = &e->c;
		e->c.listed = true;
		pthread_mutex_unlock(&w->lock);
	}
	if (pvd_on_complete(ev, on_complete, e) < 0) {
		/* Nothing will complete it: out of the lists for good. */
		if (w) {
			pthread_mutex_lock(&w->lock);
			e->c.done = true;
			unlist(w, &e->c);
			pthread_mutex_unlock(&w->lock);
		}
		if (kernel_of) {
			__atomic_sub_fetch(&kernel_of->busy, 1, __ATOMIC_RELAXED);
			pvd_quota_put_record(kernel_of, PVD_RECORD_BYTES, PVD_CHARGE_RECORD);
		}
		event_put(e);
		return -EINVAL;
	}
	return 0;
}

bool pvd_watch_tick(struct pvd_server *srv)
{
	struct pvd_watch *w = srv->watch;
	struct event_cmd **v = NULL;
	size_t n = 0, cap = 0;
	bool more;

	if (!w)
		return false;
	pthread_mutex_lock(&w->lock);
	for (struct pvd_cmd *c = w->queued.next; c != &w->queued; c = c->next)
		cap++;
	if (cap)
		v = malloc(cap * sizeof(*v));
	for (struct pvd_cmd *c = w->queued.next; v && c != &w->queued; c = c->next) {
		struct event_cmd *e = (struct event_cmd *)c;

		__atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
		v[n++] = e;
	}
	pthread_mutex_unlock(&w->lock);
	/* The platform is asked without w->lock: it may hold the event's
	 * lock while it calls on_complete, which takes w->lock. */
	for (size_t i = 0; i < n; i++) {
		struct event_cmd *e = v[i];
		cl_int st = CL_QUEUED;

		if (clGetEventInfo(e->ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st, NULL) ==
			    CL_SUCCESS &&
		    st == CL_RUNNING) {
			pthread_mutex_lock(&w->lock);
			if (!e->c.done && e->c.listed && e->c.start_ns == 0) {
				unlist(w, &e->c);
				e->c.start_ns = pvd_now_ns();
				e->c.prev = w->head.prev;
				e->c.next = &w->head;
				w->head.prev->next = &e->c;
				w->head.prev = &e->c;
				e->c.listed = true;
				publish(w);
			}
			pthread_mutex_unlock(&w->lock);
		}
		event_put(e);
	}
	free(v);
	pthread_mutex_lock(&w->lock);
	more = w->queued.next != &w->queued;
	pthread_mutex_unlock(&w->lock);
	return more;
}
