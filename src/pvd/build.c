/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded builds (issue 10). A guest's program source reaches the host's
 * compiler, which a few hundred bytes of macros can keep busy for many
 * minutes and gigabytes, or crash (deep recursion in the parser). So before
 * the worker builds for real, the same build runs in a checker: this binary
 * exec'd again in the hidden `--build-check` mode (never a fork of a process
 * that initialised OpenCL), with the same source, headers, options and
 * devices, under RLIMIT_AS / RLIMIT_CPU, watched by the worker for
 * build_timeout (wall clock) and for its resident memory, which counts
 * against the guest's memory_max while it runs. A check that ends badly is
 * that program's build failure (CL_BUILD_PROGRAM_FAILURE, the reason in its
 * build log); the worker and the guest's other sessions go on. A check that
 * passes leaves the compiled program in PoCL's kernel cache (the worker's
 * private POCL_CACHE_DIR, inherited), so the real build is a cache hit.
 *
 * The worker keeps one checker for the builds that come one after
 * another: starting one costs ~0.1 s and its first build loads the
 * compiler's kernel library (~1 s here), which later builds reuse, so a
 * cold build through PV costs about what it costs natively. A build that
 * comes while the kept checker is busy gets a checker of its own (ended
 * after it), so no build waits behind another. A checker that timed out,
 * crashed or grew too big is killed; a kept one ends after BC_IDLE_MS
 * idle, BC_SERVE_MAX builds, or when it holds more than BC_RECYCLE.
 *
 * The worker and a checker talk over a SOCK_SEQPACKET socket (the child's
 * fd 3): struct bc_job with the request in a memfd (SCM_RIGHTS), answered
 * by BC_STARTED (its resident size once the build's context is up) and
 * BC_DONE (BC_EXIT_*). The request: "GPBC", u32 kind (0 build,
 * 1 compile), u32 n, u32 device index[n] (into the worker's device list,
 * which the child enumerates the same way), u32 m, m x {u32 name length,
 * name, u64 length, text} (the program's source first, then the compile's
 * headers with their include names), u32 options length, options.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pvd.h"
#include "transport/transport.h"

#define BC_MAGIC 0x43425047u /* "GPBC" */
#define BC_EXIT_BUILT 0
#define BC_EXIT_UNCHECKED 2
#define BC_EXIT_BUILD_ERROR 3
/* Room above the build's own memory for what OpenCL maps at start. */
#define BC_AS_SLACK (512ull << 20)
/* The compiler's own working set that is not the guest's to pay: LLVM
 * holds ~160 MiB of anonymous memory to build a one-line kernel on a
 * cold cache (measured, PoCL 3.1), so a guest with memory_max = 64M
 * could build nothing if all of it counted. Beyond this allowance, what
 * a build holds counts against memory_max (charged while it runs). */
#if defined(__SANITIZE_ADDRESS__)
#define BC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BC_SANITIZED 1
#endif
#endif
#ifdef BC_SANITIZED
/* AddressSanitizer's shadow memory and quarantine triple a build's
 * anonymous memory (the test builds: measured ~700 MiB for pv_basic's
 * kernels at memory_max = 16M). */
#define BC_ALLOWANCE (768ull << 20)
#else
#define BC_ALLOWANCE (256ull << 20)
#endif
/* How often the worker looks at the child's memory. */
#define BC_POLL_MS 20
/* A checker idle this long ends (it holds the compiler's memory). */
#define BC_IDLE_MS 10000
/* Builds one checker serves before a fresh one takes over, and the
 * resident memory past which it ends after a build. */
#define BC_SERVE_MAX 256
#define BC_RECYCLE (2 * BC_ALLOWANCE)
/* The child's end of its socket. */
#define BC_FD 3

/* worker -> checker, with the request's memfd (SCM_RIGHTS) */
struct bc_job {
	uint64_t cap;   /* bytes the build may hold above its start */
	uint64_t cpu_s; /* CPU seconds it may use */
};
/* checker -> worker */
struct bc_reply {
	uint32_t kind; /* BC_STARTED: value is its resident bytes; BC_DONE: code */
	uint32_t code; /* BC_EXIT_* */
	uint64_t value;
};
#define BC_STARTED 1u
#define BC_DONE 2u

extern char **environ;

/* ---- the worker's side ---- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static void put(struct wbuf *b, const void *data, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *np;

		while (cap < b->len + n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void put32(struct wbuf *b, uint32_t v)
{
	put(b, &v, sizeof(v));
}

static void put64(struct wbuf *b, uint64_t v)
{
	put(b, &v, sizeof(v));
}

/* A program's source (NULL: made from a binary or built-ins). */
static char *program_source(cl_program p, size_t *len)
{
	size_t n = 0;
	char *src;

	if (clGetProgramInfo(p, CL_PROGRAM_SOURCE, 0, NULL, &n) != CL_SUCCESS || n <= 1)
		return NULL;
	src = malloc(n);
	if (src && clGetProgramInfo(p, CL_PROGRAM_SOURCE, n, src, NULL) != CL_SUCCESS) {
		free(src);
		return NULL;
	}
	*len = src ? strnlen(src, n) : 0;
	return src;
}

/* The index in the worker's list of @d's root device, or -1. */
static int device_index(const struct pvd_server *srv, cl_device_id d)
{
	for (int depth = 0; d && depth < 16; depth++) {
		cl_device_id parent = NULL;

		for (size_t i = 0; i < srv->n_devs; i++)
			if (srv->devs[i].device == d)
				return (int)i;
		if (clGetDeviceInfo(d, CL_DEVICE_PARENT_DEVICE, sizeof(parent), &parent, NULL) != CL_SUCCESS)
			return -1;
		d = parent;
	}
	return -1;
}

static int request(const struct pvd_server *srv, const struct pvd_build_req *req, int *memfd,
		   struct wbuf *out)
{
	cl_device_id pdevs[64];
	const cl_device_id *devs = req->devs;
	uint32_t n = req->n_devs;
	struct wbuf b = { 0 };
	size_t len = 0;
	char *src = program_source(req->prog, &len);
	int fd, r = 0;

	if (!src)
		return -ENOENT; /* nothing the compiler front end reads */
	if (n == 0) {
		size_t got = 0;

		if (clGetProgramInfo(req->prog, CL_PROGRAM_DEVICES, sizeof(pdevs), pdevs, &got) != CL_SUCCESS) {
			free(src);
			return -EINVAL;
		}
		devs = pdevs;
		n = (uint32_t)(got / sizeof(pdevs[0]));
	}
	put32(&b, BC_MAGIC);
	put32(&b, req->compile ? 1u : 0u);
	put32(&b, n);
	for (uint32_t i = 0; i < n; i++) {
		int k = device_index(srv, devs[i]);

		if (k < 0)
			r = -ENODEV;
		put32(&b, (uint32_t)(k < 0 ? 0 : k));
	}
	put32(&b, 1 + req->n_headers);
	put32(&b, 0);
	put64(&b, len);
	put(&b, src, len);
	free(src);
	for (uint32_t i = 0; i < req->n_headers && r == 0; i++) {
		/* A header without source (made from a binary) is empty to
		 * the compiler: so it is to the check (never a way around it). */
		char *h = program_source(req->headers[i], &len);

		if (!h)
			len = 0;
		put32(&b, (uint32_t)strlen(req->header_names[i]));
		put(&b, req->header_names[i], strlen(req->header_names[i]));
		put64(&b, len);
		put(&b, h ? h : "", len);
		free(h);
	}
	put32(&b, (uint32_t)strlen(req->options));
	put(&b, req->options, strlen(req->options));
	if (r == 0 && b.oom)
		r = -ENOMEM;
	fd = r == 0 ? memfd_create("gpupass-build", MFD_CLOEXEC) : -1;
	if (r == 0 && fd < 0)
		r = -errno;
	for (size_t off = 0; r == 0 && off < b.len;) {
		ssize_t w = write(fd, b.p + off, b.len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			r = w < 0 ? -errno : -EIO;
		else
			off += (size_t)w;
	}
	if (r < 0) {
		free(b.p);
		if (fd >= 0)
			close(fd);
		return r;
	}
	*memfd = fd;
	*out = b;
	return 0;
}

/* Requests whose check ended well (built, or a plain build error): the
 * same bytes again need no second check; PoCL's cache makes their real
 * build cheap, and a child costs ~0.4 s (exec and OpenCL start). Byte
 * for byte, so nothing else can pass for one of them. */
#define PASSED_MAX 32
#define PASSED_ENTRY_MAX (1u << 20)
/* A checker: the child that builds (SOCK_SEQPACKET on its fd 3, its
 * stderr a memfd). */
struct checker {
	pid_t pid;
	int sock, errfd;
};

struct pvd_builds {
	pthread_mutex_t lock;
	struct wbuf e[PASSED_MAX];
	size_t next;
	/* The kept checker, held by one build at a time (the others get a
	 * checker of their own: no guest build waits behind another). */
	pthread_mutex_t ck_lock;
	struct checker ck;
};

static void checker_stop(struct checker *c);

int pvd_builds_init(struct pvd_server *srv)
{
	srv->builds = calloc(1, sizeof(*srv->builds));
	if (!srv->builds)
		return -ENOMEM;
	pthread_mutex_init(&srv->builds->lock, NULL);
	pthread_mutex_init(&srv->builds->ck_lock, NULL);
	srv->builds->ck = (struct checker){ .pid = -1, .sock = -1, .errfd = -1 };
	return 0;
}

void pvd_builds_free(struct pvd_server *srv)
{
	if (!srv->builds)
		return;
	for (size_t i = 0; i < PASSED_MAX; i++)
		free(srv->builds->e[i].p);
	checker_stop(&srv->builds->ck);
	pthread_mutex_destroy(&srv->builds->ck_lock);
	pthread_mutex_destroy(&srv->builds->lock);
	free(srv->builds);
	srv->builds = NULL;
}

static bool passed_before(struct pvd_builds *pb, const struct wbuf *b)
{
	bool hit = false;

	if (!pb)
		return false;
	pthread_mutex_lock(&pb->lock);
	for (size_t i = 0; i < PASSED_MAX && !hit; i++)
		hit = pb->e[i].p && pb->e[i].len == b->len && memcmp(pb->e[i].p, b->p, b->len) == 0;
	pthread_mutex_unlock(&pb->lock);
	return hit;
}

static void passed_add(struct pvd_builds *pb, struct wbuf *b)
{
	if (!pb || b->len > PASSED_ENTRY_MAX)
		return;
	pthread_mutex_lock(&pb->lock);
	free(pb->e[pb->next].p);
	pb->e[pb->next] = *b;
	pb->next = (pb->next + 1) % PASSED_MAX;
	pthread_mutex_unlock(&pb->lock);
	*b = (struct wbuf){ 0 };
}

/* A "Key:   N kB" field of /proc/PID/status in bytes, 0 when unknown. */
static uint64_t status_bytes(pid_t pid, const char *key)
{
	char path[64], buf[4096], *p;
	unsigned long long kib = 0;
	size_t kl = strlen(key);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (p = buf; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, kl) == 0 && p[kl] == ':')
			return sscanf(p + kl + 1, "%llu", &kib) == 1 ? (uint64_t)kib << 10 : 0;
	return 0;
}

/* Anonymous memory only: the compiler's libraries are file pages every
 * worker shares. */
static uint64_t rss_bytes(pid_t pid)
{
	return status_bytes(pid, "RssAnon");
}

static void fmt_ms(uint64_t ms, char *buf, size_t len)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 " s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 " ms", ms);
}

/* What the child's stderr says about memory (LLVM and the C++ runtime
 * say so when an allocation fails under RLIMIT_AS). */
static bool said_oom(int errfd)
{
	char buf[8192];
	ssize_t n = pread(errfd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "out of memory") || strstr(buf, "bad_alloc") ||
	       strstr(buf, "Cannot allocate memory");
}

/* ---- the checker: one process, many builds ---- */

/* Starts a checker: this binary again, in a fresh exec (never a fork of
 * a process that initialised OpenCL). */
static int checker_start(const struct pvd_server *srv, struct checker *c)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	int sv[2], r;
	char **argv;

	*c = (struct checker){ .pid = -1, .sock = -1, .errfd = -1 };
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	c->errfd = memfd_create("gpupass-build-err", MFD_CLOEXEC);
	/* Appended to by the child, emptied by the worker per build. */
	argv = calloc(3 + srv->cfg.devices.n, sizeof(*argv));
	if (c->errfd < 0 || fcntl(c->errfd, F_SETFL, O_APPEND) < 0 || !argv) {
		r = argv ? -errno : -ENOMEM;
		free(argv);
		close(sv[0]);
		close(sv[1]);
		checker_stop(c);
		return r;
	}
	argv[0] = "gpupass-build-check";
	argv[1] = PVD_BUILD_CHECK_ARG;
	for (size_t i = 0; i < srv->cfg.devices.n; i++)
		argv[2 + i] = srv->cfg.devices.v[i];
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, c->errfd, 2);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
	/* Nothing else of the worker: not the guests' connections. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 4);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	r = -posix_spawn(&c->pid, "/proc/self/exe", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(argv);
	close(sv[1]);
	c->sock = sv[0];
	if (r < 0) {
		c->pid = -1;
		checker_stop(c);
	}
	return r;
}

/* Kills and reaps it; the exit status (-1: none). */
static int checker_end(struct checker *c)
{
	int status = -1, r;

	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		do {
			r = waitpid(c->pid, &status, 0);
		} while (r < 0 && errno == EINTR);
		if (r < 0)
			status = -1;
	}
	c->pid = -1;
	return status;
}

static void checker_stop(struct checker *c)
{
	checker_end(c);
	if (c->sock >= 0)
		close(c->sock);
	if (c->errfd >= 0)
		close(c->errfd);
	*c = (struct checker){ .pid = -1, .sock = -1, .errfd = -1 };
}

/* A kept checker that ended by itself (idle, or recycled) is reaped. */
static bool checker_alive(struct checker *c)
{
	int status;

	if (c->pid <= 0)
		return false;
	if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
		c->pid = -1;
		checker_stop(c);
		return false;
	}
	return true;
}

/* How one build went in a checker. */
struct watch {
	bool started, done, died, timed_out, too_big, hung_up;
	uint32_t code;
	uint64_t charged;
};

/* Sends the request and watches the build: the deadline, its memory
 * (charged to @g while it runs), the guest's hang-up, the answer. */
static void watch_build(struct checker *c, struct pvd_guest *g, const struct pvd_build_req *req,
			int reqfd, const struct bc_job *job, uint64_t tmo_ms, struct watch *w)
{
	uint64_t deadline = pvd_now_ns() + tmo_ms * 1000000ull, base = 0;

	*w = (struct watch){ 0 };
	if (ftruncate(c->errfd, 0) < 0 || gp_msg_send_fd(c->sock, job, sizeof(*job), reqfd) < 0) {
		w->died = true;
		return;
	}
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->sock, .events = POLLIN },
			{ .fd = req->conn_fd, .events = POLLRDHUP },
		};
		uint64_t rss, charge;
		int n = poll(p, req->conn_fd >= 0 ? 2 : 1, BC_POLL_MS);

		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (p[0].revents & POLLIN)) {
			struct bc_reply m;
			ssize_t k = gp_msg_recv_fd(c->sock, &m, sizeof(m), NULL, MSG_DONTWAIT);

			if (k == (ssize_t)sizeof(m) && m.kind == BC_STARTED && !w->started) {
				w->started = true;
				base = m.value;
			} else if (k == (ssize_t)sizeof(m) && m.kind == BC_DONE) {
				w->done = true;
				w->code = m.code;
				break;
			} else if (k != -EAGAIN) {
				w->died = true; /* it hung up, or said nonsense */
				break;
			}
		} else if (n > 0 && (p[0].revents & (POLLHUP | POLLERR))) {
			w->died = true;
			break;
		}
		if (n > 0 && req->conn_fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			w->hung_up = true;
			break; /* nobody waits for this build */
		}
		if (pvd_now_ns() >= deadline) {
			w->timed_out = true;
			break;
		}
		/* The build's own memory: what it holds above what it held at
		 * its start, charged to the guest while it runs. */
		rss = w->started ? rss_bytes(c->pid) : 0;
		rss = rss > base ? rss - base : 0;
		charge = rss > BC_ALLOWANCE ? rss - BC_ALLOWANCE : 0;
		if (charge > w->charged)
			__atomic_add_fetch(&g->mem_used, charge - w->charged, __ATOMIC_RELAXED);
		else
			__atomic_sub_fetch(&g->mem_used, w->charged - charge, __ATOMIC_RELAXED);
		w->charged = charge;
		if (rss > job->cap) {
			w->too_big = true;
			break;
		}
	}
	__atomic_sub_fetch(&g->mem_used, w->charged, __ATOMIC_RELAXED);
}

int pvd_build_check(struct pvd_server *srv, struct pvd_guest *g, const struct pvd_build_req *req,
		    char **why)
{
	uint64_t tmo_ms = __atomic_load_n(&g->build_timeout_ms, __ATOMIC_RELAXED);
	uint64_t cap = __atomic_load_n(&g->build_memory_max, __ATOMIC_RELAXED);
	uint64_t mmax = __atomic_load_n(&g->memory_max, __ATOMIC_RELAXED);
	uint64_t used = __atomic_load_n(&g->mem_used, __ATOMIC_RELAXED);
	struct pvd_builds *pb = srv->builds;
	struct checker own = { .pid = -1, .sock = -1, .errfd = -1 }, *c = &own;
	bool capped_by_quota = false, kept = false, oom;
	char lim[32], capstr[32];
	struct wbuf bytes = { 0 };
	struct bc_job job;
	struct watch w;
	int reqfd = -1, status, r;

	*why = NULL;
	if (getenv("GPUPASS_PVD_TEST_NO_BUILD_CHECK"))
		return 0; /* tests only: shows what happens without it */
	if (mmax) {
		uint64_t left = (used < mmax ? mmax - used : 0) + BC_ALLOWANCE;

		if (left < cap) {
			cap = left;
			capped_by_quota = true;
		}
	}
	gp_format_size(cap, capstr, sizeof(capstr));
	r = request(srv, req, &reqfd, &bytes);
	if (r == -ENOENT)
		return 0; /* from a binary: see the README (not checked) */
	if (r < 0)
		goto unchecked;
	if (passed_before(pb, &bytes)) {
		close(reqfd);
		free(bytes.p);
		return 0;
	}
	/* RLIMIT_CPU backs the wall-clock deadline up. */
	job = (struct bc_job){ .cap = cap, .cpu_s = tmo_ms / 1000 + 2 };
	if (pb && pthread_mutex_trylock(&pb->ck_lock) == 0) {
		kept = true;
		c = &pb->ck;
	}
	/* A kept checker may have ended (idle) just as the request went: a
	 * build it never started goes to a new one. */
	for (int attempt = 0;; attempt++) {
		if (kept && !checker_alive(c) && c->pid <= 0)
			checker_stop(c);
		if (c->pid <= 0 && (r = checker_start(srv, c)) < 0) {
			if (kept)
				pthread_mutex_unlock(&pb->ck_lock);
			goto unchecked;
		}
		watch_build(c, g, req, reqfd, &job, tmo_ms, &w);
		if (!(w.died && !w.started && kept && attempt == 0))
			break;
		checker_stop(c);
	}
	close(reqfd);
	reqfd = -1;
	oom = !w.done && said_oom(c->errfd);
	if (w.done) {
		status = (int)(w.code & 0xff) << 8; /* as an exit with that code */
	} else {
		status = checker_end(c);
		if (status < 0)
			status = BC_EXIT_UNCHECKED << 8; /* never taken for a pass */
	}
	if (!kept || !w.done)
		checker_stop(c);
	if (kept)
		pthread_mutex_unlock(&pb->ck_lock);

	fmt_ms(tmo_ms, lim, sizeof(lim));
	if (w.timed_out || (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU))
		*why = gp_strdup_printf("gpupass: the build was stopped after %s (build_timeout)", lim);
	else if (w.too_big || (WIFSIGNALED(status) && oom) ||
		 (WIFEXITED(status) && WEXITSTATUS(status) != BC_EXIT_BUILT &&
		  WEXITSTATUS(status) != BC_EXIT_BUILD_ERROR && oom))
		*why = gp_strdup_printf("gpupass: the build was stopped: it needed more than %s "
					"(%s)", capstr, capped_by_quota ? "what memory_max leaves" :
									  "build_memory_max");
	else if (w.hung_up)
		*why = gp_strdup_printf("gpupass: the build was stopped: the guest hung up");
	else if (WIFSIGNALED(status))
		*why = gp_strdup_printf("gpupass: the compiler crashed with SIG%s on this program",
					sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
	else if (WIFEXITED(status) && WEXITSTATUS(status) != BC_EXIT_BUILT &&
		 WEXITSTATUS(status) != BC_EXIT_BUILD_ERROR)
		*why = gp_strdup_printf("gpupass: the build could not be checked (exit status %d); "
					"see the server's log", WEXITSTATUS(status));
	if (*why)
		gp_warn(&srv->log, "guest '%s': %s", g->name, *why + 9);
	else
		passed_add(pb, &bytes);
	free(bytes.p);
	return 0;

unchecked:
	free(bytes.p);
	if (reqfd >= 0)
		close(reqfd);
	*why = gp_strdup_printf("gpupass: the build could not be checked: %s", strerror(-r));
	gp_err(&srv->log, "guest '%s': cannot run a build check: %s", g->name, strerror(-r));
	return 0;
}

/* ---- the child: gpupass-pvd --build-check [DEVICE...] ---- */

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static const void *take(struct rbuf *b, size_t n)
{
	const void *v = b->p + b->off;

	if (b->bad || n > b->len - b->off) {
		b->bad = true;
		return NULL;
	}
	b->off += n;
	return v;
}

static uint32_t take32(struct rbuf *b)
{
	const void *v = take(b, 4);
	uint32_t x = 0;

	if (v)
		memcpy(&x, v, 4);
	return x;
}

static uint64_t take64(struct rbuf *b)
{
	const void *v = take(b, 8);
	uint64_t x = 0;

	if (v)
		memcpy(&x, v, 8);
	return x;
}

static char *take_str(struct rbuf *b, size_t n)
{
	const char *v = take(b, n);
	char *s = v ? malloc(n + 1) : NULL;

	if (s) {
		memcpy(s, v, n);
		s[n] = '\0';
	}
	return s;
}

struct check {
	cl_context ctx;
	cl_device_id devs[64];
	uint32_t n_devs;
	bool compile;
	uint32_t n_src;
	char *names[257], *texts[257];
	char *options;
	cl_int err;
	bool created, shared_ctx;
};

/* A context that lives as long as the checker, on all its devices: PoCL
 * unloads the compiler's kernel library (~1 s to load here) when its last
 * context goes, and a build on exactly these devices needs no context of
 * its own. */
static struct {
	cl_context ctx;
	cl_device_id devs[64];
	uint32_t n;
} warm;

static void *check_thread(void *arg)
{
	struct check *c = arg;
	cl_program progs[257] = { NULL };
	const char *names[257] = { NULL };
	cl_int err = CL_SUCCESS;

	for (uint32_t i = 0; i < c->n_src; i++)
		names[i] = c->names[i];

	for (uint32_t i = 0; i < c->n_src && err == CL_SUCCESS; i++) {
		const char *t = c->texts[i];

		progs[i] = clCreateProgramWithSource(c->ctx, 1, &t, NULL, &err);
	}
	/* What the check could not even start is no pass. */
	c->created = err == CL_SUCCESS;
	if (err == CL_SUCCESS && c->compile)
		err = clCompileProgram(progs[0], c->n_devs, c->devs, c->options, c->n_src - 1,
				       c->n_src > 1 ? progs + 1 : NULL,
				       c->n_src > 1 ? names + 1 : NULL, NULL, NULL);
	else if (err == CL_SUCCESS)
		err = clBuildProgram(progs[0], c->n_devs, c->devs, c->options, NULL, NULL);
	c->err = err;
	for (uint32_t i = 0; i < c->n_src; i++)
		if (progs[i])
			clReleaseProgram(progs[i]);
	return NULL;
}

/* The request's bytes (the layout at the top). */
static int parse_request(const struct pvd_server *srv, struct rbuf *b, struct check *c)
{
	if (take32(b) != BC_MAGIC)
		return -EINVAL;
	c->compile = take32(b) == 1;
	c->n_devs = take32(b);
	if (c->n_devs == 0 || c->n_devs > 64)
		return -EINVAL;
	for (uint32_t i = 0; i < c->n_devs; i++) {
		uint32_t k = take32(b);

		if (k >= srv->n_devs)
			return -EINVAL;
		c->devs[i] = srv->devs[k].device;
	}
	c->n_src = take32(b);
	if (c->n_src == 0 || c->n_src > 257)
		return -EINVAL;
	for (uint32_t i = 0; i < c->n_src && !b->bad; i++) {
		uint32_t nl = take32(b);

		c->names[i] = take_str(b, nl);
		c->texts[i] = take_str(b, (size_t)take64(b));
	}
	c->options = take_str(b, take32(b));
	return b->bad || !c->options ? -EINVAL : 0;
}

static void check_free(struct check *c)
{
	for (uint32_t i = 0; i < 257; i++) {
		free(c->names[i]);
		free(c->texts[i]);
	}
	free(c->options);
	if (c->ctx && !c->shared_ctx)
		clReleaseContext(c->ctx);
}

static int reply(uint32_t kind, uint32_t code, uint64_t value)
{
	struct bc_reply m = { .kind = kind, .code = code, .value = value };

	return gp_msg_send_fd(BC_FD, &m, sizeof(m), -1);
}

/* This build's limits: CPU seconds from now, address space above what
 * the process maps now (RLIM_INFINITY: none, between builds). */
static void set_limits(const struct bc_job *job)
{
	struct rlimit rl;
	struct rusage ru;

	if (getrlimit(RLIMIT_CPU, &rl) == 0 && getrusage(RUSAGE_SELF, &ru) == 0) {
		uint64_t now = (uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec + 1;

		rl.rlim_cur = job ? now + job->cpu_s : RLIM_INFINITY;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_CPU, &rl);
	}
	if (getrlimit(RLIMIT_AS, &rl) == 0) {
		uint64_t vm = status_bytes(getpid(), "VmSize");

		rl.rlim_cur = job && vm ? vm + job->cap + BC_AS_SLACK : RLIM_INFINITY;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_AS, &rl);
	}
}

/* One build: its exit code (BC_EXIT_*). */
static int serve(const struct pvd_server *srv, int memfd, const struct bc_job *job)
{
	struct check c = { 0 };
	struct rbuf b;
	struct stat st;
	pthread_t th;
	void *map;
	int rc = BC_EXIT_UNCHECKED;

	if (fstat(memfd, &st) < 0 || st.st_size < 16)
		return rc;
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, memfd, 0);
	if (map == MAP_FAILED)
		return rc;
	b = (struct rbuf){ .p = map, .len = (size_t)st.st_size };
	if (parse_request(srv, &b, &c) == 0 && warm.ctx && c.n_devs == warm.n &&
	    memcmp(c.devs, warm.devs, c.n_devs * sizeof(c.devs[0])) == 0) {
		c.ctx = warm.ctx;
		c.shared_ctx = true;
	} else if (!b.bad && c.options) {
		c.ctx = clCreateContext(NULL, c.n_devs, c.devs, NULL, NULL, &c.err);
	}
	/* From here on, the memory is the build's: the worker measures it
	 * above this, and the address space gets that much room more. */
	if (c.ctx) {
		set_limits(job);
		/* In a thread with the default attributes, as the worker's
		 * session threads: the same stack, so the same recursion fits
		 * or not. */
		if (reply(BC_STARTED, 0, rss_bytes(getpid())) == 0 &&
		    pthread_create(&th, NULL, check_thread, &c) == 0) {
			pthread_join(th, NULL);
			rc = !c.created ? BC_EXIT_UNCHECKED :
			     c.err == CL_SUCCESS ? BC_EXIT_BUILT : BC_EXIT_BUILD_ERROR;
		}
	}
	check_free(&c);
	munmap(map, (size_t)st.st_size);
	set_limits(NULL);
	/* What the compiler freed goes back now, not at the next build. */
	if (rss_bytes(getpid()) > BC_ALLOWANCE / 2)
		malloc_trim(0);
	return rc;
}

int pvd_build_check_main(int argc, char **argv)
{
	struct pvd_server srv = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct rlimit rl = { 0, 0 };
	int idle_ms = BC_IDLE_MS;
	cl_int err;

	prctl(PR_SET_NAME, "gpupass-build", 0, 0, 0);
	setrlimit(RLIMIT_CORE, &rl);
	for (int i = 2; i < argc; i++)
		if (gp_strv_push(&srv.cfg.devices, argv[i]) < 0)
			return BC_EXIT_UNCHECKED;
	if (pvd_backend_open(&srv) < 0) {
		fprintf(stderr, "gpupass-pvd build check: no OpenCL device\n");
		return BC_EXIT_UNCHECKED;
	}
	warm.n = srv.n_devs < 64 ? (uint32_t)srv.n_devs : 64;
	for (uint32_t i = 0; i < warm.n; i++)
		warm.devs[i] = srv.devs[i].device;
	warm.ctx = clCreateContext(NULL, warm.n, warm.devs, NULL, NULL, &err);
	if (!warm.ctx)
		fprintf(stderr, "gpupass-pvd build check: no context (%d): builds are slower\n", (int)err);
	/* Tests only: a shorter idle time, to see a checker end. */
	if (getenv("GPUPASS_PVD_TEST_CHECKER_IDLE_MS"))
		idle_ms = atoi(getenv("GPUPASS_PVD_TEST_CHECKER_IDLE_MS"));
	for (unsigned served = 0; served < BC_SERVE_MAX; served++) {
		struct bc_job job;
		int memfd = -1, rc;
		ssize_t n;

		/* Idle too long, or the worker is gone: the end. */
		if (gp_fd_wait(BC_FD, POLLIN, idle_ms) < 0)
			break;
		n = gp_msg_recv_fd(BC_FD, &job, sizeof(job), &memfd, 0);
		if (n != (ssize_t)sizeof(job) || memfd < 0) {
			if (memfd >= 0)
				close(memfd);
			break;
		}
		rc = serve(&srv, memfd, &job);
		close(memfd);
		if (reply(BC_DONE, (uint32_t)rc, 0) < 0)
			break;
		/* What the compiler keeps between builds is nobody's quota:
		 * past a bound, the next build gets a fresh checker. */
		if (rss_bytes(getpid()) > BC_RECYCLE)
			break;
	}
	/* No clean-up: the process ends here (OpenCL's own teardown is the
	 * slow part, and nothing is shared). */
	fflush(NULL);
	_exit(0);
}
