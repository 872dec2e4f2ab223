/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpupass-pvd's process model. The process started by the administrator
 * is the supervisor: it owns the listening sockets, identifies each
 * connection and hands it over to its guest's worker, a process of its own
 * started by exec of this binary (never a fork of a process that has
 * initialised OpenCL). A worker runs the session threads of one guest on
 * the host's OpenCL devices inside a Landlock sandbox, so a guest kernel
 * that crashes the OpenCL stack (PoCL runs kernels on the CPU, in the
 * worker) ends that guest's sessions only.
 *
 * The hand-over: an AF_UNIX SOCK_SEQPACKET pair per worker; each message
 * (struct pvd_handover) carries the connection in SCM_RIGHTS. After the
 * hand-over the guest talks to the worker directly (same socket, same
 * shared-memory ring): the supervisor is out of the data path.
 *
 * Lifetime: a worker stays while its guest has connections and leaves
 * PVD_IDLE_GRACE_NS after the last one ends: the supervisor closes its end
 * of the channel (it does so only when every hand-over was taken, so none
 * is lost) and the worker exits once its sessions are gone. A worker
 * whose supervisor dies ends its sessions and exits within a second (it
 * watches a pipe whose write end only the supervisor holds: getppid() is
 * 0 in the worker's own PID namespace, and PR_SET_PDEATHSIG would fire
 * when the supervisor's thread that started it ends, as the TCP listener
 * starts workers from its connection threads). Its confinement is
 * sandbox.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pvd.h"
#include <CL/cl_ext.h>

/* Descriptors a worker is started with. */
#define WORKER_TABLE_FD 3
#define WORKER_CHAN_FD 4

/* ---- the host's OpenCL devices (workers and the startup probe only) ---- */

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

static int backend_open(struct pvd_server *srv, bool probe_shared)
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
	if (!probe_shared)
		return srv->n_devs ? 0 : -ENODEV;
	srv->shared_ok = srv->n_devs > 0 && !getenv("GPUPASS_PVD_NO_SHARED");
	for (size_t i = 0; srv->shared_ok && i < srv->n_devs; i++)
		srv->shared_ok = probe_in_place(srv->devs[i].device);
	return srv->n_devs ? 0 : -ENODEV;
}

int pvd_backend_open(struct pvd_server *srv)
{
	return backend_open(srv, false);
}

/* ---- worker mode ---- */

static void log_worker(void *data, enum gp_log_level level, const char *msg)
{
	fprintf(stderr, "gpupass-pvd[%s]: %s: %s\n", (const char *)data, gp_log_level_name(level), msg);
}

void pvd_conn_end(struct pvd_server *srv, struct pvd_guest *g)
{
	(void)srv;
	if (__atomic_sub_fetch(&g->conns, 1, __ATOMIC_RELAXED) == 0)
		__atomic_store_n(&g->idle_since_ns, pvd_now_ns(), __ATOMIC_RELAXED);
}

static int worker_loop(struct pvd_server *srv, struct pvd_guest *g, uint32_t slot, int sigfd)
{
	uint64_t last_seq = 0;
	bool closing = false, queued = false;

	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = sigfd, .events = POLLIN },
			{ .fd = srv->wake_pipe[0], .events = POLLIN },
			{ .fd = closing ? -1 : WORKER_CHAN_FD, .events = POLLIN },
		};
		/* While a guest is connected, the watchdog's tick (a command
		 * may start any time); idle, once a second. */
		int r = poll(pfd, 3, queued || __atomic_load_n(&srv->sessions, __ATOMIC_RELAXED)
					     ? PVD_WATCH_TICK_MS : 1000);

		/* Commands that started run on the watchdog's clock; failed
		 * ones end their records (done.c). */
		queued = pvd_watch_tick(srv);
		pvd_done_poll(false);

		if (r < 0 && errno != EINTR)
			return -errno;
		if (pvd_sandbox_supervisor_gone()) {
			gp_warn(&srv->log, "the supervisor is gone: ending this guest's sessions");
			return 0;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			/* SIGTERM / SIGINT: the server stops. SIGHUP is the
			 * supervisor's (reload): a worker ignores it. */
			if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si) &&
			    si.ssi_signo != SIGHUP)
				return 0;
		}
		if (pfd[1].revents & POLLIN) {
			char buf[64];

			if (read(srv->wake_pipe[0], buf, sizeof(buf)) < 0) {
				/* reaping below is what counts */
			}
		}
		while (!closing && (pfd[2].revents & (POLLIN | POLLHUP | POLLERR))) {
			int fd = -1;

			r = pvd_handover_recv(WORKER_CHAN_FD, slot, &last_seq, &fd);
			if (r == -EAGAIN)
				break;
			if (r == -EPIPE) {
				closing = true; /* idle, or the supervisor is gone */
				break;
			}
			if (r < 0) {
				gp_warn(&srv->log, "refused a malformed hand-over from the supervisor: %s",
					strerror(-r));
				if (r != -EBADMSG && r != -EBADF)
					closing = true;
				continue;
			}
			/* Activity first, then the count: the supervisor retires an
			 * idle worker only when it took every hand-over. */
			__atomic_store_n(&g->idle_since_ns, pvd_now_ns(), __ATOMIC_RELAXED);
			__atomic_store_n(&g->received, last_seq, __ATOMIC_RELEASE);
			if (pvd_session_run(srv, g, fd, NULL) < 0)
				gp_err(&srv->log, "cannot start a session: out of resources");
		}
		pvd_session_reap(srv, false);
		if (closing) {
			bool none;

			pthread_mutex_lock(&srv->lock);
			none = srv->sessions == NULL;
			pthread_mutex_unlock(&srv->lock);
			if (none)
				return 0;
		}
	}
}

int pvd_worker_main(int argc, char **argv)
{
	struct pvd_worker_args a;
	struct pvd_server srv = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.wake_pipe = { -1, -1 },
	};
	struct pvd_guest *g;
	sigset_t mask;
	int r, sigfd = -1, rc = 1;
	char name[PVD_NAME_MAX];

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* the supervisor's business */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pvd_worker_args_parse(argc, argv, &a) < 0) {
		fprintf(stderr, "gpupass-pvd: %s is internal: the supervisor starts workers\n",
			PVD_WORKER_ARG);
		return 2;
	}
	/* exec of /proc/self/exe names the process "exe": name it for ps
	 * and top (the arguments say which guest slot). */
	prctl(PR_SET_NAME, "gpupass-worker", 0, 0, 0);
	/* The supervisor may have died before this line (worker_loop
	 * watches it from then on). */
	if (pvd_sandbox_supervisor_gone())
		return 1;
	r = pvd_table_map(WORKER_TABLE_FD, &srv.table);
	if (r < 0 || a.slot >= pvd_n_guests(&srv)) {
		fprintf(stderr, "gpupass-pvd: worker: no guest table from the supervisor\n");
		return 1;
	}
	close(WORKER_TABLE_FD); /* the mapping stays */
	/* Not for whatever the OpenCL stack may execute. */
	if (fcntl(WORKER_CHAN_FD, F_SETFD, FD_CLOEXEC) < 0) {
		fprintf(stderr, "gpupass-pvd: worker: no hand-over channel from the supervisor\n");
		pvd_table_unmap(srv.table);
		return 1;
	}
	srv.guests = srv.table->guests;
	g = &srv.guests[a.slot];
	memcpy(name, g->name, sizeof(name));
	name[sizeof(name) - 1] = '\0';
	srv.log = (struct gp_log){ .fn = log_worker, .data = name,
				   .max_level = a.verbose >= 2 ? GP_LOG_DEBUG :
						a.verbose ? GP_LOG_INFO : GP_LOG_WARN };
	srv.spin_ns = a.spin_ns;
	/* Probed once by the supervisor's startup probe on the same devices. */
	srv.shared_ok = a.shared_ok;
	for (size_t i = 0; i < a.n_devices; i++)
		if (gp_strv_push(&srv.cfg.devices, a.devices[i]) < 0)
			goto out;
	/* The compiler's caches and temporary files go to the guest's own
	 * directory, the only one it may write. */
	if (setenv("TMPDIR", a.dir, 1) < 0 || setenv("POCL_CACHE_DIR", a.dir, 1) < 0 ||
	    setenv("XDG_CACHE_HOME", a.dir, 1) < 0 || setenv("HOME", a.dir, 1) < 0)
		goto out;
	/* Confined (Landlock, then seccomp) before OpenCL starts. */
	if (pvd_sandbox_worker(&srv, g, a.dir) < 0)
		goto out;
	if (backend_open(&srv, false) < 0) {
		gp_err(&srv.log, "no host OpenCL device in the worker");
		goto out;
	}
	if (pvd_watch_init(&srv, g) < 0 || pvd_builds_init(&srv) < 0)
		goto out;
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sigfd < 0 || pipe2(srv.wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		goto out;
	pvd_done_init(srv.wake_pipe[1]);
	gp_info(&srv.log, "worker %d started (%zu device(s)%s)", (int)getpid(), srv.n_devs,
		srv.shared_ok ? ", buffers shared in place" : "");
	r = worker_loop(&srv, g, a.slot, sigfd);
	__atomic_store_n(&srv.stop, 1, __ATOMIC_RELEASE);
	if (pvd_session_stop_all(&srv, 5000) > 0) {
		/* Threads stuck in a device call still use the state. */
		fflush(NULL);
		_exit(0);
	}
	rc = r < 0 ? 1 : 0;
out:
	if (sigfd >= 0)
		close(sigfd);
	if (srv.wake_pipe[0] >= 0) {
		close(srv.wake_pipe[0]);
		close(srv.wake_pipe[1]);
	}
	pvd_watch_free(&srv);
	pvd_builds_free(&srv);
	free(srv.devs);
	free(srv.platform_name);
	gp_strv_clear(&srv.cfg.devices);
	pvd_sandbox_free(srv.sandbox);
	pvd_table_unmap(srv.table);
	return rc;
}

/* gpupass-pvd --probe-devices [DEVICE...]: the supervisor's startup check
 * that there is something to serve, in a process of its own (the
 * supervisor never initialises OpenCL). Prints one line, "DEVICES SHARED
 * LANDLOCK_ABI PLATFORM"; exit 0 or 1. */
int pvd_probe_main(int argc, char **argv)
{
	struct pvd_server srv = { .lock = PTHREAD_MUTEX_INITIALIZER };
	int rc = 1;

	for (int i = 2; i < argc; i++)
		if (gp_strv_push(&srv.cfg.devices, argv[i]) < 0)
			goto out;
	if (backend_open(&srv, true) == 0) {
		int abi = pvd_sandbox_abi();

		printf("%zu %d %d %s\n", srv.n_devs, srv.shared_ok ? 1 : 0, abi > 0 ? abi : 0,
		       srv.platform_name ? srv.platform_name : "?");
		rc = 0;
	}
out:
	fflush(stdout);
	free(srv.devs);
	free(srv.platform_name);
	gp_strv_clear(&srv.cfg.devices);
	return rc;
}
