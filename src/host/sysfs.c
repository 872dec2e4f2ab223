/* SPDX-License-Identifier: Apache-2.0 */
#include "sysfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct gp_sysfs {
	char *root;
	int rootfd;
	bool real_root;
	bool no_openat2; /* kernel older than 5.6: fall back to openat */
	gp_sysfs_write_hook write_hook; /* tests only: the modelled kernel */
	void *write_hook_data;
};

void gp_sysfs_set_write_hook(struct gp_sysfs *sys, gp_sysfs_write_hook fn, void *data)
{
	sys->write_hook = fn;
	sys->write_hook_data = data;
}

int gp_sysfs_open(const char *root, struct gp_sysfs **out)
{
	struct gp_sysfs *sys;
	struct stat st;
	int fd;

	if (!root || !*root)
		root = "/";
	fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		close(fd);
		return -ENOTDIR;
	}
	sys = calloc(1, sizeof(*sys));
	if (!sys) {
		close(fd);
		return -ENOMEM;
	}
	sys->root = strdup(root);
	if (!sys->root) {
		close(fd);
		free(sys);
		return -ENOMEM;
	}
	sys->rootfd = fd;
	{
		struct stat rs;

		sys->real_root = stat("/", &rs) == 0 && rs.st_dev == st.st_dev &&
				 rs.st_ino == st.st_ino;
	}
	*out = sys;
	return 0;
}

void gp_sysfs_close(struct gp_sysfs *sys)
{
	if (!sys)
		return;
	close(sys->rootfd);
	free(sys->root);
	free(sys);
}

const char *gp_sysfs_root(const struct gp_sysfs *sys)
{
	return sys->root;
}

bool gp_sysfs_is_real_root(const struct gp_sysfs *sys)
{
	return sys->real_root;
}

const char *gp_sysfs_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
	return buf;
}

/* "/sys/x" -> "sys/x"; "" (a path that did not fit) stays "" and fails. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int sys_openat(struct gp_sysfs *sys, const char *path, int flags)
{
	int fd;

	if (!path || !*path)
		return -ENAMETOOLONG;
	if (!sys->no_openat2) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_CLOEXEC),
			.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
		};

		fd = (int)syscall(SYS_openat2, sys->rootfd, rel(path), &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS)
			return -errno;
		sys->no_openat2 = true;
	}
	fd = openat(sys->rootfd, rel(path), flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int gp_sysfs_open_fd(struct gp_sysfs *sys, const char *path, int flags)
{
	return sys_openat(sys, path, flags);
}

static int read_fd(int fd, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb;

			if (cap >= GP_SYSFS_READ_MAX) {
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			free(buf);
			return (int)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int gp_sysfs_read(struct gp_sysfs *sys, const char *path, char **out, size_t *len)
{
	int fd = sys_openat(sys, path, O_RDONLY);
	int r;

	if (fd < 0)
		return fd;
	r = read_fd(fd, out, len);
	close(fd);
	return r;
}

int gp_sysfs_read_str(struct gp_sysfs *sys, const char *path, char *buf, size_t len)
{
	char *data, *nl;
	int r = gp_sysfs_read(sys, path, &data, NULL);

	if (r < 0)
		return r;
	nl = strchr(data, '\n');
	if (nl)
		*nl = '\0';
	gp_strtrim(data);
	if (strlen(data) >= len) {
		free(data);
		return -ENAMETOOLONG;
	}
	strcpy(buf, data);
	free(data);
	return 0;
}

int gp_sysfs_read_u64(struct gp_sysfs *sys, const char *path, int base, uint64_t *out)
{
	char buf[64];
	int r = gp_sysfs_read_str(sys, path, buf, sizeof(buf));

	if (r == -ENAMETOOLONG)
		return -EINVAL;
	if (r < 0)
		return r;
	return gp_parse_u64(buf, base, out);
}

int gp_sysfs_read_int(struct gp_sysfs *sys, const char *path, int *out)
{
	char buf[64];
	int r = gp_sysfs_read_str(sys, path, buf, sizeof(buf));

	if (r == -ENAMETOOLONG)
		return -EINVAL;
	if (r < 0)
		return r;
	return gp_parse_int(buf, out);
}

int gp_sysfs_read_bin(struct gp_sysfs *sys, const char *path, void *buf,
		      size_t max, size_t *got)
{
	int fd = sys_openat(sys, path, O_RDONLY);
	size_t n = 0;

	if (fd < 0)
		return fd;
	while (n < max) {
		ssize_t r = read(fd, (char *)buf + n, max - n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			close(fd);
			return (int)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*got = n;
	return 0;
}

int gp_sysfs_write(struct gp_sysfs *sys, const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t w;
	int fd;

	if (sys->write_hook) {
		int h = sys->write_hook(sys->write_hook_data, sys, path, val);

		if (h != GP_SYSFS_HOOK_PASS)
			return h;
	}
	fd = sys_openat(sys, path, O_WRONLY);
	if (fd < 0)
		return fd;
	do {
		w = write(fd, val, len);
	} while (w < 0 && errno == EINTR);
	if (w < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	if (close(fd) < 0)
		return -errno;
	return (size_t)w == len ? 0 : -EIO;
}

/* Opens the parent directory of @path and returns the last component. */
static int open_parent(struct gp_sysfs *sys, const char *path, char *dir,
		       size_t dlen, const char **base)
{
	const char *slash;
	const char *p = rel(path);

	if (!path || !*path)
		return -ENAMETOOLONG;
	slash = strrchr(p, '/');
	if (!slash) {
		*base = p;
		return sys_openat(sys, ".", O_PATH | O_DIRECTORY);
	}
	if ((size_t)(slash - p) >= dlen)
		return -ENAMETOOLONG;
	memcpy(dir, p, (size_t)(slash - p));
	dir[slash - p] = '\0';
	*base = slash + 1;
	return sys_openat(sys, dir, O_PATH | O_DIRECTORY);
}

int gp_sysfs_readlink(struct gp_sysfs *sys, const char *path, char *buf, size_t len)
{
	char dir[PATH_MAX];
	const char *base;
	ssize_t n;
	int dfd = open_parent(sys, path, dir, sizeof(dir), &base);

	if (dfd < 0)
		return dfd;
	n = readlinkat(dfd, base, buf, len);
	if (n < 0) {
		n = -errno;
		close(dfd);
		return (int)n;
	}
	close(dfd);
	if ((size_t)n >= len)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

int gp_sysfs_link_name(struct gp_sysfs *sys, const char *path, char *buf, size_t len)
{
	char target[PATH_MAX];
	const char *slash;
	int r = gp_sysfs_readlink(sys, path, target, sizeof(target));

	if (r < 0)
		return r;
	slash = strrchr(target, '/');
	slash = slash ? slash + 1 : target;
	if (!*slash)
		return -EINVAL;
	if (strlen(slash) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, slash);
	return 0;
}

int gp_sysfs_resolve(struct gp_sysfs *sys, const char *path, char *buf, size_t len)
{
	char proc[64], full[PATH_MAX];
	size_t rootlen = strlen(sys->root);
	ssize_t n;
	int fd = sys_openat(sys, path, O_PATH);

	if (fd < 0)
		return fd;
	/* The kernel knows the resolved path; strip the root from it. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, full, sizeof(full) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	full[n] = '\0';
	{
		char rootreal[PATH_MAX];
		const char *p = full;

		if (!sys->real_root && realpath(sys->root, rootreal)) {
			rootlen = strlen(rootreal);
			if (strncmp(full, rootreal, rootlen) != 0)
				return -EXDEV;
			p = full + rootlen;
		} else if (!sys->real_root) {
			return -errno;
		}
		if (*p == '\0')
			p = "/";
		if (strlen(p) >= len)
			return -ENAMETOOLONG;
		strcpy(buf, p);
	}
	return 0;
}

bool gp_sysfs_exists(struct gp_sysfs *sys, const char *path)
{
	int fd = sys_openat(sys, path, O_PATH);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

bool gp_sysfs_is_dir(struct gp_sysfs *sys, const char *path)
{
	int fd = sys_openat(sys, path, O_PATH | O_DIRECTORY);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int gp_sysfs_list(struct gp_sysfs *sys, const char *dir, struct gp_strv *names)
{
	struct dirent *de;
	DIR *d;
	int r = 0;
	int fd = sys_openat(sys, dir, O_RDONLY | O_DIRECTORY);

	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = gp_strv_push(names, de->d_name);
		if (r < 0)
			break;
	}
	closedir(d);
	gp_strv_sort(names);
	return r;
}
