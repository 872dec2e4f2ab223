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

/* The current worker leaves: no more hand-overs; it exits when its
 * sessions are gone. */
static void worker_retire(struct pvd_server *srv, size_t slot)
{
	struct pvd_sup *sup = &srv->sup[slot];

	if (sup->chan >= 0)
		close(sup->chan);
	sup->chan = -1;
	sup->retired = sup->pid;
	sup->pid = 0;
	sup->sent = 0;
}

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
	if (r == 0)
		sup->sent++;
	else
		/* The worker died and is not reaped yet: this connection
		 * drops (the guest retries), the next one gets a new worker. */
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
				uint32_t sessions = __atomic_load_n(&g->sessions, __ATOMIC_RELAXED);

				found = true;
				if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && sessions == 0)
					gp_info(&srv->log, "guest '%s': worker %d %s", g->name, (int)pid, how);
				else
					gp_warn(&srv->log, "guest '%s': worker %d %s; its %u session(s) ended",
						g->name, (int)pid, how, sessions);
				worker_retire(srv, i);
				sup->retired = 0;
				pvd_table_clear_usage(g);
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
}
