/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fair sharing of device time. Each guest has a virtual time: the device
 * time its kernels used (from the profiling data of their events) divided
 * by its weight. Before a guest launches a kernel, if its virtual time is
 * ahead of the slowest other busy guest by more than a window, it waits a
 * little: a guest that floods the device is held back, so another guest's
 * short jobs get through, and over time device time follows the weights.
 * A guest that comes back from idle starts at the others' virtual time, so
 * it cannot claim the time it did not use, nor owe the time it used while
 * it had the device to itself.
 */
#include <time.h>

#include "pvd.h"

/* How far ahead (ns of weighted device time) a guest may run, and how long
 * it may be held back per launch (it is never starved either). */
#define WINDOW_NS 1000000ull
#define MAX_HOLD_NS 200000000ull
#define HOLD_STEP_NS 200000L
/* A guest competes while it has kernels in flight or launched lately (a
 * guest that waits for its results between launches still competes). */
#define ACTIVE_NS 20000000ull

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void pvd_sched_account(struct pvd_guest *g, uint64_t ns)
{
	/* Finishing a kernel is activity too: a guest that waits for its
	 * results before it launches again still competes. */
	uint32_t w = __atomic_load_n(&g->weight, __ATOMIC_RELAXED);

	__atomic_store_n(&g->last_launch_ns, now_ns(), __ATOMIC_RELAXED);
	__atomic_add_fetch(&g->device_ns, ns, __ATOMIC_RELAXED);
	__atomic_add_fetch(&g->vtime_ns, ns / (w ? w : 1), __ATOMIC_RELAXED);
}

static bool competing(struct pvd_guest *g, uint64_t now)
{
	return __atomic_load_n(&g->busy, __ATOMIC_RELAXED) > 0 ||
	       now - __atomic_load_n(&g->last_launch_ns, __ATOMIC_RELAXED) < ACTIVE_NS;
}


/* A guest's virtual time with its running command counted so far: a
 * kernel's device time is known only when it completes, and one that
 * runs for seconds (or never ends, until the watchdog ends it) would
 * otherwise look like a guest that used nothing, and every other guest
 * would be held back behind it (measured: 316 ms per short job beside an
 * endless kernel). The oldest unfinished command is what the watchdog
 * follows (watch.c). */
static uint64_t vtime_now(struct pvd_guest *o, uint64_t now)
{
	uint64_t v = __atomic_load_n(&o->vtime_ns, __ATOMIC_RELAXED);
	uint64_t start = __atomic_load_n(&o->cmd_start_ns, __ATOMIC_RELAXED);
	uint32_t w = __atomic_load_n(&o->weight, __ATOMIC_RELAXED);

	if (start && now > start)
		v += (now - start) / (w ? w : 1);
	return v;
}

/* The smallest virtual time among the other guests with kernels in flight. */
static bool min_other(struct pvd_server *srv, struct pvd_guest *g, uint64_t *out)
{
	uint64_t now = now_ns();
	bool any = false;

	size_t n = pvd_n_guests(srv);

	for (size_t i = 0; i < n; i++) {
		struct pvd_guest *o = &srv->guests[i];
		uint64_t v;

		if (o == g || !competing(o, now))
			continue;
		v = vtime_now(o, now);
		if (!any || v < *out)
			*out = v;
		any = true;
	}
	return any;
}

void pvd_sched_before_launch(struct pvd_server *srv, struct pvd_guest *g)
{
	struct timespec step = { 0, HOLD_STEP_NS };
	uint64_t other = 0, held = 0, mine, now = now_ns();
	bool was_idle = !competing(g, now);

	__atomic_store_n(&g->last_launch_ns, now, __ATOMIC_RELAXED);
	if (pvd_n_guests(srv) < 2 || !min_other(srv, g, &other))
		return;
	mine = __atomic_load_n(&g->vtime_ns, __ATOMIC_RELAXED);
	if (was_idle && mine != other) {
		/* Back from idle: no credit for the time it did not use, and
		 * no debt for time it used while no one else wanted the
		 * device (a guest that ran alone would otherwise be held back
		 * for all of it as soon as another one came: measured, a
		 * short job waited 280 ms behind a 64-kernel batch). */
		__atomic_store_n(&g->vtime_ns, other, __ATOMIC_RELAXED);
		return;
	}
	/* Ahead of its share: no new kernel until its own have finished (and
	 * been counted) and the others have caught up. Kernels of different
	 * guests overlap on the device, so waiting for the count alone
	 * lets the guest that is ahead keep its queue full. */
	while (((mine > other + WINDOW_NS) ||
		(mine > other && __atomic_load_n(&g->busy, __ATOMIC_RELAXED) > 0)) &&
	       held < MAX_HOLD_NS && !__atomic_load_n(&srv->stop, __ATOMIC_RELAXED)) {
		nanosleep(&step, NULL);
		held += HOLD_STEP_NS;
		if (!min_other(srv, g, &other))
			break;
		mine = __atomic_load_n(&g->vtime_ns, __ATOMIC_RELAXED);
	}
}
