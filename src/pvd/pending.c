/* SPDX-License-Identifier: Apache-2.0 */
/* The cap on connections the server holds before they are a served guest's. */
#include "pvd.h"

static const char *const kind_name[PVD_PENDING_KINDS] = {
	[PVD_PENDING_UNIX] = "unix listeners",
	[PVD_PENDING_VSOCK] = "vsock listeners",
	[PVD_PENDING_TCP] = "tcp listeners",
	[PVD_PENDING_REFUSED] = "refusals beyond max_sessions",
};

#define LOG_EVERY_NS 5000000000ull

uint32_t pvd_max_pending(const struct pvd_server *srv)
{
	return srv->cfg.max_pending ? srv->cfg.max_pending : GP_PVD_MAX_PENDING_DEFAULT;
}

int pvd_hello_timeout_ms(const struct pvd_server *srv)
{
	return (int)(srv->cfg.hello_timeout_ms ? srv->cfg.hello_timeout_ms
					       : GP_PVD_HELLO_TIMEOUT_DEFAULT_MS);
}

bool pvd_pending_enter(struct pvd_server *srv, unsigned kind, uint32_t max, const char *who)
{
	uint32_t n = __atomic_load_n(&srv->pending[kind], __ATOMIC_RELAXED);
	uint64_t now, last, dropped;

	do {
		if (n >= max)
			goto full;
	} while (!__atomic_compare_exchange_n(&srv->pending[kind], &n, n + 1, false,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return true;
full:
	/* A flood must not flood the log too: one line per kind every 5 s,
	 * with how many were closed since. */
	dropped = __atomic_add_fetch(&srv->pending_dropped[kind], 1, __ATOMIC_RELAXED);
	now = pvd_now_ns();
	last = __atomic_load_n(&srv->pending_logged_ns[kind], __ATOMIC_RELAXED);
	if ((last == 0 || now - last >= LOG_EVERY_NS) &&
	    __atomic_compare_exchange_n(&srv->pending_logged_ns[kind], &last, now, false,
					__ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		__atomic_store_n(&srv->pending_dropped[kind], 0, __ATOMIC_RELAXED);
		gp_warn(&srv->log, "%s: %u connection(s) held already (%s = %u): closed a new one "
			"from %s at once (%llu closed so since the last message); if these are real "
			"guests, raise the limit",
			kind_name[kind], (unsigned)n,
			kind == PVD_PENDING_REFUSED ? "at most" : "[server] max_pending", (unsigned)max,
			who ? who : "?", (unsigned long long)dropped);
	}
	return false;
}

void pvd_pending_leave(struct pvd_server *srv, unsigned kind)
{
	__atomic_sub_fetch(&srv->pending[kind], 1, __ATOMIC_RELAXED);
}
