/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The supervisor's side of the per-guest workers (see worker.c): starting
 * them by exec of this binary, handing connections over, reaping them
 * (a crash ends that guest's sessions only: it is logged, its usage is
 * cleared, its next connection gets a new worker), retiring idle ones and
 * stopping them all with the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pvd.h"

/* A worker's private directory: STATE_DIR/workers/NAME (mode 0700). The
 * name is checked to be a plain file name; others use the slot number. */
static char *worker_dir(struct pvd_server *srv, size_t slot)
{
	const char *name = srv->guests[slot].name;
	bool plain = name[0] && name[0] != '.';
	char *base, *dir;

	for (const char *p = name; *p && plain; p++)
		plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.';
	base = gp_strdup_printf("%s/workers", srv->state_dir);
	if (!base)
		return NULL;
	/* mkdir -p: the parents are the administrator's choice (0755), the
	 * workers' own directories are private. */
	for (char *p = base + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(base, 0755) < 0 && errno != EEXIST) {
			free(base);
			return NULL;
		}
		*p = '/';
	}
	if (mkdir(base, 0700) < 0 && errno != EEXIST) {
		free(base);
		return NULL;
	}
	dir = plain ? gp_strdup_printf("%s/%s", base, name) :
		      gp_strdup_printf("%s/slot-%zu", base, slot);
	free(base);
	if (dir && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		free(dir);
		return NULL;
	}
	return dir;
}

static int worker_spawn(struct pvd_server *srv, size_t slot)
{
	struct pvd_sup *sup = &srv->sup[slot];
	struct pvd_guest *g = &srv->guests[slot];
	char a_slot[16], a_ppid[16], a_verb[16], a_spin[24];
	char **argv;
	char *dir;
	int sv[2], r;
	pid_t pid;

	dir = worker_dir(srv, slot);
	if (!dir)
		return errno ? -errno : -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		free(dir);
		return r;
	}
	snprintf(a_slot, sizeof(a_slot), "%zu", slot);
	snprintf(a_ppid, sizeof(a_ppid), "%d", (int)getpid());
	snprintf(a_verb, sizeof(a_verb), "%d", srv->verbose > 2 ? 2 : srv->verbose);
	snprintf(a_spin, sizeof(a_spin), "%" PRIu64, srv->spin_ns);
	argv = calloc(9 + srv->cfg.devices.n, sizeof(*argv));
	if (!argv) {
		r = -ENOMEM;
		goto err_close;
	}
	argv[0] = "gpupass-pvd";
	argv[1] = PVD_WORKER_ARG;
	argv[2] = a_slot;
	argv[3] = a_ppid;
	argv[4] = a_verb;
	argv[5] = a_spin;
	argv[6] = srv->shared_ok ? "1" : "0";
	argv[7] = dir;
	for (size_t i = 0; i < srv->cfg.devices.n; i++)
		argv[8 + i] = srv->cfg.devices.v[i];
	/* A fresh count for the new worker (a retired one took no more). */
	__atomic_store_n(&g->received, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&g->idle_since_ns, pvd_now_ns(), __ATOMIC_RELAXED);
	/* Confined: its own uid, namespaces, no capabilities (sandbox.c). */
	r = pvd_sandbox_spawn(srv, slot, dir, sv[1], argv, &pid);
	free(argv);
	if (r < 0)
		goto err_close;
	close(sv[1]);
	free(dir);
	sup->pid = pid;
	sup->chan = sv[0];
	sup->sent = 0;
	gp_info(&srv->log, "guest %s: worker %d started", g->name, (int)pid);
	return 0;

err_close:
	close(sv[0]);
	close(sv[1]);
	free(dir);
	return r;
}

/* Forgets the current worker's connections; with @hangup, the guests see
 * them end now (shutdown: the worker's copies may still be open, or its
 * death not yet complete). */
static void conns_close(struct pvd_sup *sup, bool hangup)
{
	for (size_t i = 0; i < sup->n_conns; i++) {
		if (hangup)
			shutdown(sup->conns[i], SHUT_RDWR);
		close(sup->conns[i]);
	}
	sup->n_conns = 0;
	sup->untracked = 0;
	sup->all_closed_ns = 0;
	sup->cpu_mark_ns = 0;
}

/* Keeps a duplicate of a connection handed to the current worker. */
static void conns_add(struct pvd_sup *sup, int fd)
{
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	if (dup_fd >= 0 && sup->n_conns == sup->cap_conns) {
		size_t cap = sup->cap_conns ? 2 * sup->cap_conns : 8;
		int *nc = realloc(sup->conns, cap * sizeof(*nc));

		if (nc) {
			sup->conns = nc;
			sup->cap_conns = cap;
		}
	}
	if (dup_fd < 0 || sup->n_conns == sup->cap_conns) {
		/* Not followed: the hang-up rule is off for this worker. */
		if (dup_fd >= 0)
			close(dup_fd);
		sup->untracked++;
		return;
	}
	sup->conns[sup->n_conns++] = dup_fd;
	sup->all_closed_ns = 0;
}

/* The current worker leaves: no more hand-overs; it exits when its
 * sessions are gone. */
static void worker_retire(struct pvd_server *srv, size_t slot)
{
	struct pvd_sup *sup = &srv->sup[slot];

	if (sup->chan >= 0)
		close(sup->chan);
	sup->chan = -1;
	sup->retired = sup->pid;
	sup->retired_ns = pvd_now_ns();
	sup->pid = 0;
	sup->sent = 0;
	conns_close(sup, false);
}

static int worker_wait_gone(struct pvd_server *srv, size_t i);

int pvd_session_start(struct pvd_server *srv, struct pvd_guest *guest, int fd,
		      const char *refusal)
{
	size_t slot;
	struct pvd_sup *sup;
	int r;

	if (!guest)
		return pvd_session_run(srv, NULL, fd, refusal);
	slot = (size_t)(guest - srv->guests);
	sup = &srv->sup[slot];
	/* The vsock and TCP listeners hand over from their own threads. */
	pthread_mutex_lock(&srv->sup_lock);
	if (sup->pid == 0) {
		r = worker_spawn(srv, slot);
		if (r < 0) {
			pthread_mutex_unlock(&srv->sup_lock);
			gp_err(&srv->log, "guest %s: cannot start its worker: %s", guest->name,
			       strerror(-r));
			close(fd);
			return r;
		}
	}
	r = pvd_handover_send(sup->chan, (uint32_t)slot, sup->sent + 1, fd);
	if (r == -EPIPE) {
		/* Its worker died (the watchdog, a crash) and is not reaped
		 * yet: a new one takes this connection. */
		gp_info(&srv->log, "guest %s: its worker %d is gone; starting another", guest->name,
			(int)sup->pid);
		if (worker_wait_gone(srv, slot) == 0 && worker_spawn(srv, slot) == 0)
			r = pvd_handover_send(sup->chan, (uint32_t)slot, sup->sent + 1, fd);
	}
	if (r == 0) {
		sup->sent++;
		conns_add(sup, fd);
	}
	else
		gp_warn(&srv->log, "guest %s: its worker %d did not take a connection: %s",
			guest->name, (int)sup->pid, strerror(-r));
	pthread_mutex_unlock(&srv->sup_lock);
	close(fd);
	return r;
}

static void describe(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by SIG%s", sigabbrev_np(WTERMSIG(status)) ?
			 sigabbrev_np(WTERMSIG(status)) : "?");
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

/* A reaped current worker (sup_lock held): its connections end, its
 * usage is cleared, the next connection starts a new one. */
static void worker_gone(struct pvd_server *srv, size_t i, pid_t pid, int status)
{
	struct pvd_sup *sup = &srv->sup[i];
	struct pvd_guest *g = &srv->guests[i];
	uint32_t sessions = __atomic_load_n(&g->sessions, __ATOMIC_RELAXED);
	char how[64];

	describe(status, how, sizeof(how));
	/* Its guest's connections end with it (the supervisor's copies
	 * would hold them open). */
	conns_close(sup, true);
	if (sup->killed[0])
		gp_dbg(&srv->log, "guest '%s': worker %d %s (%s)", g->name, (int)pid, how, sup->killed);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && sessions == 0)
		gp_info(&srv->log, "guest '%s': worker %d %s", g->name, (int)pid, how);
	else
		gp_warn(&srv->log, "guest '%s': worker %d %s; its %u session(s) ended", g->name,
			(int)pid, how, sessions);
	worker_retire(srv, i);
	sup->retired = 0;
	sup->killed[0] = '\0';
	pvd_table_clear_usage(g);
}

/* The current worker's channel hung up: it is dead, its PID namespace
 * perhaps still being torn down (its children end first). Reaps it here
 * (sup_lock held, at most 5 s) so that the connection in hand can go to
 * a new worker rather than be dropped. */
static int worker_wait_gone(struct pvd_server *srv, size_t i)
{
	struct pvd_sup *sup = &srv->sup[i];
	pid_t pid = sup->pid;
	int status;

	if (pid <= 0)
		return -ESRCH;
	kill(pid, SIGKILL);
	for (int k = 0; k < 1000; k++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			worker_gone(srv, i, pid, status);
			return 0;
		}
		if (r < 0 && errno != EINTR)
			return -errno;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

void pvd_workers_reap(struct pvd_server *srv)
{
	size_t n = pvd_n_guests(srv);
	int status;
	pid_t pid;

	pthread_mutex_lock(&srv->sup_lock);
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		char how[64];
		bool found = false;

		describe(status, how, sizeof(how));
		for (size_t i = 0; i < n && !found; i++) {
			struct pvd_sup *sup = &srv->sup[i];
			struct pvd_guest *g = &srv->guests[i];

			if (sup->pid == pid) {
				found = true;
				worker_gone(srv, i, pid, status);
			} else if (sup->retired == pid) {
				found = true;
				sup->retired = 0;
				if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
					gp_info(&srv->log, "guest '%s': idle worker %d left", g->name, (int)pid);
				else
					gp_warn(&srv->log, "guest '%s': idle worker %d %s", g->name, (int)pid, how);
			}
		}
		if (!found)
			gp_dbg(&srv->log, "child %d %s", (int)pid, how);
	}
	pthread_mutex_unlock(&srv->sup_lock);
}

void pvd_workers_idle(struct pvd_server *srv, uint64_t grace_ns)
{
	size_t n = pvd_n_guests(srv);
	uint64_t now = pvd_now_ns();

	pthread_mutex_lock(&srv->sup_lock);
	for (size_t i = 0; i < n; i++) {
		struct pvd_sup *sup = &srv->sup[i];
		struct pvd_guest *g = &srv->guests[i];

		if (sup->pid == 0 || __atomic_load_n(&g->conns, __ATOMIC_RELAXED) != 0 ||
		    __atomic_load_n(&g->received, __ATOMIC_ACQUIRE) != sup->sent ||
		    now - __atomic_load_n(&g->idle_since_ns, __ATOMIC_RELAXED) < grace_ns)
			continue;
		gp_dbg(&srv->log, "guest %s: worker %d idle, told to leave", g->name, (int)sup->pid);
		worker_retire(srv, i);
	}
	pthread_mutex_unlock(&srv->sup_lock);
}

/* The worker's CPU time (all threads) in ns from /proc/PID/stat, or
 * UINT64_MAX. */
static uint64_t cpu_ns(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	long tck = sysconf(_SC_CLK_TCK);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return UINT64_MAX;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return UINT64_MAX;
	buf[n] = '\0';
	/* The name may hold anything: the fields start after the last ')'.
	 * utime and stime are fields 14 and 15 (proc(5)); state is 3. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2 ||
	    tck <= 0)
		return UINT64_MAX;
	return (ut + st) * (1000000000ull / (uint64_t)tck);
}

static void format_ms(uint64_t ms, char *buf, size_t len)
{
	if (ms % 60000 == 0)
		snprintf(buf, len, "%" PRIu64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ms);
}

/* Under sup_lock: SIGKILL to the current worker, for @why (logged once,
 * with the guest's name); its guest's connections end now. */
static void watchdog_kill(struct pvd_server *srv, size_t slot, const char *why, bool gone)
{
	struct pvd_sup *sup = &srv->sup[slot];
	struct pvd_guest *g = &srv->guests[slot];
	uint32_t sessions = __atomic_load_n(&g->sessions, __ATOMIC_RELAXED);

	if (sup->killed[0])
		return; /* told already, not reaped yet */
	kill(sup->pid, SIGKILL);
	snprintf(sup->killed, sizeof(sup->killed), "%s", why);
	if (gone)
		gp_warn(&srv->log, "guest '%s': %s: worker %d ended (%u session(s) left behind)",
			g->name, why, (int)sup->pid, sessions);
	else
		gp_warn(&srv->log, "guest '%s': %s: worker %d ended; its %u session(s) get "
			"CL_OUT_OF_RESOURCES", g->name, why, (int)sup->pid, sessions);
	conns_close(sup, true);
}

/*
 * What the watchdog trusts. The command start and name come from the
 * worker's slot of the shared table; on a CPU platform the guest's kernels
 * run as native code in the worker and can write that slot, so a worker
 * the guest owns can hide a runaway command from command_timeout while its
 * guest is connected (it still gets only its fair share where the scheduler
 * is honest: the other workers' schedulers read its device time from the
 * same table, which it can also forge). What it cannot forge: its guest's
 * connections (the supervisor's own duplicates, polled for hang-up) and its
 * CPU time (/proc/PID/stat, kept by the kernel). So once every connection
 * of its guest is gone, a worker that still reports sessions or a command,
 * or burns CPU, is ended within PVD_HANGUP_GRACE_MS + one sample; and a
 * retired worker that does not leave is ended too. What it can still evade:
 * command_timeout while a connection is live (bounded only by the guest
 * staying connected), and memory it holds while idle until its retirement.
 * A cgroup per worker (CPUQuota, MemoryMax) bounds what a compromised
 * worker can take; that is the operator's (README, security model).
 */
void pvd_workers_watch(struct pvd_server *srv)
{
	size_t n = pvd_n_guests(srv);
	uint64_t now = pvd_now_ns();

	if (getenv("GPUPASS_PVD_TEST_NO_WATCHDOG"))
		return; /* tests only: shows what happens without it */
	pthread_mutex_lock(&srv->sup_lock);
	for (size_t i = 0; i < n; i++) {
		struct pvd_sup *sup = &srv->sup[i];
		struct pvd_guest *g = &srv->guests[i];
		char what[PVD_CMD_WHAT_MAX], limit[32], why[256];
		uint64_t start, tmo;

		if (sup->retired && sup->retired_ns &&
		    now - sup->retired_ns > 2ull * PVD_HANGUP_GRACE_MS * 1000000ull) {
			gp_warn(&srv->log, "guest '%s': retired worker %d did not leave: ended", g->name,
				(int)sup->retired);
			kill(sup->retired, SIGKILL);
			sup->retired_ns = 0; /* once */
		}
		if (!sup->pid || sup->killed[0])
			continue;
		tmo = __atomic_load_n(&g->command_timeout_ms, __ATOMIC_RELAXED);
		start = pvd_table_get_cmd(g, what);
		if (start && now > start && tmo && (now - start) / 1000000ull > tmo) {
			format_ms(tmo, limit, sizeof(limit));
			snprintf(why, sizeof(why), "%s ran longer than command_timeout %s",
				 what[0] ? what : "a command", limit);
			watchdog_kill(srv, i, why, false);
			continue;
		}
		/* Hang-ups of the guest's connections. */
		for (size_t k = 0; k < sup->n_conns;) {
			struct pollfd p = { .fd = sup->conns[k], .events = POLLRDHUP };

			if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
				close(sup->conns[k]);
				sup->conns[k] = sup->conns[--sup->n_conns];
				if (sup->n_conns == 0 && !sup->untracked)
					sup->all_closed_ns = now;
				continue;
			}
			k++;
		}
		if (!sup->all_closed_ns || now - sup->all_closed_ns < PVD_HANGUP_GRACE_MS * 1000000ull)
			continue;
		if (__atomic_load_n(&g->conns, __ATOMIC_RELAXED) != 0 || start) {
			snprintf(why, sizeof(why), "%s still ran %d ms after its last connection closed",
				 start && what[0] ? what : "its work", PVD_HANGUP_GRACE_MS);
			watchdog_kill(srv, i, why, true);
			continue;
		}
		/* Says it is idle: its CPU time says whether it is. */
		if (!sup->cpu_mark_ns || now - sup->cpu_mark_ns >= 500000000ull) {
			uint64_t cpu = cpu_ns(sup->pid);

			if (sup->cpu_mark_ns && cpu != UINT64_MAX && sup->cpu_mark != UINT64_MAX &&
			    cpu - sup->cpu_mark > (now - sup->cpu_mark_ns) / 2) {
				snprintf(why, sizeof(why), "its worker used %" PRIu64 " ms of CPU in %" PRIu64
					 " ms with no connection", (uint64_t)((cpu - sup->cpu_mark) / 1000000u),
					 (uint64_t)((now - sup->cpu_mark_ns) / 1000000u));
				watchdog_kill(srv, i, why, true);
				continue;
			}
			sup->cpu_mark = cpu;
			sup->cpu_mark_ns = now;
		}
	}
	pthread_mutex_unlock(&srv->sup_lock);
}

void pvd_workers_stop(struct pvd_server *srv, int timeout_ms)
{
	struct timespec step = { 0, 10000000 };
	size_t n = pvd_n_guests(srv);
	bool left = true;

	pthread_mutex_lock(&srv->sup_lock);
	for (size_t i = 0; i < n; i++) {
		if (srv->sup[i].pid)
			kill(srv->sup[i].pid, SIGTERM);
		if (srv->sup[i].retired)
			kill(srv->sup[i].retired, SIGTERM);
	}
	pthread_mutex_unlock(&srv->sup_lock);
	for (int waited = 0; left; waited += 10) {
		pvd_workers_reap(srv);
		left = false;
		pthread_mutex_lock(&srv->sup_lock);
		for (size_t i = 0; i < n; i++)
			left |= srv->sup[i].pid || srv->sup[i].retired;
		if (left && waited >= timeout_ms) {
			for (size_t i = 0; i < n; i++) {
				if (srv->sup[i].pid)
					kill(srv->sup[i].pid, SIGKILL);
				if (srv->sup[i].retired)
					kill(srv->sup[i].retired, SIGKILL);
			}
			timeout_ms = INT32_MAX;
		}
		pthread_mutex_unlock(&srv->sup_lock);
		if (!left)
			break;
		nanosleep(&step, NULL);
	}
	pthread_mutex_lock(&srv->sup_lock);
	for (size_t i = 0; i < n; i++) {
		conns_close(&srv->sup[i], true);
		free(srv->sup[i].conns);
		srv->sup[i].conns = NULL;
		srv->sup[i].cap_conns = 0;
	}
	pthread_mutex_unlock(&srv->sup_lock);
}
