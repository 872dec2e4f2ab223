/* SPDX-License-Identifier: Apache-2.0 */
#include "pvconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define UNIX_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path), unix(7) */

int gp_pvconf_default_path(const struct gp_ctx *ctx, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/" GP_PVCONF_NAME, ctx->db_dir);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int gp_pv_socket_path(const struct gp_ctx *ctx, const char *vm, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/pv/%s.sock", ctx->state_dir, vm);

	return n < 0 || (size_t)n >= len || (size_t)n >= UNIX_PATH_MAX ? -ENAMETOOLONG : 0;
}

int gp_pv_shm_path(const struct gp_ctx *ctx, const char *vm, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/pv/%s.shm", ctx->state_dir, vm);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int gp_pv_shm_create(const char *path, uint64_t size)
{
	struct stat sb;
	int fd, r = 0;

	if (size == 0 || size > INT64_MAX)
		return -EINVAL;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0660);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = -EINVAL;
		goto out;
	}
	if ((uint64_t)sb.st_size != size && ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		goto out;
	}
	/* The server runs as the user gpupass (gpupass-pvd.service): give
	 * the group access; QEMU (root) and the server then share it. */
	if (geteuid() == 0) {
		struct group gr, *res = NULL;
		char buf[1024];

		if (getgrnam_r("gpupass", &gr, buf, sizeof(buf), &res) == 0 && res &&
		    fchown(fd, (uid_t)-1, res->gr_gid) < 0)
			r = -errno;
	}
	if (r == 0 && fchmod(fd, 0660) < 0)
		r = -errno;
out:
	close(fd);
	return r;
}

/* Does @line open a section, and is it [guest @vm]? inih trims spaces
 * around the section name; "guest" and the name are separated by blanks. */
static bool is_section(const char *line, const char *vm, bool *is_vm)
{
	const char *p = line, *end;
	size_t n;

	while (isspace((unsigned char)*p))
		p++;
	if (*p != '[')
		return false;
	end = strchr(p, ']');
	*is_vm = false;
	if (!end)
		return true;
	p++;
	while (p < end && isspace((unsigned char)*p))
		p++;
	if ((size_t)(end - p) < 5 || strncmp(p, "guest", 5) != 0 ||
	    !isspace((unsigned char)p[5]))
		return true;
	p += 5;
	while (p < end && isspace((unsigned char)*p))
		p++;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	n = strlen(vm);
	*is_vm = (size_t)(end - p) == n && strncmp(p, vm, n) == 0;
	return true;
}

/* Reads @path without the [guest @vm] section (and the blank lines that
 * ended it) into a malloc'd string; *found says whether it was there. */
static int read_without(const char *path, const char *vm, char **out, bool *found)
{
	FILE *f = fopen(path, "re");
	int open_err = f ? 0 : errno; /* before strdup can change errno */
	char *buf = NULL, *line = NULL;
	size_t blen = 0, cap = 0;
	bool in_vm = false;
	int r = 0;

	*found = false;
	buf = strdup("");
	if (!buf) {
		if (f)
			fclose(f);
		return -ENOMEM;
	}
	if (!f) {
		if (open_err != ENOENT) {
			free(buf);
			return -open_err;
		}
		*out = buf;
		return 0;
	}
	for (;;) {
		ssize_t n = getline(&line, &cap, f);
		bool sect, is_vm = false;
		char *nb;

		if (n < 0)
			break;
		/* Not text: refuse to rewrite it rather than lose what follows. */
		if (memchr(line, '\0', (size_t)n)) {
			r = -EINVAL;
			break;
		}
		sect = is_section(line, vm, &is_vm);
		if (sect) {
			in_vm = is_vm;
			*found |= is_vm;
		}
		if (in_vm)
			continue;
		nb = realloc(buf, blen + (size_t)n + 2);
		if (!nb) {
			r = -ENOMEM;
			break;
		}
		buf = nb;
		memcpy(buf + blen, line, (size_t)n);
		blen += (size_t)n;
		if (buf[blen - 1] != '\n')
			buf[blen++] = '\n';
		buf[blen] = '\0';
	}
	if (ferror(f) && r == 0)
		r = -EIO;
	free(line);
	fclose(f);
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	return 0;
}

static int write_atomic(const char *path, const char *text)
{
	char *tmp = gp_strdup_printf("%s.tmp.%ld", path, (long)getpid());
	size_t len = strlen(text);
	int fd, r = 0;

	if (!tmp)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
out:
	free(tmp);
	return r;
}

static bool value_ok(const char *s)
{
	return *s && !strpbrk(s, "\n\r;#");
}

int gp_pvconf_put_guest(const char *path, const char *vm, const char *socket,
			uint64_t memory_max, int weight, const char *ivshmem)
{
	return gp_pvconf_put_guest_owned(path, vm, socket, NULL, memory_max, weight, ivshmem);
}

int gp_pvconf_put_guest_owned(const char *path, const char *vm, const char *socket,
			      const char *socket_owner, uint64_t memory_max, int weight,
			      const char *ivshmem)
{
	char *rest = NULL, *text;
	bool found;
	size_t n;
	int r;

	if (!value_ok(vm) || strpbrk(vm, "[] \t") || !value_ok(socket) || weight < 1 ||
	    weight > 1000 || (ivshmem && *ivshmem && !value_ok(ivshmem)) ||
	    (socket_owner && *socket_owner && !value_ok(socket_owner)))
		return -EINVAL;
	r = read_without(path, vm, &rest, &found);
	if (r < 0)
		return r;
	/* Keep one blank line between the sections before and ours (rest
	 * ends with a newline: read_without adds a missing last one). */
	n = strlen(rest);
	text = gp_strdup_printf("%s%s[guest %s]\nsocket = %s\n", rest,
				n && !(n >= 2 && rest[n - 2] == '\n') ? "\n" : "", vm, socket);
	free(rest);
	if (!text)
		return -ENOMEM;
	if (memory_max) {
		char *t2 = gp_strdup_printf("%smemory_max = %" PRIu64 "\n", text, memory_max);

		free(text);
		if (!t2)
			return -ENOMEM;
		text = t2;
	}
	{
		char *t2 = gp_strdup_printf("%sweight = %d\n", text, weight);

		free(text);
		if (!t2)
			return -ENOMEM;
		text = t2;
	}
	if (socket_owner && *socket_owner) {
		char *t2 = gp_strdup_printf("%ssocket_owner = %s\n", text, socket_owner);

		free(text);
		if (!t2)
			return -ENOMEM;
		text = t2;
	}
	if (ivshmem && *ivshmem) {
		char *t2 = gp_strdup_printf("%sivshmem = %s\n", text, ivshmem);

		free(text);
		if (!t2)
			return -ENOMEM;
		text = t2;
	}
	r = write_atomic(path, text);
	free(text);
	return r;
}

int gp_pvconf_remove_guest(const char *path, const char *vm)
{
	char *rest = NULL;
	bool found;
	int r = read_without(path, vm, &rest, &found);

	if (r < 0)
		return r;
	if (found) {
		bool blank = true;

		for (const char *p = rest; blank && *p; p++)
			blank = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
		/* gpupass-pvd takes an empty file for its defaults (every local
		 * user a guest): the last VM gone means no guests instead. */
		r = write_atomic(path, blank ? "# no guests: gpupass vm create adds [guest NAME] "
					       "sections here\n[server]\n" : rest);
	}
	free(rest);
	return r;
}

int gp_pvconf_has_guest(const char *path, const char *vm)
{
	char *rest = NULL;
	bool found;
	int r = read_without(path, vm, &rest, &found);

	free(rest);
	return r < 0 ? r : found;
}

/* Is @pid a live gpupass-pvd? Its comm (the first 15 bytes of the name it
 * was started as, proc(5)); a zombie is not alive. The server is a real
 * process of this host even when --root points sysfs at a fake tree, so
 * /proc is read directly (as for QEMU in vm/qemu.c). */
static bool is_pvd(pid_t pid)
{
	char path[64], buf[512];
	ssize_t n;
	char *rp;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ...": comm may hold anything, so the last ')'. */
	rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
		return false;
	*rp = '\0';
	rp = strchr(buf, '(');
	return rp && strcmp(rp + 1, GP_PVD_BINARY) == 0;
}

int gp_pvd_pid(const struct gp_ctx *ctx, pid_t *out)
{
	char *path = gp_strdup_printf("%s/" GP_PVD_PIDFILE, ctx->state_dir);
	FILE *f;
	long pid = 0;
	int ok;

	if (!path)
		return -ENOMEM;
	f = fopen(path, "re");
	free(path);
	if (!f)
		return -ESRCH;
	ok = fscanf(f, "%ld", &pid) == 1;
	fclose(f);
	if (!ok || pid <= 1 || pid > INT_MAX || (kill((pid_t)pid, 0) < 0 && errno == ESRCH) ||
	    !is_pvd((pid_t)pid))
		return -ESRCH;
	*out = (pid_t)pid;
	return 0;
}

int gp_pvd_reload(const struct gp_ctx *ctx)
{
	pid_t pid;

	if (gp_pvd_pid(ctx, &pid) < 0)
		return 0;
	if (kill(pid, SIGHUP) < 0)
		return errno == ESRCH ? 0 : -errno;
	return 1;
}

static bool executable(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0;
}

static int on_path(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char *copy, *save = NULL;
	int r = -ENOENT;

	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		int n = snprintf(buf, len, "%s/%s", *d ? d : ".", name);

		if (n > 0 && (size_t)n < len && executable(buf)) {
			r = 0;
			break;
		}
	}
	free(copy);
	return r;
}

int gp_pvd_find(const char *want, char *buf, size_t len)
{
	char self[PATH_MAX];
	const char *execfn;

	if (want && *want) {
		if (strchr(want, '/')) {
			int k = snprintf(buf, len, "%s", want);

			return k > 0 && (size_t)k < len && executable(buf) ? 0 : -ENOENT;
		}
		return on_path(want, buf, len);
	}
	/* Next to gpupass: a build tree, or one installation (bin/ and sbin/
	 * of one prefix are tried both). AT_EXECFN is the path this program
	 * was started by (relative to the working directory, which gpupass
	 * never changes). */
	execfn = (const char *)getauxval(AT_EXECFN);
	if (execfn && realpath(execfn, self)) {
		char *slash = strrchr(self, '/');

		if (slash) {
			static const char *const rel[] = { "", "../sbin/" };

			*slash = '\0';
			for (size_t i = 0; i < GP_ARRAY_SIZE(rel); i++) {
				int k = snprintf(buf, len, "%s/%s" GP_PVD_BINARY, self, rel[i]);

				if (k > 0 && (size_t)k < len && executable(buf))
					return 0;
			}
		}
	}
	return on_path(GP_PVD_BINARY, buf, len);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static bool is_socket(const char *path)
{
	struct stat sb;

	return path && stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode);
}

/* The last line of the log, for an error message. */
static void log_last_line(const char *path, off_t from, char *buf, size_t len)
{
	char tail[1024];
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return;
	{
		off_t end = lseek(fd, 0, SEEK_END);
		off_t at = end - (off_t)sizeof(tail) + 1;

		if (at < from)
			at = from;
		if (at >= 0 && lseek(fd, at, SEEK_SET) >= 0)
			n = read(fd, tail, sizeof(tail) - 1);
	}
	close(fd);
	if (n <= 0)
		return;
	tail[n] = '\0';
	while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
		tail[--n] = '\0';
	{
		char *nl = strrchr(tail, '\n');

		snprintf(buf, len, "%s", nl ? nl + 1 : tail);
	}
}

static int spawn_pvd(const struct gp_ctx *ctx, struct gp_pvd_ensure *e, const char *bin,
		     const char *pidfile, int64_t deadline, struct gp_why *why)
{
	off_t log_start;
	pid_t pid;
	int logfd, r;

	snprintf(e->log, sizeof(e->log), "%s/" GP_PVD_LOGFILE, ctx->state_dir);
	logfd = open(e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (logfd < 0) {
		r = -errno;
		gp_why_set(why, "cannot open the gpupass-pvd log %s: %s", e->log, strerror(-r));
		return r;
	}
	log_start = lseek(logfd, 0, SEEK_END);
	{
		struct gp_strv argv = { 0 };
		int child = 0;

		r = 0;
		if (gp_strv_push(&argv, bin) < 0 || gp_strv_push(&argv, "--config") < 0 ||
		    gp_strv_push(&argv, e->config) < 0 || gp_strv_push(&argv, "--pidfile") < 0 ||
		    gp_strv_push(&argv, pidfile) < 0)
			r = -ENOMEM;
		if (r == 0)
			r = gp_spawn_detached(argv.v, logfd, &child);
		gp_strv_clear(&argv);
		pid = child;
	}
	if (r < 0) {
		close(logfd);
		return r;
	}
	close(logfd);
	e->pid = pid;
	for (;;) {
		pid_t named;
		int status;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			char line[1024];

			log_last_line(e->log, log_start, line, sizeof(line));
			gp_why_set(why, "gpupass-pvd exited while starting (%s %d): %s; see %s",
				   WIFEXITED(status) ? "status" : "signal",
				   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
				   line[0] ? line : "no message", e->log);
			return -ECHILD;
		}
		/* It writes its pidfile once every socket listens. */
		if (gp_pvd_pid(ctx, &named) == 0 && named == pid &&
		    (!e->wait_socket || is_socket(e->wait_socket)))
			return 0;
		if (mono_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			unlink(pidfile);
			gp_why_set(why, "gpupass-pvd did not listen%s%s within %d s; it was stopped; "
				   "see %s", e->wait_socket ? " on " : "",
				   e->wait_socket ? e->wait_socket : "",
				   e->timeout_ms > 0 ? e->timeout_ms / 1000 : 60, e->log);
			return -ETIMEDOUT;
		}
		sleep_ms(50);
	}
}

int gp_pvd_ensure(const struct gp_ctx *ctx, struct gp_pvd_ensure *e, struct gp_why *why)
{
	int64_t deadline = mono_ms() + (e->timeout_ms > 0 ? e->timeout_ms : 60000);
	char bin[PATH_MAX], *pidfile = NULL, *lockpath = NULL;
	int lockfd = -1, r;
	pid_t pid;

	e->pid = 0;
	e->started = false;
	e->log[0] = '\0';
	if (!e->config || !*e->config)
		return -EINVAL;
	if (mkdir(ctx->state_dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		gp_why_set(why, "cannot create %s: %s", ctx->state_dir, strerror(-r));
		return r;
	}
	pidfile = gp_strdup_printf("%s/" GP_PVD_PIDFILE, ctx->state_dir);
	lockpath = gp_strdup_printf("%s/pvd.lock", ctx->state_dir);
	if (!pidfile || !lockpath) {
		r = -ENOMEM;
		goto out;
	}
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
		r = -errno;
		gp_why_set(why, "cannot lock %s: %s", lockpath, strerror(-r));
		goto out;
	}
	if (gp_pvd_pid(ctx, &pid) == 0) {
		e->pid = pid;
		if (kill(pid, SIGHUP) < 0 && errno != ESRCH) {
			r = -errno;
			gp_why_set(why, "cannot signal gpupass-pvd (pid %d) to reload: %s", (int)pid,
				   strerror(-r));
			goto out;
		}
		/* The reload makes the new guest's socket at once; a server
		 * that never does serves another config (10 s is plenty). */
		if (deadline > mono_ms() + 10000)
			deadline = mono_ms() + 10000;
		while (e->wait_socket && !is_socket(e->wait_socket) && mono_ms() < deadline)
			sleep_ms(50);
		r = 0;
		if (e->wait_socket && !is_socket(e->wait_socket)) {
			gp_why_set(why, "gpupass-pvd (pid %d) did not listen on %s after a reload; "
				   "is it running with another config than %s? see its log", (int)pid,
				   e->wait_socket, e->config);
			r = -ETIMEDOUT;
		}
		goto out;
	}
	r = gp_pvd_find(e->binary, bin, sizeof(bin));
	if (r < 0) {
		gp_why_set(why, "gpupass-pvd (%s) was not found; install it, or point GPUPASS_PVD "
			   "at the binary", e->binary && *e->binary ? e->binary : GP_PVD_BINARY);
		goto out;
	}
	/* Not live (gp_pvd_pid said so): a stale pidfile would be taken for
	 * the new server's. */
	unlink(pidfile);
	r = spawn_pvd(ctx, e, bin, pidfile, deadline, why);
	if (r == 0)
		e->started = true;
out:
	if (lockfd >= 0)
		close(lockfd);
	free(pidfile);
	free(lockpath);
	return r;
}
