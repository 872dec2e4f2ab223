/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded builds (issue 10). A guest's program source reaches the host's
 * compiler, which a few hundred bytes of macros can keep busy for many
 * minutes and gigabytes, or crash (deep recursion in the parser). So before
 * the worker builds for real, the same build runs in a child: this binary
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
 * The request goes to the child in a memfd on fd 3: "GPBC", u32 kind
 * (0 build, 1 compile), u32 n, u32 device index[n] (into the worker's device
 * list, which the child enumerates the same way), u32 m, m x {u32 name
 * length, name, u64 length, text} (the program's source first, then the
 * compile's headers with their include names), u32 options length,
 * options. The child writes its resident size once OpenCL is up (u64, on
 * fd 1, a pipe) and exits 0 (built), 3 (a build error: the real build
 * gives the log) or 2 (could not check).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
struct pvd_builds {
	pthread_mutex_t lock;
	struct wbuf e[PASSED_MAX];
	size_t next;
};

int pvd_builds_init(struct pvd_server *srv)
{
	srv->builds = calloc(1, sizeof(*srv->builds));
	if (!srv->builds)
		return -ENOMEM;
	pthread_mutex_init(&srv->builds->lock, NULL);
	return 0;
}

void pvd_builds_free(struct pvd_server *srv)
{
	if (!srv->builds)
		return;
	for (size_t i = 0; i < PASSED_MAX; i++)
		free(srv->builds->e[i].p);
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

int pvd_build_check(struct pvd_server *srv, struct pvd_guest *g, const struct pvd_build_req *req,
		    char **why)
{
	uint64_t tmo_ms = __atomic_load_n(&g->build_timeout_ms, __ATOMIC_RELAXED);
	uint64_t cap = __atomic_load_n(&g->build_memory_max, __ATOMIC_RELAXED);
	uint64_t mmax = __atomic_load_n(&g->memory_max, __ATOMIC_RELAXED);
	uint64_t used = __atomic_load_n(&g->mem_used, __ATOMIC_RELAXED);
	uint64_t deadline, base = 0, charged = 0;
	bool capped_by_quota = false, have_base = false, timed_out = false, too_big = false;
	char a_cap[24], a_cpu[24], lim[32], capstr[32];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	struct wbuf bytes = { 0 };
	sigset_t none;
	int reqfd = -1, errfd = -1, pfd[2] = { -1, -1 }, status = 0, r;
	char **argv;
	pid_t pid;

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
	if (passed_before(srv->builds, &bytes)) {
		close(reqfd);
		free(bytes.p);
		return 0;
	}
	errfd = memfd_create("gpupass-build-err", MFD_CLOEXEC);
	if (errfd < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
		r = -errno;
		goto unchecked;
	}
	snprintf(a_cap, sizeof(a_cap), "%" PRIu64, cap);
	/* RLIMIT_CPU backs the wall-clock deadline up. */
	snprintf(a_cpu, sizeof(a_cpu), "%" PRIu64, tmo_ms / 1000 + 2);
	argv = calloc(5 + srv->cfg.devices.n, sizeof(*argv));
	if (!argv) {
		r = -ENOMEM;
		goto unchecked;
	}
	argv[0] = "gpupass-build-check";
	argv[1] = PVD_BUILD_CHECK_ARG;
	argv[2] = a_cap;
	argv[3] = a_cpu;
	for (size_t i = 0; i < srv->cfg.devices.n; i++)
		argv[4 + i] = srv->cfg.devices.v[i];
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errfd, 2);
	posix_spawn_file_actions_adddup2(&fa, reqfd, 3);
	/* Nothing else of the worker: not the guests' connections. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 4);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	r = -posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	free(argv);
	close(pfd[1]);
	pfd[1] = -1;
	close(reqfd);
	reqfd = -1;
	if (r < 0)
		goto unchecked;
	deadline = pvd_now_ns() + tmo_ms * 1000000ull;
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = pfd[0], .events = POLLIN },
			{ .fd = req->conn_fd, .events = POLLRDHUP },
		};
		uint64_t now = pvd_now_ns(), rss, charge;
		int n = poll(p, req->conn_fd >= 0 ? 2 : 1, BC_POLL_MS);

		if (n < 0 && errno != EINTR)
			break;
		if (p[0].revents & POLLIN) {
			uint64_t v;

			if (!have_base && read(pfd[0], &v, sizeof(v)) == (ssize_t)sizeof(v)) {
				base = v;
				have_base = true;
			} else if (have_base) {
				char junk[64];

				if (read(pfd[0], junk, sizeof(junk)) <= 0)
					break;
			}
		}
		if (p[0].revents & (POLLHUP | POLLERR) && !(p[0].revents & POLLIN))
			break; /* it exited */
		if (req->conn_fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			kill(pid, SIGKILL);
			break; /* nobody waits for this build */
		}
		if (now >= deadline) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		/* The build's own memory: what it holds above what OpenCL
		 * took to start, charged to the guest while it runs. */
		rss = have_base ? rss_bytes(pid) : 0;
		rss = rss > base ? rss - base : 0;
		charge = rss > BC_ALLOWANCE ? rss - BC_ALLOWANCE : 0;
		if (charge > charged)
			__atomic_add_fetch(&g->mem_used, charge - charged, __ATOMIC_RELAXED);
		else
			__atomic_sub_fetch(&g->mem_used, charged - charge, __ATOMIC_RELAXED);
		charged = charge;
		if (rss > cap) {
			too_big = true;
			kill(pid, SIGKILL);
			break;
		}
	}
	do {
		r = waitpid(pid, &status, 0) < 0 ? -errno : 0;
	} while (r == -EINTR);
	__atomic_sub_fetch(&g->mem_used, charged, __ATOMIC_RELAXED);
	if (r < 0) {
		/* Never taken for a pass: the status is unknown. */
		kill(pid, SIGKILL);
		status = BC_EXIT_UNCHECKED << 8;
	}
	fmt_ms(tmo_ms, lim, sizeof(lim));
	if (timed_out || (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU))
		*why = gp_strdup_printf("gpupass: the build was stopped after %s (build_timeout)", lim);
	else if (too_big || (WIFSIGNALED(status) && said_oom(errfd)) ||
		 (WIFEXITED(status) && WEXITSTATUS(status) != BC_EXIT_BUILT &&
		  WEXITSTATUS(status) != BC_EXIT_BUILD_ERROR && said_oom(errfd)))
		*why = gp_strdup_printf("gpupass: the build was stopped: it needed more than %s "
					"(%s)", capstr, capped_by_quota ? "what memory_max leaves" :
									  "build_memory_max");
	else if (WIFSIGNALED(status) && req->conn_fd >= 0 && WTERMSIG(status) == SIGKILL)
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
		passed_add(srv->builds, &bytes);
	free(bytes.p);
	close(pfd[0]);
	close(errfd);
	return 0;

unchecked:
	free(bytes.p);
	if (reqfd >= 0)
		close(reqfd);
	if (errfd >= 0)
		close(errfd);
	if (pfd[0] >= 0) {
		close(pfd[0]);
		close(pfd[1]);
	}
	*why = gp_strdup_printf("gpupass: the build could not be checked: %s", strerror(-r));
	gp_err(&srv->log, "guest '%s': cannot run a build check: %s", g->name, strerror(-r));
	return 0;
}

/* ---- the child: gpupass-pvd --build-check CAP CPU_S [DEVICE...] ---- */

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
	bool created;
};

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
	/* What the check could not even start is no pass (exit 2). */
	c->created = err == CL_SUCCESS;
	if (err == CL_SUCCESS && c->compile)
		err = clCompileProgram(progs[0], c->n_devs, c->devs, c->options, c->n_src - 1,
				       c->n_src > 1 ? progs + 1 : NULL,
				       c->n_src > 1 ? names + 1 : NULL, NULL, NULL);
	else if (err == CL_SUCCESS)
		err = clBuildProgram(progs[0], c->n_devs, c->devs, c->options, NULL, NULL);
	c->err = err;
	return NULL;
}

int pvd_build_check_main(int argc, char **argv)
{
	struct pvd_server srv = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct check c = { 0 };
	struct rbuf b = { 0 };
	struct stat st;
	struct rlimit rl;
	uint64_t cap, cpu, rss;
	pthread_t th;
	void *map;
	int rc = BC_EXIT_UNCHECKED;

	/* Ends with the worker that waits for it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	prctl(PR_SET_NAME, "gpupass-build", 0, 0, 0);
	if (argc < 4 || gp_parse_u64(argv[2], 10, &cap) < 0 || gp_parse_u64(argv[3], 10, &cpu) < 0 ||
	    fstat(3, &st) < 0 || st.st_size < 16)
		return BC_EXIT_UNCHECKED;
	rl = (struct rlimit){ .rlim_cur = cpu, .rlim_max = cpu + 1 };
	setrlimit(RLIMIT_CPU, &rl);
	rl = (struct rlimit){ 0, 0 };
	setrlimit(RLIMIT_CORE, &rl);
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, 3, 0);
	if (map == MAP_FAILED)
		return BC_EXIT_UNCHECKED;
	b = (struct rbuf){ .p = map, .len = (size_t)st.st_size };
	for (int i = 4; i < argc; i++)
		if (gp_strv_push(&srv.cfg.devices, argv[i]) < 0)
			return BC_EXIT_UNCHECKED;
	if (pvd_backend_open(&srv) < 0) {
		fprintf(stderr, "gpupass-pvd build check: no OpenCL device\n");
		return BC_EXIT_UNCHECKED;
	}
	if (take32(&b) != BC_MAGIC)
		return BC_EXIT_UNCHECKED;
	c.compile = take32(&b) == 1;
	c.n_devs = take32(&b);
	if (c.n_devs == 0 || c.n_devs > 64)
		return BC_EXIT_UNCHECKED;
	for (uint32_t i = 0; i < c.n_devs; i++) {
		uint32_t k = take32(&b);

		if (k >= srv.n_devs)
			return BC_EXIT_UNCHECKED;
		c.devs[i] = srv.devs[k].device;
	}
	c.n_src = take32(&b);
	if (c.n_src == 0 || c.n_src > 257)
		return BC_EXIT_UNCHECKED;
	for (uint32_t i = 0; i < c.n_src && !b.bad; i++) {
		uint32_t nl = take32(&b);

		c.names[i] = take_str(&b, nl);
		c.texts[i] = take_str(&b, (size_t)take64(&b));
	}
	c.options = take_str(&b, take32(&b));
	if (b.bad || !c.options)
		return BC_EXIT_UNCHECKED;
	c.ctx = clCreateContext(NULL, c.n_devs, c.devs, NULL, NULL, &c.err);
	if (!c.ctx)
		return BC_EXIT_UNCHECKED;
	/* From here on, the memory is the build's: the worker measures it
	 * above this, and the address space gets that much room more. */
	rss = rss_bytes(getpid());
	if (getrlimit(RLIMIT_AS, &rl) == 0) {
		uint64_t vm = status_bytes(getpid(), "VmSize");

		if (vm) {
			rl.rlim_cur = rl.rlim_max = vm + cap + BC_AS_SLACK;
			setrlimit(RLIMIT_AS, &rl);
		}
	}
	if (write(1, &rss, sizeof(rss)) != (ssize_t)sizeof(rss))
		return BC_EXIT_UNCHECKED;
	/* In a thread with the default attributes, as the worker's session
	 * threads: the same stack, so the same recursion fits or not. */
	if (pthread_create(&th, NULL, check_thread, &c) != 0)
		return BC_EXIT_UNCHECKED;
	pthread_join(th, NULL);
	rc = !c.created ? BC_EXIT_UNCHECKED : c.err == CL_SUCCESS ? BC_EXIT_BUILT : BC_EXIT_BUILD_ERROR;
	/* No clean-up: the process ends here (OpenCL's own teardown is the
	 * slow part, and nothing is shared). */
	fflush(NULL);
	_exit(rc);
}
