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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "pvd.h"
#include <CL/cl_ext.h>
#include "transport/addr.h"
#include "transport/transport.h"

#define DEFAULT_LISTEN "unix:/run/gpupass/pv.sock"
/* Used when no --config is given: every local user is a guest, no limits. */
static const char embedded_config[] =
	"[server]\n"
	"listen = " DEFAULT_LISTEN "\n"
	"[guest default]\n"
	"weight = 1\n";

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
		"  -v, --verbose        log connections (twice: debug)\n"
		"SIGHUP re-reads the [guest] sections of --config without dropping guests.\n"
		"  -h, --help           this help\n");
}

/* A platform is ours if it is gpupass itself: never serve it (it would
 * call back into this server). */
static bool is_gpupass_platform(cl_platform_id p)
{
	char name[256] = "", suffix[64] = "";

	clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof(name) - 1, name, NULL);
	clGetPlatformInfo(p, CL_PLATFORM_ICD_SUFFIX_KHR, sizeof(suffix) - 1, suffix, NULL);
	return strncmp(name, "gpupass", 7) == 0 || strcmp(suffix, "GPPV") == 0;
}

static bool device_wanted(const struct pvd_server *srv, cl_device_id d)
{
	char name[256] = "";

	if (srv->cfg.devices.n == 0)
		return true;
	clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof(name) - 1, name, NULL);
	for (size_t i = 0; i < srv->cfg.devices.n; i++)
		if (gp_str_icontains(name, srv->cfg.devices.v[i]))
			return true;
	return false;
}

static bool probe_in_place(cl_device_id dev);

static int backend_open(struct pvd_server *srv)
{
	cl_platform_id plats[16];
	cl_uint np = 0;

	/* If the loader is pointed at our own ICD, it must not connect here. */
	setenv("GPUPASS_PVD_SELF", "1", 1);
	if (clGetPlatformIDs(16, plats, &np) != CL_SUCCESS)
		np = 0;
	for (cl_uint i = 0; i < np && i < 16; i++) {
		cl_device_id devs[64];
		cl_uint nd = 0;

		if (is_gpupass_platform(plats[i]))
			continue;
		if (clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 64, devs, &nd) != CL_SUCCESS)
			continue;
		for (cl_uint j = 0; j < nd && j < 64; j++) {
			struct pvd_dev *nv;

			if (!device_wanted(srv, devs[j]))
				continue;
			nv = realloc(srv->devs, (srv->n_devs + 1) * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			srv->devs = nv;
			nv[srv->n_devs].platform = plats[i];
			nv[srv->n_devs].device = devs[j];
			srv->n_devs++;
			if (!srv->platform_name) {
				char name[256] = "";

				clGetPlatformInfo(plats[i], CL_PLATFORM_NAME, sizeof(name) - 1, name, NULL);
				srv->platform_name = strdup(name);
			}
		}
	}
	srv->shared_ok = srv->n_devs > 0 && !getenv("GPUPASS_PVD_NO_SHARED");
	for (size_t i = 0; srv->shared_ok && i < srv->n_devs; i++)
		srv->shared_ok = probe_in_place(srv->devs[i].device);
	return srv->n_devs ? 0 : -ENODEV;
}

/* Shared buffers need a device that computes on host memory in place
 * (USE_HOST_PTR without a private copy), as CPU devices do: check that a
 * kernel sees a host write made without a map, and the host sees the
 * kernel's write, on every device served. */
static bool probe_in_place(cl_device_id dev)
{
	static const char *src = "__kernel void k(__global int *a) { a[get_global_id(0)] += 1; }";
	size_t n = 1024;
	bool ok = false;
	cl_int err;
	cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	cl_command_queue q = ctx ? clCreateCommandQueueWithProperties(ctx, dev, NULL, &err) : NULL;
	cl_program p = q ? clCreateProgramWithSource(ctx, 1, &src, NULL, &err) : NULL;
	cl_kernel k = NULL;
	cl_mem m = NULL;
	int *h = mmap(NULL, n * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cl_bool unified = CL_FALSE;

	clGetDeviceInfo(dev, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof(unified), &unified, NULL);
	if (h == MAP_FAILED)
		h = NULL;
	if (unified && p && h && clBuildProgram(p, 1, &dev, NULL, NULL, NULL) == CL_SUCCESS)
		k = clCreateKernel(p, "k", &err);
	if (k)
		m = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, n * sizeof(int), h, &err);
	if (m && clSetKernelArg(k, 0, sizeof(m), &m) == CL_SUCCESS &&
	    clEnqueueNDRangeKernel(q, k, 1, NULL, &n, NULL, 0, NULL, NULL) == CL_SUCCESS &&
	    clFinish(q) == CL_SUCCESS && h[7] == 1) {
		h[7] = 41;
		ok = clEnqueueNDRangeKernel(q, k, 1, NULL, &n, NULL, 0, NULL, NULL) == CL_SUCCESS &&
		     clFinish(q) == CL_SUCCESS && h[7] == 42 && h[8] == 2;
	}
	if (m)
		clReleaseMemObject(m);
	if (k)
		clReleaseKernel(k);
	if (p)
		clReleaseProgram(p);
	if (q)
		clReleaseCommandQueue(q);
	if (ctx)
		clReleaseContext(ctx);
	if (h)
		munmap(h, n * sizeof(int));
	return ok;
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

static struct pvd_guest *guest_by_uid(struct pvd_server *srv, uid_t uid)
{
	struct pvd_guest *def = NULL;

	for (size_t i = 0; i < srv->n_guests; i++) {
		const struct gp_pvd_guest_cfg *c = srv->guests[i].cfg;

		if (c->socket || srv->guests[i].removed)
			continue;
		if (c->uid >= 0 && (uid_t)c->uid == uid)
			return &srv->guests[i];
		if (strcmp(c->name, "default") == 0)
			def = &srv->guests[i];
	}
	return def;
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
	if (pvd_session_start(srv, g, fd, why) < 0)
		gp_err(&srv->log, "cannot start a session: out of resources");
}

static int guest_listen(struct pvd_guest *g)
{
	char *addr;
	int r;

	if (!g->own.socket)
		return 0;
	addr = gp_strdup_printf("unix:%s", g->own.socket);
	r = addr ? listen_on(addr, 0600, &g->listen_fd) : -ENOMEM;
	free(addr);
	if (r == 0)
		g->ino = ino_of(g->own.socket);
	return r;
}

static void guest_unlisten(struct pvd_guest *g)
{
	if (g->listen_fd < 0)
		return;
	close(g->listen_fd);
	g->listen_fd = -1;
	unlink_ours(g->own.socket, g->ino);
	g->ino = 0;
}

/* Takes a slot for @c (copied); -ENOSPC when every slot is used. */
static int guest_add(struct pvd_server *srv, const struct gp_pvd_guest_cfg *c,
		     struct pvd_guest **out)
{
	struct pvd_guest *g;

	if (srv->n_guests >= PVD_MAX_GUESTS)
		return -ENOSPC;
	g = &srv->guests[srv->n_guests];
	g->own = *c;
	g->own.name = strdup(c->name);
	g->own.socket = c->socket ? strdup(c->socket) : NULL;
	g->own.ivshmem = c->ivshmem ? strdup(c->ivshmem) : NULL;
	if (!g->own.name || (c->socket && !g->own.socket) || (c->ivshmem && !g->own.ivshmem)) {
		free(g->own.name);
		free(g->own.socket);
		free(g->own.ivshmem);
		memset(&g->own, 0, sizeof(g->own));
		return -ENOMEM;
	}
	g->cfg = &g->own;
	g->listen_fd = -1;
	pthread_mutex_init(&g->lock, NULL);
	/* Published after the slot is whole: session threads read up to it. */
	__atomic_store_n(&srv->n_guests, srv->n_guests + 1, __ATOMIC_RELEASE);
	*out = g;
	return 0;
}

static struct pvd_guest *guest_by_name(struct pvd_server *srv, const char *name)
{
	for (size_t i = 0; i < srv->n_guests; i++)
		if (strcmp(srv->guests[i].own.name, name) == 0)
			return &srv->guests[i];
	return NULL;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* SIGHUP: re-reads the [guest] sections. New ones get their sockets,
 * removed ones stop listening (their live sessions finish), changed limits
 * and weights apply from the next allocation. [server] is not re-read.
 * A config that does not parse changes nothing. */
static void reload(struct pvd_server *srv, const char *path)
{
	struct gp_pvd_config ncfg = { 0 };
	int r;

	if (!path) {
		gp_warn(&srv->log, "SIGHUP: no --config to reload; nothing changed");
		return;
	}
	r = gp_pvd_config_load(path, &ncfg);
	if (r < 0) {
		gp_err(&srv->log, "reload refused, nothing changed: %s",
		       ncfg.error ? ncfg.error : strerror(-r));
		gp_pvd_config_clear(&ncfg);
		return;
	}
	for (size_t i = 0; i < srv->n_guests; i++) {
		struct pvd_guest *g = &srv->guests[i];

		if (!g->removed && !gp_pvd_config_guest(&ncfg, g->own.name)) {
			g->removed = true;
			guest_unlisten(g);
			gp_info(&srv->log, "guest %s removed (its live sessions continue)",
				g->own.name);
		}
	}
	for (size_t i = 0; i < ncfg.n_guests; i++) {
		const struct gp_pvd_guest_cfg *c = &ncfg.guests[i];
		struct pvd_guest *g = guest_by_name(srv, c->name);
		bool relisten;

		if (!g) {
			r = guest_add(srv, c, &g);
			if (r == 0)
				r = guest_listen(g);
			if (r < 0) {
				gp_err(&srv->log, "guest %s: cannot add it: %s", c->name, strerror(-r));
				if (g)
					g->removed = true;
			} else {
				gp_info(&srv->log, "guest %s added", c->name);
			}
			continue;
		}
		relisten = g->removed || !same_str(g->own.socket, c->socket);
		pthread_mutex_lock(&g->lock);
		g->own.memory_max = c->memory_max;
		g->own.max_objects = c->max_objects;
		g->own.uid = c->uid;
		g->own.cid = c->cid;
		g->own.has_peer_sha256 = c->has_peer_sha256;
		memcpy(g->own.peer_sha256, c->peer_sha256, sizeof(c->peer_sha256));
		memcpy(g->own.token, c->token, sizeof(c->token));
		__atomic_store_n(&g->own.weight, c->weight, __ATOMIC_RELAXED);
		/* Sessions copy the path under the lock at their hello. */
		if (!same_str(g->own.ivshmem, c->ivshmem)) {
			char *iv = c->ivshmem ? strdup(c->ivshmem) : NULL;

			if (iv || !c->ivshmem) {
				free(g->own.ivshmem);
				g->own.ivshmem = iv;
			}
		}
		pthread_mutex_unlock(&g->lock);
		if (relisten) {
			char *sock = c->socket ? strdup(c->socket) : NULL;

			guest_unlisten(g);
			if (c->socket && !sock) {
				gp_err(&srv->log, "guest %s: out of memory", c->name);
				g->removed = true;
				continue;
			}
			free(g->own.socket);
			g->own.socket = sock;
			g->removed = false;
			r = guest_listen(g);
			if (r < 0) {
				gp_err(&srv->log, "guest %s: cannot listen on %s: %s", c->name,
				       c->socket, strerror(-r));
				g->removed = true;
			}
		}
	}
	gp_pvd_config_clear(&ncfg);
}

/* 1 on SIGHUP (the caller reloads and calls again), 0 on SIGTERM/SIGINT. */
static int serve_loop(struct pvd_server *srv, int sigfd)
{
	size_t n = srv->n_listen + srv->n_guests + 2;
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
	for (size_t i = 0; i < srv->n_guests; i++) {
		if (srv->guests[i].listen_fd < 0 || srv->guests[i].removed)
			continue;
		owner[k] = &srv->guests[i];
		pfd[k++] = (struct pollfd){ .fd = srv->guests[i].listen_fd, .events = POLLIN };
	}
	for (;;) {
		int r = poll(pfd, k, 1000);

		if (r < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) &&
			    si.ssi_signo == SIGHUP) {
				ret = 1;
				break;
			}
			break; /* SIGTERM / SIGINT */
		}
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
	}
	free(pfd);
	free(owner);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pvd_server srv = {
		.log = { .fn = log_stderr, .max_level = GP_LOG_WARN },
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.wake_pipe = { -1, -1 },
		.spin_ns = 100000,
	};
	struct gp_strv listen = { 0 };
	const char *config = NULL, *pidfile = NULL;
	int c, r, verbose = 0, sigfd, rc = 1, stuck;
	sigset_t mask;
	ino_t *listen_ino = NULL;

	/* Blocked before any thread exists (the OpenCL platforms start
	 * their own): every thread inherits the mask, signalfd gets them. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* reload */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "c:l:p:vh", opts, NULL)) != -1) {
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
	srv.log.max_level = verbose >= 2 ? GP_LOG_DEBUG : verbose ? GP_LOG_INFO : GP_LOG_WARN;
	r = config ? gp_pvd_config_load(config, &srv.cfg) : gp_pvd_config_parse(embedded_config, &srv.cfg);
	if (r < 0) {
		if (srv.cfg.error)
			fprintf(stderr, "gpupass-pvd: error: %s\n", srv.cfg.error);
		else
			fprintf(stderr, "gpupass-pvd: error: cannot read %s: %s\n", config, strerror(-r));
		goto out;
	}
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
	{
		char why[512] = "";

		if (pvd_channels_init(&srv, why, sizeof(why)) < 0) {
			fprintf(stderr, "gpupass-pvd: error: TLS credentials of [server]: %s\n", why);
			goto out;
		}
	}
	if (backend_open(&srv) < 0) {
		fprintf(stderr, "gpupass-pvd: error: no host OpenCL device to share "
			"(install a vendor OpenCL driver or pocl-opencl-icd, check [server] devices)\n");
		goto out;
	}
	srv.guests = calloc(PVD_MAX_GUESTS, sizeof(*srv.guests));
	srv.listen_fds = calloc(srv.cfg.listen.n + 1, sizeof(int));
	listen_ino = calloc(srv.cfg.listen.n + 1, sizeof(ino_t));
	if (!srv.guests || !srv.listen_fds || !listen_ino || pipe2(srv.wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "gpupass-pvd: error: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < srv.cfg.n_guests; i++) {
		struct pvd_guest *g = NULL;

		r = guest_add(&srv, &srv.cfg.guests[i], &g);
		if (r == 0)
			r = guest_listen(g);
		if (r < 0) {
			fprintf(stderr, "gpupass-pvd: error: guest %s: cannot listen on %s: %s\n",
				srv.cfg.guests[i].name, srv.cfg.guests[i].socket ? srv.cfg.guests[i].socket : "-",
				strerror(-r));
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
	printf("gpupass-pvd: serving %zu device(s) of %s to %zu guest section(s)%s\n",
	       srv.n_devs, srv.platform_name ? srv.platform_name : "?", srv.n_guests,
	       srv.shared_ok ? ", buffers shared in place" : "");
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
	for (size_t i = 0; i < srv.n_guests; i++)
		if (srv.guests[i].cfg->socket)
			printf("gpupass-pvd: guest %s listens on unix:%s\n", srv.guests[i].cfg->name,
			       srv.guests[i].cfg->socket);
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
	while (serve_loop(&srv, sigfd) == 1)
		reload(&srv, config);
	__atomic_store_n(&srv.stop, 1, __ATOMIC_RELEASE);
	stuck = pvd_session_stop_all(&srv, 5000);
	if (!stuck)
		pvd_channels_free(&srv, PVD_TCP_SETUP_MS + 1000);
	close(sigfd);
	rc = 0;
	if (stuck) {
		/* Their threads still use the server's state: remove the
		 * sockets and leave without freeing it. */
		fprintf(stderr, "gpupass-pvd: warning: %d session(s) stuck in a device call; exiting anyway\n",
			stuck);
		for (size_t i = 0; i < srv.n_listen; i++)
			unlink_ours(srv.cfg.listen.v[i] + 5, listen_ino[i]);
		for (size_t i = 0; i < srv.n_guests; i++)
			if (srv.guests[i].listen_fd >= 0)
				unlink_ours(srv.guests[i].own.socket, srv.guests[i].ino);
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
	for (size_t i = 0; srv.guests && i < srv.n_guests; i++) {
		guest_unlisten(&srv.guests[i]);
		free(srv.guests[i].own.name);
		free(srv.guests[i].own.socket);
		free(srv.guests[i].own.ivshmem);
		pthread_mutex_destroy(&srv.guests[i].lock);
	}
	if (pidfile)
		unlink(pidfile);
	if (srv.wake_pipe[0] >= 0) {
		close(srv.wake_pipe[0]);
		close(srv.wake_pipe[1]);
	}
	free(srv.listen_fds);
	free(listen_ino);
	free(srv.guests);
	free(srv.devs);
	free(srv.platform_name);
	gp_strv_clear(&listen);
	gp_pvd_config_clear(&srv.cfg);
	return rc;
}
