/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass-pvd: serves PV guests on the host's OpenCL devices. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "pvd.h"
#include <CL/cl_ext.h>
#include "proto/proto.h"
#include "transport/addr.h"
#include "transport/transport.h"

/* How long a worker without connections stays (then its memory returns
 * to the system; the next connection starts a new one). */
#define PVD_IDLE_GRACE_S 10

#define DEFAULT_LISTEN GP_PVD_DEFAULT_LISTEN

static void log_stderr(void *data, enum gp_log_level level, const char *msg)
{
	fprintf(stderr, "gpupass-pvd: %s: %s\n", gp_log_level_name(level), msg);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpupass-pvd [--config FILE] [--listen ADDRESS]... [--pidfile FILE] [-v]\n"
		"\n"
		"Shares the host's OpenCL devices with PV guests (processes, containers and\n"
		"VMs running libgpupass-icd.so), with per-guest isolation, memory quotas and\n"
		"weighted fair sharing of device time. Runs in the foreground.\n"
		"\n"
		"  -c, --config FILE    INI configuration (see gpupass-pvd(8)); without it:\n"
		"                       listen on " DEFAULT_LISTEN ", every local user\n"
		"                       is the guest 'default' with no limits\n"
		"  -l, --listen ADDR    unix:PATH, vsock:PORT, vsock:CID:PORT or tcp:HOST:PORT\n"
		"                       to listen on (repeatable; replaces the config's\n"
		"                       [server] listen; plain TCP only on loopback)\n"
		"  -p, --pidfile FILE   write the pid there (gpupass vm create/set/delete\n"
		"                       send SIGHUP to <state-dir>/pvd.pid)\n"
		"  -s, --state-dir DIR  workers' private directories (compiler caches,\n"
		"                       temporary files) under DIR/workers (default:\n"
		"                       $XDG_CACHE_HOME/gpupass-pvd)\n"
		"      --worker-idle S  a guest's worker leaves S seconds after its last\n"
		"                       connection (default 10)\n"
		"  -v, --verbose        log connections (twice: debug)\n"
		"SIGHUP re-reads the [guest] sections of --config without dropping guests.\n"
		"  -h, --help           this help\n");
}

/* Asks a child (exec of this binary, --probe-devices) which devices
 * there are: the supervisor itself never initialises OpenCL. */
static int probe_devices(struct pvd_server *srv)
{
	char line[512] = "", **argv;
	int pfd[2], status = 0, r = -ENODEV;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	argv = calloc(3 + srv->cfg.devices.n, sizeof(*argv));
	if (!argv || pipe2(pfd, O_CLOEXEC) < 0) {
		free(argv);
		return -ENOMEM;
	}
	argv[0] = "gpupass-pvd";
	argv[1] = PVD_PROBE_ARG;
	for (size_t i = 0; i < srv->cfg.devices.n; i++)
		argv[2 + i] = srv->cfg.devices.v[i];
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		if (dup2(pfd[1], 1) < 0)
			_exit(127);
		/* The capabilities the unit gives the server to confine its
		 * workers are not the OpenCL stack's business. */
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(pfd[1]);
	while (pid > 0 && got < sizeof(line) - 1 &&
	       (n = read(pfd[0], line + got, sizeof(line) - 1 - got)) > 0)
		got += (size_t)n;
	close(pfd[0]);
	free(argv);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -ECHILD;
	line[got] = '\0';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		unsigned long nd = 0;
		int shared = 0, abi = 0, off = 0;

		if (sscanf(line, "%lu %d %d %n", &nd, &shared, &abi, &off) >= 3 && nd > 0 && off > 0) {
			line[strcspn(line, "\n")] = '\0';
			srv->n_devs = nd;
			srv->shared_ok = shared == 1;
			srv->landlock_abi = abi;
			srv->platform_name = strdup(line + off);
			r = 0;
		}
	}
	return r;
}

static int mkdir_parent(const char *path)
{
	char *dir = strdup(path), *p;

	if (!dir)
		return -ENOMEM;
	for (p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			int r = -errno;

			free(dir);
			return r;
		}
		*p = '/';
	}
	free(dir);
	return 0;
}

/* Removes a socket file only if it is still the one we made (same inode
 * as right after bind): a newer server may already listen there. */
static void unlink_ours(const char *path, ino_t ino)
{
	struct stat st;

	if (ino && lstat(path, &st) == 0 && st.st_ino == ino)
		unlink(path);
}

static ino_t ino_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? st.st_ino : 0;
}

static int listen_on(const char *addr, mode_t mode, int *fd)
{
	const char *path = addr + 5;
	int r;

	if (strncmp(addr, "unix:", 5) != 0)
		return pvd_channel_listen(addr, fd);
	r = mkdir_parent(path);
	if (r == 0)
		r = gp_unix_listen(path, fd);
	if (r == 0)
		chmod(path, mode);
	return r;
}

static int guest_add(struct pvd_server *srv, const struct gp_pvd_guest_cfg *c, size_t *out);

/* The guest a local user connecting to a shared socket is: its own
 * [guest] uid = section, else [guest default] (made per user by
 * default_for_uid), else none. */
static struct pvd_guest *guest_by_uid(struct pvd_server *srv, uid_t uid)
{
	struct pvd_guest *def = NULL;
	size_t n = pvd_n_guests(srv);

	for (size_t i = 0; i < n; i++) {
		const struct pvd_guest *g = &srv->guests[i];

		if (g->own_socket || g->removed || srv->sup[i].parent >= 0)
			continue;
		if (srv->sup[i].uid >= 0 && (uid_t)srv->sup[i].uid == uid)
			return &srv->guests[i];
		if (strcmp(g->name, "default") == 0)
			def = &srv->guests[i];
	}
	return def;
}

/* [guest default]'s settings for the per-user guest of @uid: no socket,
 * identity or region of its own (those would be default's). */
static struct gp_pvd_guest_cfg uid_guest_cfg(const struct gp_pvd_guest_cfg *def, char *name)
{
	struct gp_pvd_guest_cfg c = *def;

	c.name = name;
	c.socket = NULL;
	c.ivshmem = NULL;
	c.uid = -1;
	c.cid = -1;
	c.has_peer_sha256 = false;
	c.token[0] = '\0';
	return c;
}

/* Under [guest default] every local user is a guest of its own: a slot
 * of the table, so a worker process of its own (two users never share a
 * worker's memory) with default's quota each, made at its first
 * connection and kept (slots are never reused). NULL when the table is
 * full. */
static struct pvd_guest *default_for_uid(struct pvd_server *srv, struct pvd_guest *def, uid_t uid,
					 char *why, size_t why_len)
{
	size_t n = pvd_n_guests(srv), ds = (size_t)(def - srv->guests), slot = 0;
	const struct gp_pvd_guest_cfg *dc = gp_pvd_config_guest(&srv->cfg, "default");
	struct gp_pvd_guest_cfg c;
	char name[PVD_NAME_MAX];
	int r;

	for (size_t i = 0; i < n; i++)
		if (srv->sup[i].parent == (ssize_t)ds && srv->sup[i].for_uid == (int64_t)uid &&
		    !srv->guests[i].removed)
			return &srv->guests[i];
	if (!dc)
		return def; /* not reached: default comes from the config */
	snprintf(name, sizeof(name), GP_PVD_UID_GUEST_PREFIX "%u", (unsigned)uid);
	c = uid_guest_cfg(dc, name);
	r = guest_add(srv, &c, &slot);
	if (r < 0) {
		snprintf(why, why_len, "no room for a guest of user %u (%d guests at most): %s",
			 (unsigned)uid, PVD_MAX_GUESTS, strerror(-r));
		gp_err(&srv->log, "[guest default]: %s", why);
		return NULL;
	}
	srv->sup[slot].parent = (ssize_t)ds;
	srv->sup[slot].for_uid = uid;
	gp_info(&srv->log, "guest %s: local user %u is a guest of its own, with [guest default]'s "
		"limits", name, (unsigned)uid);
	return &srv->guests[slot];
}

/* Is the first message a status request? Those are
 * answered by the supervisor (from the shared table) rather than starting
 * a worker. Waits briefly for it: guests send their hello right after
 * connecting. */
static bool wants_status(int fd)
{
	uint8_t hdr[GP_PROTO_HDR_SIZE];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct gp_proto_hdr h;

	if (poll(&p, 1, 100) != 1)
		return false;
	if (recv(fd, hdr, sizeof(hdr), MSG_PEEK | MSG_DONTWAIT) != (ssize_t)sizeof(hdr))
		return false;
	return gp_proto_hdr_unpack(hdr, sizeof(hdr), GP_PROTO_MAX_PAYLOAD, &h) == 0 &&
	       h.opcode == GP_OP_STATUS && !(h.flags & GP_PROTO_F_REPLY);
}

static void accept_one(struct pvd_server *srv, int lfd, struct pvd_guest *own)
{
	struct pvd_guest *g = own;
	struct ucred cr = { .uid = (uid_t)-1 };
	socklen_t len = sizeof(cr);
	char why[160] = "";
	int fd;

	if (!g && pvd_channel_accept(srv, lfd))
		return;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (!g) {
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len);
		g = guest_by_uid(srv, cr.uid);
		if (!g)
			snprintf(why, sizeof(why),
				 "no [guest] section has uid = %u and there is no [guest default]",
				 (unsigned)cr.uid);
	}
	/* On a guest's own socket too: asking for the status must not start
	 * its worker (a VM's stream that says nothing yet waits 0.1 s). */
	if (g && wants_status(fd))
		g = NULL;
	else if (g && !own && srv->sup[g - srv->guests].parent < 0 && strcmp(g->name, "default") == 0)
		g = default_for_uid(srv, g, cr.uid, why, sizeof(why));
	if (pvd_session_start(srv, g, fd, why) < 0)
		gp_err(&srv->log, "cannot start a session: out of resources");
}

static int guest_listen(struct pvd_server *srv, size_t slot)
{
	struct pvd_sup *sup = &srv->sup[slot];
	char *addr;
	int r;

	if (!sup->socket)
		return 0;
	addr = gp_strdup_printf("unix:%s", sup->socket);
	r = addr ? listen_on(addr, 0600, &sup->listen_fd) : -ENOMEM;
	free(addr);
	if (r == 0)
		sup->ino = ino_of(sup->socket);
	/* A VM's QEMU runs as its own user: the socket is that user's (mode
	 * 0600 still), so it reconnects after a restart of this server. */
	if (r == 0 && sup->socket_uid >= 0 && chown(sup->socket, (uid_t)sup->socket_uid, (gid_t)-1) < 0)
		gp_warn(&srv->log, "guest %s: cannot give its socket %s to uid %lld: %s",
			srv->guests[slot].name, sup->socket, (long long)sup->socket_uid, strerror(errno));
	return r;
}

static void guest_unlisten(struct pvd_server *srv, size_t slot)
{
	struct pvd_sup *sup = &srv->sup[slot];

	if (sup->listen_fd < 0)
		return;
	close(sup->listen_fd);
	sup->listen_fd = -1;
	unlink_ours(sup->socket, sup->ino);
	sup->ino = 0;
}

/* A section's settings into its slot: limits and the ivshmem file in the
 * shared table (the worker reads them), identities in sup (the vsock and
 * TCP listeners read them from their threads). -ENAMETOOLONG: the ivshmem
 * path does not fit (the config parser refuses those). */
static int guest_set_config(struct pvd_server *srv, size_t slot, const struct gp_pvd_guest_cfg *c)
{
	struct pvd_guest *g = &srv->guests[slot];
	struct pvd_sup *sup = &srv->sup[slot];

	__atomic_store_n(&g->memory_max, c->memory_max, __ATOMIC_RELAXED);
	__atomic_store_n(&g->max_objects, c->max_objects, __ATOMIC_RELAXED);
	__atomic_store_n(&g->max_sessions, c->max_sessions, __ATOMIC_RELAXED);
	__atomic_store_n(&g->weight, c->weight, __ATOMIC_RELAXED);
	__atomic_store_n(&g->command_timeout_ms, c->command_timeout_ms, __ATOMIC_RELAXED);
	__atomic_store_n(&g->build_timeout_ms, c->build_timeout_ms, __ATOMIC_RELAXED);
	__atomic_store_n(&g->build_memory_max, c->build_memory_max, __ATOMIC_RELAXED);
	pthread_mutex_lock(&srv->sup_lock);
	sup->uid = c->uid;
	sup->socket_uid = c->socket_uid;
	sup->cid = c->cid;
	sup->has_peer_sha256 = c->has_peer_sha256;
	memcpy(sup->peer_sha256, c->peer_sha256, sizeof(sup->peer_sha256));
	_Static_assert(sizeof(sup->token) == sizeof(c->token), "token sizes");
	memcpy(sup->token, c->token, sizeof(sup->token));
	pthread_mutex_unlock(&srv->sup_lock);
	return pvd_table_set_ivshmem(g, c->ivshmem);
}

/* Takes a slot of the shared table for @c; -ENOSPC when every slot is
 * used, -ENAMETOOLONG for a name the table cannot hold. */
static int guest_add(struct pvd_server *srv, const struct gp_pvd_guest_cfg *c, size_t *out)
{
	size_t n = pvd_n_guests(srv);
	struct pvd_guest *g;
	struct pvd_sup *sup;
	int r;

	if (n >= PVD_MAX_GUESTS)
		return -ENOSPC;
	if (strlen(c->name) >= PVD_NAME_MAX)
		return -ENAMETOOLONG;
	g = &srv->guests[n];
	sup = &srv->sup[n];
	memset(g, 0, sizeof(*g));
	memcpy(g->name, c->name, strlen(c->name) + 1);
	g->own_socket = c->socket != NULL;
	sup->socket = c->socket ? strdup(c->socket) : NULL;
	if (c->socket && !sup->socket)
		return -ENOMEM;
	r = guest_set_config(srv, n, c);
	if (r < 0) {
		free(sup->socket);
		sup->socket = NULL;
		return r;
	}
	sup->listen_fd = -1;
	sup->chan = -1;
	sup->parent = -1;
	sup->for_uid = -1;
	/* Published after the slot is whole: workers read up to it. */
	__atomic_store_n(&srv->table->n_guests, (uint32_t)(n + 1), __ATOMIC_RELEASE);
	*out = n;
	return 0;
}

static struct pvd_guest *guest_by_name(struct pvd_server *srv, const char *name, size_t *slot)
{
	size_t n = pvd_n_guests(srv);

	for (size_t i = 0; i < n; i++) {
		if (strcmp(srv->guests[i].name, name) == 0) {
			*slot = i;
			return &srv->guests[i];
		}
	}
	return NULL;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* SIGHUP: re-reads the [guest] sections. New ones get their sockets,
 * removed ones stop listening (their live sessions finish), changed limits
 * and weights apply from the next allocation (the workers read them from
 * the shared table). [server] is not re-read. A config that does not
 * parse changes nothing. */
static void reload(struct pvd_server *srv, const char *path)
{
	struct gp_pvd_config ncfg = { 0 };
	size_t n = pvd_n_guests(srv);
	int r;

	if (!path) {
		gp_warn(&srv->log, "SIGHUP: no --config to reload; nothing changed");
		return;
	}
	r = gp_pvd_config_load(path, &ncfg);
	if (r < 0) {
		gp_err(&srv->log, "reload refused, nothing changed: %s",
		       ncfg.error ? ncfg.error : r == -EISDIR ? "the config path is a directory" :
		       strerror(-r));
		gp_pvd_config_clear(&ncfg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct pvd_guest *g = &srv->guests[i];

		if (srv->sup[i].parent >= 0)
			continue; /* follows its default, below */
		if (!g->removed && !gp_pvd_config_guest(&ncfg, g->name)) {
			__atomic_store_n(&g->removed, 1, __ATOMIC_RELAXED);
			guest_unlisten(srv, i);
			gp_info(&srv->log, "guest %s removed (its live sessions continue)", g->name);
		}
	}
	for (size_t i = 0; i < ncfg.n_guests; i++) {
		const struct gp_pvd_guest_cfg *c = &ncfg.guests[i];
		size_t slot = 0;
		struct pvd_guest *g = guest_by_name(srv, c->name, &slot);
		struct pvd_sup *sup;
		bool relisten;

		if (!g) {
			r = guest_add(srv, c, &slot);
			if (r == 0)
				r = guest_listen(srv, slot);
			if (r < 0) {
				gp_err(&srv->log, "guest %s: cannot add it: %s", c->name, strerror(-r));
				if (slot < pvd_n_guests(srv) && strcmp(srv->guests[slot].name, c->name) == 0)
					__atomic_store_n(&srv->guests[slot].removed, 1, __ATOMIC_RELAXED);
			} else {
				gp_info(&srv->log, "guest %s added", c->name);
			}
			continue;
		}
		sup = &srv->sup[slot];
		relisten = g->removed || !same_str(sup->socket, c->socket);
		r = guest_set_config(srv, slot, c);
		if (r < 0)
			gp_err(&srv->log, "guest %s: its ivshmem path is too long; kept the old one",
			       c->name);
		if (relisten) {
			char *sock = c->socket ? strdup(c->socket) : NULL;

			guest_unlisten(srv, slot);
			if (c->socket && !sock) {
				gp_err(&srv->log, "guest %s: out of memory", c->name);
				__atomic_store_n(&g->removed, 1, __ATOMIC_RELAXED);
				continue;
			}
			free(sup->socket);
			sup->socket = sock;
			/* Read by the running worker's new sessions (how a
			 * stream's garbage is handled). */
			__atomic_store_n(&g->own_socket, sock != NULL, __ATOMIC_RELAXED);
			__atomic_store_n(&g->removed, 0, __ATOMIC_RELAXED);
			r = guest_listen(srv, slot);
			if (r < 0) {
				gp_err(&srv->log, "guest %s: cannot listen on %s: %s", c->name,
				       c->socket, strerror(-r));
				__atomic_store_n(&g->removed, 1, __ATOMIC_RELAXED);
			}
		}
	}
	/* The per-user guests of [guest default] follow it: its new limits,
	 * or gone with it (their live sessions continue). */
	for (size_t i = 0; i < pvd_n_guests(srv); i++) {
		struct pvd_sup *sup = &srv->sup[i];
		const struct gp_pvd_guest_cfg *dc = gp_pvd_config_guest(&ncfg, "default");
		struct pvd_guest *g = &srv->guests[i];

		if (sup->parent < 0 || g->removed)
			continue;
		if (!dc || srv->guests[sup->parent].removed) {
			__atomic_store_n(&g->removed, 1, __ATOMIC_RELAXED);
			gp_info(&srv->log, "guest %s removed with [guest default]", g->name);
		} else {
			struct gp_pvd_guest_cfg c = uid_guest_cfg(dc, g->name);

			guest_set_config(srv, i, &c);
		}
	}
	if (ncfg.defaulted)
		gp_warn(&srv->log, "%s is empty: using the defaults (every local user is a guest of "
			"its own, no limits)", path);
	/* The new sections are the ones per-user guests are made from. */
	{
		struct gp_pvd_guest_cfg *t = srv->cfg.guests;
		size_t tn = srv->cfg.n_guests;

		srv->cfg.guests = ncfg.guests;
		srv->cfg.n_guests = ncfg.n_guests;
		ncfg.guests = t;
		ncfg.n_guests = tn;
	}
	gp_pvd_config_clear(&ncfg);
}

/* 1 on SIGHUP (the caller reloads and calls again), 0 on SIGTERM/SIGINT. */
static int serve_loop(struct pvd_server *srv, int sigfd, uint64_t idle_ns)
{
	size_t ng = pvd_n_guests(srv);
	size_t n = srv->n_listen + ng + 2;
	struct pollfd *pfd = calloc(n, sizeof(*pfd));
	struct pvd_guest **owner = calloc(n, sizeof(*owner));
	size_t k = 0;
	int ret = 0;

	if (!pfd || !owner) {
		free(pfd);
		free(owner);
		return -ENOMEM;
	}
	pfd[k++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
	pfd[k++] = (struct pollfd){ .fd = srv->wake_pipe[0], .events = POLLIN };
	for (size_t i = 0; i < srv->n_listen; i++)
		pfd[k++] = (struct pollfd){ .fd = srv->listen_fds[i], .events = POLLIN };
	for (size_t i = 0; i < ng; i++) {
		if (srv->sup[i].listen_fd < 0 || srv->guests[i].removed)
			continue;
		owner[k] = &srv->guests[i];
		pfd[k++] = (struct pollfd){ .fd = srv->sup[i].listen_fd, .events = POLLIN };
	}
	for (;;) {
		int r = poll(pfd, k, PVD_WATCH_MS);
		bool quit = false;

		if (r < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					ret = 1;
					quit = true;
				} else if (si.ssi_signo != SIGCHLD) {
					quit = true; /* SIGTERM / SIGINT */
				}
			}
		}
		/* Also on the timer: signals of several children merge. */
		pvd_workers_reap(srv);
		if (quit)
			break;
		if (pfd[1].revents & POLLIN) {
			char buf[64];

			if (read(srv->wake_pipe[0], buf, sizeof(buf)) < 0) {
				/* nothing to do: reaping below is what counts */
			}
		}
		pvd_session_reap(srv, false);
		for (size_t i = 2; i < k; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(srv, pfd[i].fd, owner[i]);
		pvd_workers_idle(srv, idle_ns);
		pvd_workers_watch(srv);
	}
	free(pfd);
	free(owner);
	return ret;
}

/* Where workers keep their private directories when --state-dir is not
 * given: the cache directory (the shipped unit sets XDG_CACHE_HOME). */
static char *default_state_dir(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	if (xdg && xdg[0] == '/')
		return gp_strdup_printf("%s/gpupass-pvd", xdg);
	if (geteuid() != 0 && home && home[0] == '/')
		return gp_strdup_printf("%s/.cache/gpupass-pvd", home);
	return strdup("/var/cache/gpupass/pvd");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "worker-idle", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pvd_server srv = {
		.log = { .fn = log_stderr, .max_level = GP_LOG_WARN },
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.sup_lock = PTHREAD_MUTEX_INITIALIZER,
		.wake_pipe = { -1, -1 },
		.spin_ns = 100000,
		.table_fd = -1,
	};
	struct gp_strv listen = { 0 };
	const char *config = NULL, *pidfile = NULL;
	int c, r, verbose = 0, sigfd, rc = 1, stuck;
	uint64_t idle_ns = PVD_IDLE_GRACE_S * 1000000000ull;
	sigset_t mask;
	ino_t *listen_ino = NULL;
	size_t ng;

	if (argc >= 2 && strcmp(argv[1], PVD_WORKER_ARG) == 0)
		return pvd_worker_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], PVD_BUILD_CHECK_ARG) == 0)
		return pvd_build_check_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], PVD_PROBE_ARG) == 0)
		return pvd_probe_main(argc, argv);
	/* Blocked before any thread exists: every thread inherits the mask,
	 * signalfd gets them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* reload */
	sigaddset(&mask, SIGCHLD); /* a worker ended */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "c:l:p:s:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'l':
			if (gp_addr_parse(optarg, true, &(struct gp_addr){ 0 }) < 0) {
				fprintf(stderr, "gpupass-pvd: --listen %s: expected unix:PATH, vsock:PORT, "
					"vsock:CID:PORT or tcp:HOST:PORT\n", optarg);
				return 2;
			}
			gp_strv_push(&listen, optarg);
			break;
		case 'v':
			verbose++;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 's':
			if (optarg[0] != '/') {
				fprintf(stderr, "gpupass-pvd: --state-dir %s: an absolute path is needed\n", optarg);
				return 2;
			}
			free(srv.state_dir);
			srv.state_dir = strdup(optarg);
			break;
		case 'i': {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || !optarg[0] || optarg[0] == '-' || v > 86400) {
				fprintf(stderr, "gpupass-pvd: --worker-idle %s: seconds from 0 to 86400\n", optarg);
				return 2;
			}
			idle_ns = v * 1000000000ull;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	srv.verbose = verbose;
	srv.log.max_level = verbose >= 2 ? GP_LOG_DEBUG : verbose ? GP_LOG_INFO : GP_LOG_WARN;
	if (!srv.state_dir)
		srv.state_dir = default_state_dir();
	r = config ? gp_pvd_config_load(config, &srv.cfg) : gp_pvd_config_parse(GP_PVD_DEFAULT_CONFIG, &srv.cfg);
	if (r < 0) {
		if (srv.cfg.error)
			fprintf(stderr, "gpupass-pvd: error: %s\n", srv.cfg.error);
		else
			fprintf(stderr, "gpupass-pvd: error: cannot read %s: %s\n", config,
				r == -EISDIR ? "it is a directory, not a configuration file" : strerror(-r));
		goto out;
	}
	if (srv.cfg.defaulted)
		gp_warn(&srv.log, "%s is empty: using the defaults ([guest default]: every local "
			"user is a guest of its own, no limits)", config);
	if (listen.n) {
		gp_strv_clear(&srv.cfg.listen);
		srv.cfg.listen = listen;
		listen = (struct gp_strv){ 0 };
		if (gp_pvd_config_check(&srv.cfg) < 0) {
			fprintf(stderr, "gpupass-pvd: error: --listen: %s\n", srv.cfg.error);
			goto out;
		}
	}
	if (srv.cfg.listen.n == 0 && srv.cfg.n_guests && config) {
		bool own = false;

		for (size_t i = 0; i < srv.cfg.n_guests; i++)
			own |= srv.cfg.guests[i].socket != NULL;
		if (!own)
			gp_strv_push(&srv.cfg.listen, DEFAULT_LISTEN);
	}
	if (!srv.state_dir) {
		fprintf(stderr, "gpupass-pvd: error: out of memory\n");
		goto out;
	}
	{
		char why[512] = "";

		if (pvd_channels_init(&srv, why, sizeof(why)) < 0) {
			fprintf(stderr, "gpupass-pvd: error: TLS credentials of [server]: %s\n", why);
			goto out;
		}
	}
	if (probe_devices(&srv) < 0) {
		fprintf(stderr, "gpupass-pvd: error: no host OpenCL device to share "
			"(install a vendor OpenCL driver or pocl-opencl-icd, check [server] devices)\n");
		goto out;
	}
	r = pvd_sandbox_new(&srv);
	if (r < 0) {
		fprintf(stderr, "gpupass-pvd: error: cannot prepare the workers' confinement: %s\n",
			strerror(-r));
		goto out;
	}
	r = pvd_table_create(&srv.table_fd, &srv.table);
	if (r < 0) {
		fprintf(stderr, "gpupass-pvd: error: cannot create the shared guest table: %s\n",
			strerror(-r));
		goto out;
	}
	srv.guests = srv.table->guests;
	srv.sup = calloc(PVD_MAX_GUESTS, sizeof(*srv.sup));
	srv.listen_fds = calloc(srv.cfg.listen.n + 1, sizeof(int));
	listen_ino = calloc(srv.cfg.listen.n + 1, sizeof(ino_t));
	if (!srv.sup || !srv.listen_fds || !listen_ino || pipe2(srv.wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "gpupass-pvd: error: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < srv.cfg.n_guests; i++) {
		size_t slot = 0;

		r = guest_add(&srv, &srv.cfg.guests[i], &slot);
		if (r == 0)
			r = guest_listen(&srv, slot);
		if (r < 0) {
			fprintf(stderr, "gpupass-pvd: error: guest %s: cannot %s: %s\n",
				srv.cfg.guests[i].name, r == -ENAMETOOLONG ? "use a name this long" :
				"listen on its socket", strerror(-r));
			goto out;
		}
	}
	for (size_t i = 0; i < srv.cfg.listen.n; i++) {
		r = listen_on(srv.cfg.listen.v[i], 0666, &srv.listen_fds[i]);
		if (r == 0 && strncmp(srv.cfg.listen.v[i], "unix:", 5) == 0)
			listen_ino[i] = ino_of(srv.cfg.listen.v[i] + 5);
		if (r < 0) {
			fprintf(stderr, "gpupass-pvd: error: cannot listen on %s: %s "
				"(is another gpupass-pvd running, or the directory not writable?)\n",
				srv.cfg.listen.v[i], strerror(-r));
			goto out;
		}
		srv.n_listen++;
	}
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sigfd < 0) {
		fprintf(stderr, "gpupass-pvd: error: signalfd: %s\n", strerror(errno));
		goto out;
	}
	ng = pvd_n_guests(&srv);
	printf("gpupass-pvd: serving %zu device(s) of %s to %zu guest section(s)%s\n",
	       srv.n_devs, srv.platform_name ? srv.platform_name : "?", ng,
	       srv.shared_ok ? ", buffers shared in place" : "");
	if (srv.landlock_abi > 0)
		printf("gpupass-pvd: one worker process per guest, in a Landlock sandbox (ABI %d; "
		       "private files under %s/workers)\n", srv.landlock_abi, srv.state_dir);
	else
		fprintf(stderr, "gpupass-pvd: warning: Landlock is not available (a kernel without "
			"it, or a seccomp filter refusing landlock_create_ruleset): guests' workers run "
			"without their file-system sandbox, and guest builds can #include host files "
			"the server's user may read\n");
	for (size_t i = 0; i < srv.cfg.listen.n; i++) {
		const char *a = srv.cfg.listen.v[i];

		/* A vsock or tcp listen address is not what a guest dials
		 * (vsock:2:PORT from a VM, tcp:THIS-HOST:PORT): see the man page. */
		if (strncmp(a, "unix:", 5) == 0)
			printf("gpupass-pvd: listening on %s (guests connect with GPUPASS_SERVER=%s)\n", a, a);
		else
			printf("gpupass-pvd: listening on %s%s\n", a,
			       strncmp(a, "tcp:", 4) == 0 && srv.cfg.tls_cert ? " (TLS)" : "");
	}
	for (size_t i = 0; i < ng; i++)
		if (srv.sup[i].socket)
			printf("gpupass-pvd: guest %s listens on unix:%s\n", srv.guests[i].name,
			       srv.sup[i].socket);
	fflush(stdout);
	if (pidfile) {
		FILE *pf = fopen(pidfile, "we");

		if (!pf || fprintf(pf, "%ld\n", (long)getpid()) < 0 || fclose(pf) != 0) {
			fprintf(stderr, "gpupass-pvd: error: cannot write the pidfile %s\n", pidfile);
			if (pf)
				fclose(pf);
			pidfile = NULL;
			close(sigfd);
			goto out;
		}
	}
	while (serve_loop(&srv, sigfd, idle_ns) == 1)
		reload(&srv, config);
	__atomic_store_n(&srv.stop, 1, __ATOMIC_RELEASE);
	pvd_workers_stop(&srv, 8000);
	stuck = pvd_session_stop_all(&srv, 5000);
	if (!stuck)
		pvd_channels_free(&srv, PVD_TCP_SETUP_MS + 1000);
	close(sigfd);
	rc = 0;
	if (stuck) {
		/* Their threads still use the server's state: remove the
		 * sockets and leave without freeing it. */
		fprintf(stderr, "gpupass-pvd: warning: %d session(s) stuck; exiting anyway\n", stuck);
		for (size_t i = 0; i < srv.n_listen; i++)
			unlink_ours(srv.cfg.listen.v[i] + 5, listen_ino[i]);
		for (size_t i = 0; i < pvd_n_guests(&srv); i++)
			if (srv.sup[i].listen_fd >= 0)
				unlink_ours(srv.sup[i].socket, srv.sup[i].ino);
		if (pidfile)
			unlink(pidfile);
		fflush(NULL);
		_exit(0);
	}
out:
	pvd_channels_free(&srv, 0);
	for (size_t i = 0; i < srv.n_listen; i++) {
		close(srv.listen_fds[i]);
		unlink_ours(srv.cfg.listen.v[i] + 5, listen_ino[i]);
	}
	for (size_t i = 0; srv.sup && i < pvd_n_guests(&srv); i++) {
		guest_unlisten(&srv, i);
		if (srv.sup[i].chan >= 0)
			close(srv.sup[i].chan);
		free(srv.sup[i].socket);
	}
	if (pidfile)
		unlink(pidfile);
	if (srv.wake_pipe[0] >= 0) {
		close(srv.wake_pipe[0]);
		close(srv.wake_pipe[1]);
	}
	if (srv.table_fd >= 0)
		close(srv.table_fd);
	pvd_table_unmap(srv.table);
	free(srv.sup);
	free(srv.listen_fds);
	free(listen_ino);
	free(srv.state_dir);
	free(srv.platform_name);
	pvd_sandbox_free(srv.sandbox);
	gp_strv_clear(&listen);
	gp_pvd_config_clear(&srv.cfg);
	return rc;
}
