/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Confinement of the per-guest workers, all in one place. A guest
 * controls every byte its worker receives and, on a CPU OpenCL platform,
 * runs its kernels as native code in it: the worker is treated as
 * hostile. The supervisor (root, or a user with CAP_SETUID, CAP_SETGID,
 * CAP_SYS_ADMIN... as the shipped unit gives) starts it (pvd_sandbox_spawn)
 * with
 *  - its own uid and gid (worker_uids, never the server's, never 0), the
 *    supplementary groups render and video only (GPU nodes), no
 *    capabilities in any set, the bounding set empty, no_new_privs;
 *  - new mount, IPC, network and PID namespaces: / a slave mount, tmpfs
 *    over /run, /tmp, /home, /root, /var, /mnt, /media (and over any
 *    directory others may not search that leads to a path it needs), its
 *    private directory and the read-only paths it needs bound back, a
 *    fresh /proc that shows its own processes only;
 * and the worker, once it runs (pvd_sandbox_worker), enters
 *  - Landlock (below): read the system's and the platform's files, write
 *    its private directory, open only the GPU's device nodes;
 *  - last, just before OpenCL starts, a seccomp allow-list (libseccomp):
 *    anything else fails with EPERM (visible, and an error the OpenCL
 *    stack can handle, where a kill would look like a crash).
 * Each layer holds alone where another is missing (the kernel refuses a
 * namespace, the server does not run as root): the log says which.
 *
 * The worker's file-system sandbox, with Landlock (Documentation/
 * userspace-api/landlock.rst of the kernel). A guest's program is built
 * by the host's OpenCL compiler inside the worker: `-I DIR` and
 * `#include "/abs/path"` are opened with the worker's rights, so the
 * worker keeps only what the OpenCL stack needs: read and execute the
 * system's libraries, driver files and /proc, /sys, the device nodes, and
 * write one private directory of its guest. Everything else (homes, /run,
 * /tmp, the state directory around the private one) is out of reach.
 * Also no TCP (ABI 4) and no signals or abstract sockets outside the
 * sandbox (ABI 6) where the kernel has them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pvd.h"
#include "transport/transport.h"

/* Rights newer than the installed <linux/landlock.h> may name; values
 * from the kernel's include/uapi/linux/landlock.h (ABI 3 and 5). */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
/* ABI 4: TCP bind/connect; ABI 6: abstract unix sockets and signals. */
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; the kernel reads as many
 * fields as the size passed says. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct ll_path_beneath {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_EXEC (FS_READ | LANDLOCK_ACCESS_FS_EXECUTE)
#define FS_ALL_ABI1 ((1ULL << 13) - 1)

static long ll_create(const struct ll_ruleset_attr *attr, size_t size, uint32_t flags)
{
	return syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

/* The rights a ruleset can handle on ABI @abi. */
static uint64_t fs_handled(int abi)
{
	uint64_t m = FS_ALL_ABI1;

	if (abi >= 2)
		m |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		m |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		m |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return m;
}

/* Allows @access under @path; a path this system does not have is fine. */
static int allow(int ruleset, const char *path, uint64_t access, uint64_t handled)
{
	struct ll_path_beneath pb = { 0 };
	struct stat st;
	int fd, r = 0;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 0 : -errno;
	/* Directory-only rights on a file are refused by the kernel. */
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		access &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
			  LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
			  LANDLOCK_ACCESS_FS_IOCTL_DEV;
	pb.allowed_access = access & handled;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* /dev: the GPU's nodes (DRM render and card nodes, AMD's KFD, NVIDIA's
 * nodes) read, write and ioctl; /dev/null and friends read and write.
 * PoCL itself opens no device node (measured with strace on pv_basic,
 * pv_image, pv_program, pv_bigprog, pv_threads): /dev/shm is not needed. */
static int allow_devices(int rs, uint64_t handled)
{
	static const char *const plain[] = {
		"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
	};
	const uint64_t gpu = FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_IOCTL_DEV;
	DIR *d;
	int r = 0;

	for (size_t i = 0; r == 0 && i < sizeof(plain) / sizeof(plain[0]); i++)
		r = allow(rs, plain[i], LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE,
			  handled);
	if (r == 0)
		r = allow(rs, "/dev/dri", gpu, handled);
	if (r == 0)
		r = allow(rs, "/dev/kfd", gpu, handled);
	d = r == 0 ? opendir("/dev") : NULL;
	for (struct dirent *e = d ? readdir(d) : NULL; e && r == 0; e = readdir(d)) {
		char path[300];

		if (strncmp(e->d_name, "nvidia", 6) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/%s", e->d_name);
		r = allow(rs, path, gpu, handled);
	}
	if (d)
		closedir(d);
	return r;
}

int pvd_sandbox_abi(void)
{
	long v = ll_create(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	if (v > 0)
		return (int)v;
	/* No Landlock in the kernel (ENOSYS), disabled at boot (EOPNOTSUPP),
	 * or refused by a seccomp filter (EPERM: systemd's @system-service
	 * does not list the landlock calls; the shipped unit adds them). */
	return errno == ENOSYS || errno == EOPNOTSUPP || errno == EPERM ? -EOPNOTSUPP : -errno;
}

int pvd_sandbox_enter(const char *private_dir, const char *rw_file, const char *read_paths,
		      int *abi)
{
	/* Read and execute: libraries, the ICD loader's and drivers' files,
	 * the dynamic linker's cache; /proc and /sys for the CPU topology and
	 * GPU discovery. Vendor stacks install under /opt. */
	static const char *const ro[] = {
		"/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/opt",
		"/etc/OpenCL", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
		"/etc/ld.so.preload", "/etc/nsswitch.conf", "/etc/localtime",
		/* read by the C library (a symlink target of
		 * /usr/share/locale/locale.alias) and by the OpenCL stack
		 * (measured with strace on PoCL) */
		"/etc/locale.alias", "/etc/debian_version",
		"/proc", "/sys",
	};
	struct ll_ruleset_attr attr = { 0 };
	uint64_t handled;
	size_t size;
	const char *vendors = getenv("OCL_ICD_VENDORS");
	const char *extra = getenv("GPUPASS_PVD_SANDBOX_READ");
	int rs, r = 0;
	long v;

	v = pvd_sandbox_abi();
	*abi = v > 0 ? (int)v : 0;
	if (v < 0)
		return (int)v;
	handled = fs_handled(*abi);
	attr.handled_access_fs = handled;
	size = sizeof(uint64_t);
	if (*abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = 2 * sizeof(uint64_t);
	}
	if (*abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	rs = (int)ll_create(&attr, size, 0);
	if (rs < 0)
		return -errno;
	for (size_t i = 0; r == 0 && i < sizeof(ro) / sizeof(ro[0]); i++)
		r = allow(rs, ro[i], FS_EXEC, handled);
	/* Its own executable, wherever it is installed (sanitizers and
	 * debuggers' symbolizers read it). */
	if (r == 0)
		r = allow(rs, "/proc/self/exe", FS_EXEC, handled);
	/* Paths the administrator adds ([server] sandbox_paths: a vendor
	 * stack installed elsewhere; GPUPASS_PVD_SANDBOX_READ: the tests'
	 * sanitizer suppressions): read only. */
	for (int k = 0; k < 2 && r == 0; k++) {
		const char *src = k == 0 ? extra : read_paths;
		char *list = src ? strdup(src) : NULL, *save = NULL;

		if (src && !list)
			r = -ENOMEM;
		for (char *p = list ? strtok_r(list, ":", &save) : NULL; p && r == 0;
		     p = strtok_r(NULL, ":", &save))
			if (p[0] == '/')
				r = allow(rs, p, FS_READ, handled);
		free(list);
	}
	/* An ICD directory named by the environment (the default is under
	 * /etc/OpenCL). */
	if (r == 0 && vendors && vendors[0] == '/')
		r = allow(rs, vendors, FS_READ, handled);
	/* Device nodes: only the GPU's own and the C library's harmless
	 * ones, never a block device, /dev/mem or /dev/kmsg. */
	if (r == 0)
		r = allow_devices(rs, handled);
	if (r == 0)
		r = allow(rs, private_dir, handled, handled);
	/* The guest's ivshmem region file (a VM's bulk data): read and write,
	 * nothing else there. */
	if (r == 0 && rw_file && rw_file[0] == '/')
		r = allow(rs, rw_file, LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE,
			  handled);
	/* Required to restrict oneself without CAP_SYS_ADMIN; a worker never
	 * needs to gain privileges anyway. */
	if (r == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		r = -errno;
	if (r == 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		r = -errno;
	close(rs);
	return r;
}

/* ---- the supervisor's side: starting a confined worker ---- */

/* Descriptors a worker is started with, after the table (3) and its
 * hand-over channel (4): see pvd.h. */
#define NS_ALL (CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID)
#define MAX_KEEP 32
#define MAX_HIDE 32
#define MAX_GROUPS 8
/* Hidden from every worker by a tmpfs in its mount namespace. */
static const char *const hide_dirs[] = {
	"/run", "/tmp", "/home", "/root", "/var", "/mnt", "/media",
};

struct pvd_sandbox {
	/* supervisor */
	bool off;      /* GPUPASS_PVD_NO_SANDBOX: everything off (tests) */
	bool ids;      /* running as root: workers get their own uid */
	uint32_t uid_first, uid_last;
	gid_t groups[MAX_GROUPS];
	size_t n_groups;
	int ns;        /* namespaces this kernel lets us create */
	int life[2];   /* the write end only the supervisor holds */
	struct gp_strv keep; /* read-only paths bound back into a worker's view */
	/* worker */
	int region_fd; /* the guest's ivshmem file, opened by the supervisor */
	int region_busy;
	char region_path[PVD_IVSHMEM_MAX];
};

/* Which of NS_ALL this kernel and this process may create: a child
 * tries each (unshare) and says in its exit status. */
static int probe_namespaces(void)
{
	static const int flags[] = { CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID };
	int status = 0, ns = 0;
	pid_t pid = fork();

	if (pid == 0) {
		int bits = 0;

		for (int i = 0; i < 4; i++)
			if (unshare(flags[i]) == 0)
				bits |= 1 << i;
		_exit(bits);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return 0;
	for (int i = 0; i < 4; i++)
		if (WEXITSTATUS(status) & (1 << i))
			ns |= flags[i];
	return ns;
}

/* Whether @cap is in this process's effective set (root, or the unit's
 * ambient capabilities for its own user). */
static bool has_cap(int cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &hdr, d) < 0)
		return false;
	return (d[cap / 32].effective >> (cap % 32)) & 1;
}

static void add_group(struct pvd_sandbox *sb, const char *name)
{
	struct group gr, *res = NULL;
	char buf[4096];

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) == 0 && res &&
	    sb->n_groups < MAX_GROUPS)
		sb->groups[sb->n_groups++] = res->gr_gid;
}

/* Paths from a colon-separated list (absolute ones) into @sv. */
static int push_list(struct gp_strv *sv, const char *list)
{
	char *copy = list ? strdup(list) : NULL, *save = NULL;
	int r = 0;

	if (list && !copy)
		return -ENOMEM;
	for (char *p = copy ? strtok_r(copy, ":", &save) : NULL; p && r == 0;
	     p = strtok_r(NULL, ":", &save))
		if (p[0] == '/' && !gp_strv_contains(sv, p))
			r = gp_strv_push(sv, p);
	free(copy);
	return r;
}

int pvd_sandbox_new(struct pvd_server *srv)
{
	struct pvd_sandbox *sb = calloc(1, sizeof(*sb));
	const struct gp_pvd_config *c = &srv->cfg;
	char missing[256] = "";
	int r = 0;

	if (!sb)
		return -ENOMEM;
	sb->life[0] = sb->life[1] = sb->region_fd = -1;
	sb->off = getenv("GPUPASS_PVD_NO_SANDBOX") != NULL;
	sb->uid_first = c->worker_uid_first ? c->worker_uid_first : GP_PVD_WORKER_UID_FIRST;
	sb->uid_last = c->worker_uid_first ? c->worker_uid_last : GP_PVD_WORKER_UID_LAST;
	if (pipe2(sb->life, O_CLOEXEC) < 0) {
		r = -errno;
		goto err;
	}
	/* [server] sandbox_paths reach the workers (which read no config)
	 * through the environment they inherit. */
	if (c->sandbox_paths.n) {
		size_t len = 1;
		char *joined;

		for (size_t i = 0; i < c->sandbox_paths.n; i++)
			len += strlen(c->sandbox_paths.v[i]) + 1;
		joined = calloc(1, len);
		if (!joined) {
			r = -ENOMEM;
			goto err;
		}
		for (size_t i = 0; i < c->sandbox_paths.n; i++) {
			if (i)
				strcat(joined, ":");
			strcat(joined, c->sandbox_paths.v[i]);
		}
		r = setenv(PVD_SANDBOX_PATHS_ENV, joined, 1) < 0 ? -errno : 0;
		free(joined);
		if (r < 0)
			goto err;
	}
	/* What a worker reads outside the system's directories, bound back
	 * into its mount namespace: the ICD directory, the added paths. */
	r = push_list(&sb->keep, getenv("OCL_ICD_VENDORS"));
	if (r == 0)
		r = push_list(&sb->keep, getenv("GPUPASS_PVD_SANDBOX_READ"));
	for (size_t i = 0; r == 0 && i < c->sandbox_paths.n; i++)
		r = push_list(&sb->keep, c->sandbox_paths.v[i]);
	/* Its own executable by path, for the sanitizers' symbolizer (a
	 * build tree under /tmp or /root): Landlock already lets it read it. */
	{
		char exe[PATH_MAX];

		if (r == 0 && realpath("/proc/self/exe", exe))
			r = push_list(&sb->keep, exe);
	}
	if (r < 0)
		goto err;
	if (sb->keep.n > MAX_KEEP - 1) {
		r = -E2BIG;
		goto err;
	}
	if (sb->off) {
		gp_warn(&srv->log, "GPUPASS_PVD_NO_SANDBOX is set: workers run UNCONFINED (the "
			"server's uid, every capability, no seccomp, no namespaces, no Landlock); "
			"for tests only, never in production");
		srv->sandbox = sb;
		return 0;
	}
	sb->ids = has_cap(CAP_SETUID) && has_cap(CAP_SETGID);
	if (sb->ids && getuid() >= sb->uid_first && getuid() <= sb->uid_last) {
		gp_err(&srv->log, "worker_uids %u-%u holds the server's own uid %u: choose another "
		       "range", sb->uid_first, sb->uid_last, (unsigned)getuid());
		r = -EINVAL;
		goto err;
	}
	add_group(sb, "render");
	add_group(sb, "video");
	sb->ns = has_cap(CAP_SYS_ADMIN) ? probe_namespaces() : 0;
	if (!sb->ids)
		strcat(missing, "own uid (the server may not change uids: run it as root or with "
		       "CAP_SETUID and CAP_SETGID), ");
	if (!(sb->ns & CLONE_NEWNS))
		strcat(missing, "mount namespace, ");
	if (!(sb->ns & CLONE_NEWPID))
		strcat(missing, "PID namespace, ");
	if (!(sb->ns & CLONE_NEWNET))
		strcat(missing, "network namespace, ");
	if (!(sb->ns & CLONE_NEWIPC))
		strcat(missing, "IPC namespace, ");
	if (missing[0]) {
		missing[strlen(missing) - 2] = '\0';
		gp_warn(&srv->log, "workers start without: %s (namespaces need CAP_SYS_ADMIN and a "
			"kernel that has them; the workers still get no capabilities, no_new_privs, "
			"the seccomp allow-list and Landlock)", missing);
	} else {
		gp_info(&srv->log, "workers: own uid from %u, no capabilities, seccomp allow-list, "
			"own mount/PID/IPC/network namespaces, Landlock", sb->uid_first);
	}
	srv->sandbox = sb;
	return 0;

err:
	pvd_sandbox_free(sb);
	return r;
}

void pvd_sandbox_free(struct pvd_sandbox *sb)
{
	if (!sb)
		return;
	if (sb->life[0] >= 0) {
		close(sb->life[0]);
		close(sb->life[1]);
	}
	if (sb->region_fd >= 0)
		close(sb->region_fd);
	gp_strv_clear(&sb->keep);
	free(sb);
}

/* What the child between clone and exec works from: everything it needs
 * is computed before, as it may only make system calls (the supervisor
 * has other threads; no malloc, no stdio, no glibc setxid machinery). */
struct spawn {
	int fds[4];            /* become 3, 4, 5, 6; -1: closed */
	int ns;
	bool off;              /* GPUPASS_PVD_NO_SANDBOX: nothing at all */
	bool ids;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t n_groups;
	char *const *argv;
	const char *name;      /* the guest, for its log lines */
	const char *keep[MAX_KEEP]; /* [0]: the private directory */
	size_t n_keep;
	const char *hide[MAX_HIDE];
	size_t n_hide;
	char *owned[MAX_HIDE]; /* the ones hide_unsearchable found */
	size_t n_owned;
	char scratch[PATH_MAX];
};

/* A log line from the child, in the worker's format, with write(2). */
static void child_say(const struct spawn *sp, const char *what, const char *path, int err)
{
	char buf[512];
	size_t n = 0;
	const char *parts[] = { "gpupass-pvd[", sp->name, "]: warning: ", what, path ? " " : "",
				path ? path : "", err ? ": " : "", err ? strerrorname_np(err) : "", "\n" };

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		for (const char *p = parts[i] ? parts[i] : "?"; *p && n < sizeof(buf) - 2; p++)
			buf[n++] = *p;
	if (n && buf[n - 1] != '\n')
		buf[n++] = '\n';
	if (write(2, buf, n) < 0) {
		/* nowhere else to say it */
	}
}

static __attribute__((noreturn)) void child_fail(const struct spawn *sp, const char *what, int err)
{
	child_say(sp, what, NULL, err);
	_exit(126);
}

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* mkdir -p of @path's parents inside a tmpfs we mounted, then the mount
 * point itself (a directory, or an empty file for a file). */
static int make_point(struct spawn *sp, const char *path, bool dir)
{
	size_t len = strlen(path);
	int fd;

	if (len >= sizeof(sp->scratch))
		return -ENAMETOOLONG;
	memcpy(sp->scratch, path, len + 1);
	for (char *p = sp->scratch + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(sp->scratch, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (dir)
		return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* The mount namespace: hide, then bind back what the worker needs (from
 * descriptors opened before hiding), then a /proc of its PID namespace. */
static void child_mounts(struct spawn *sp)
{
	int kfd[MAX_KEEP];
	char src[64];

	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		child_fail(sp, "cannot make / a slave mount in the worker's namespace", errno);
	for (size_t i = 0; i < sp->n_keep; i++)
		kfd[i] = open(sp->keep[i], O_PATH | O_CLOEXEC);
	for (size_t i = 0; i < sp->n_hide; i++) {
		struct stat st;

		if (lstat(sp->hide[i], &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (mount("tmpfs", sp->hide[i], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  "mode=0755,size=64k,nr_inodes=1024") < 0)
			child_say(sp, "cannot hide", sp->hide[i], errno);
	}
	for (size_t i = 0; i < sp->n_keep; i++) {
		struct stat st;
		bool hidden = false;
		int r;

		if (kfd[i] < 0 || fstat(kfd[i], &st) < 0)
			continue;
		for (size_t j = 0; j < sp->n_hide && !hidden; j++)
			hidden = under(sp->keep[i], sp->hide[j]);
		if (!hidden)
			continue;
		r = make_point(sp, sp->keep[i], S_ISDIR(st.st_mode));
		/* "/proc/self/fd/" + the number, without stdio */
		{
			char num[16];
			size_t n = 0, k = 0;

			for (int v = kfd[i]; n == 0 || v; v /= 10)
				num[n++] = (char)('0' + v % 10);
			memcpy(src, "/proc/self/fd/", 14);
			while (n)
				src[14 + k++] = num[--n];
			src[14 + k] = '\0';
		}
		if (r == 0 && mount(src, sp->keep[i], NULL, MS_BIND | MS_REC, NULL) < 0)
			r = -errno;
		if (r < 0)
			child_say(sp, i == 0 ? "cannot bind its private directory" : "cannot bind",
				  sp->keep[i], -r);
		close(kfd[i]);
	}
	if ((sp->ns & CLONE_NEWPID) &&
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail(sp, "cannot mount the worker's own /proc", errno);
}

/* The child of pvd_sandbox_spawn: descriptors, namespaces' contents,
 * identity, capabilities, then exec. Raw system calls only.
 * Why here and not at the start of worker mode: the PID namespace can
 * only be had at clone(); the worker's own code (argument parsing, the
 * table mapping) then never runs as root or with a capability; and a uid
 * changed before exec is one the kernel trusts at exec, so the worker is
 * dumpable again (its /proc/PID files stay readable for checks, and
 * LeakSanitizer can stop its threads), where a change after exec would
 * leave it non-dumpable. */
static __attribute__((noreturn)) void child_exec(struct spawn *sp)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct caps[2];
	int tmp[4];
	sigset_t none;

	for (int i = 0; i < 4; i++) {
		tmp[i] = sp->fds[i] >= 0 ? fcntl(sp->fds[i], F_DUPFD, 10) : -1;
		if (sp->fds[i] >= 0 && tmp[i] < 0)
			_exit(127);
	}
	for (int i = 0; i < 4; i++) {
		if (tmp[i] >= 0 && dup2(tmp[i], 3 + i) < 0)
			_exit(127);
		if (tmp[i] < 0)
			close(3 + i);
	}
	/* Nothing else of the supervisor's (its other descriptors are
	 * close-on-exec; this makes sure). */
	syscall(SYS_close_range, 7U, ~0U, 0U);
	if (sp->ns & CLONE_NEWNS)
		child_mounts(sp);
	if (chdir("/") < 0)
		_exit(127);
	if (sp->ids) {
		/* While still privileged: empty the bounding set (up to the
		 * first number the kernel does not know). */
		for (int c = 0; c < 64; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
				if (errno == EINVAL)
					break;
				child_fail(sp, "cannot drop the bounding capability set", errno);
			}
		if (syscall(SYS_setgroups, sp->n_groups, sp->groups) < 0)
			child_fail(sp, "setgroups", errno);
		if (syscall(SYS_setresgid, sp->gid, sp->gid, sp->gid) < 0)
			child_fail(sp, "setresgid", errno);
		if (syscall(SYS_setresuid, sp->uid, sp->uid, sp->uid) < 0)
			child_fail(sp, "setresuid", errno);
		if (syscall(SYS_getuid) != (long)sp->uid || syscall(SYS_geteuid) != (long)sp->uid)
			child_fail(sp, "the uid did not change", EPERM);
	}
	if (sp->off)
		goto exec;
	/* Every set empty (a uid change clears the effective and permitted
	 * ones, not the inheritable one). */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		child_fail(sp, "cannot clear the ambient capabilities", errno);
	memset(caps, 0, sizeof(caps));
	if (syscall(SYS_capset, &hdr, caps) < 0)
		child_fail(sp, "cannot clear the capabilities", errno);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(sp, "cannot set no_new_privs", errno);
exec:
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv("/proc/self/exe", sp->argv);
	_exit(127);
}

/* Chowns what an earlier worker (an older server, or one that ran as
 * another uid) left in the private directory. */
static uid_t chown_uid;
static gid_t chown_gid;

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag;
	(void)ftw;
	if (st->st_uid != chown_uid || st->st_gid != chown_gid)
		return lchown(path, chown_uid, chown_gid) < 0 ? -1 : 0;
	return 0;
}

/* A directory others may not search, on the way to @path (outside the
 * hidden ones): the worker could not reach @path through it, so it is
 * hidden too and @path bound back. */
static void hide_unsearchable(struct spawn *sp, char *path)
{
	for (char *p = path + 1; *p; p++) {
		struct stat st;
		bool hidden = false;

		if (*p != '/')
			continue;
		*p = '\0';
		for (size_t j = 0; j < sp->n_hide && !hidden; j++)
			hidden = under(path, sp->hide[j]);
		if (hidden) {
			*p = '/';
			return;
		}
		if (stat(path, &st) == 0 && !(st.st_mode & S_IXOTH) && sp->n_hide < MAX_HIDE) {
			char *copy = strdup(path);

			if (copy) {
				sp->owned[sp->n_owned++] = copy;
				sp->hide[sp->n_hide++] = copy;
			}
			*p = '/';
			return;
		}
		*p = '/';
	}
}

int pvd_sandbox_spawn(struct pvd_server *srv, size_t slot, const char *dir, int chan_fd,
		      char **argv, pid_t *out)
{
	struct pvd_sandbox *sb = srv->sandbox;
	struct spawn *sp;
	char region[PVD_IVSHMEM_MAX], *parent;
	size_t fixed_hides = sizeof(hide_dirs) / sizeof(hide_dirs[0]);
	int r = 0, flags;
	long pid;

	if (!sb)
		return -EINVAL; /* pvd_sandbox_new first: never start a worker unconfined */
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->fds[0] = srv->table_fd;
	sp->fds[1] = chan_fd;
	sp->fds[2] = sb->life[0];
	sp->fds[3] = -1;
	sp->argv = argv;
	sp->name = srv->guests[slot].name;
	/* The guest's ivshmem file: opened here and passed, as the worker's
	 * uid may not open it (QEMU's file, mode 0600). */
	pvd_table_get_ivshmem(&srv->guests[slot], region);
	if (region[0]) {
		sp->fds[3] = open(region, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (sp->fds[3] < 0)
			gp_info(&srv->log, "guest %s: cannot open its ivshmem file %s (%s): its data "
				"goes inline until its worker restarts", sp->name, region, strerror(errno));
	}
	if (!sb->off && sb->ids) {
		struct stat st;

		if (slot > sb->uid_last - sb->uid_first) {
			r = -ERANGE;
			goto out;
		}
		sp->ids = true;
		sp->uid = (uid_t)(sb->uid_first + slot);
		sp->gid = (gid_t)(sb->uid_first + slot);
		sp->groups = sb->groups;
		sp->n_groups = sb->n_groups;
		/* Its directory is its own; the one above only searchable. */
		parent = strdup(dir);
		if (parent && strrchr(parent, '/') && strrchr(parent, '/') != parent) {
			*strrchr(parent, '/') = '\0';
			chmod(parent, 0711);
		}
		free(parent);
		if (stat(dir, &st) < 0 || chmod(dir, 0700) < 0) {
			r = -errno;
			goto out;
		}
		if (st.st_uid != sp->uid || st.st_gid != sp->gid) {
			chown_uid = sp->uid;
			chown_gid = sp->gid;
			if (nftw(dir, chown_one, 16, FTW_PHYS) != 0) {
				r = errno ? -errno : -EPERM;
				goto out;
			}
		}
	}
	sp->off = sb->off;
	sp->ns = sb->off ? 0 : sb->ns;
	if (sp->ns & CLONE_NEWNS) {
		char *copy;

		for (size_t i = 0; i < fixed_hides; i++)
			sp->hide[sp->n_hide++] = hide_dirs[i];
		sp->keep[sp->n_keep++] = dir;
		for (size_t i = 0; i < sb->keep.n; i++)
			sp->keep[sp->n_keep++] = sb->keep.v[i];
		for (size_t i = 0; i < sp->n_keep; i++) {
			copy = strdup(sp->keep[i]);
			if (copy)
				hide_unsearchable(sp, copy);
			free(copy);
		}
	}
	flags = sp->ns;
	/* clone() as fork() (the child runs on a copy of this stack), with
	 * the new namespaces; CLONE_NEWPID makes the worker PID 1 of its own. */
	pid = syscall(SYS_clone, (unsigned long)(flags | SIGCHLD), NULL, NULL, NULL, 0UL);
	if (pid < 0 && flags) {
		gp_warn(&srv->log, "guest %s: cannot create its worker's namespaces (%s): started "
			"without them", sp->name, strerror(errno));
		sp->ns = 0;
		pid = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0UL);
	}
	if (pid == 0)
		child_exec(sp);
	if (pid < 0)
		r = -errno;
	else
		*out = (pid_t)pid;
out:
	if (sp->fds[3] >= 0)
		close(sp->fds[3]);
	for (size_t i = 0; i < sp->n_owned; i++)
		free(sp->owned[i]);
	free(sp);
	return r;
}

/* ---- the worker's side ---- */

bool pvd_sandbox_supervisor_gone(void)
{
	struct pollfd p = { .fd = PVD_WORKER_LIFE_FD, .events = POLLIN };

	/* Nobody writes to it: readable or hung up means the write end,
	 * which only the supervisor holds, is closed. A worker started by
	 * anyone else has no such descriptor (POLLNVAL). */
	return poll(&p, 1, 0) != 0;
}

/* Syscalls a worker, PoCL (LLVM in-process, ld run by fork and exec), the
 * ocl-icd loader, glibc and the sanitizers make (strace -f of the pv
 * suite), and a few close relatives of them. Names this libseccomp does
 * not know are skipped. */
static const char *const sc_allow[] = {
	/* files */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
	"preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
	"lseek", "stat", "fstat", "lstat", "newfstatat", "statx", "fstatfs", "statfs", "access",
	"faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd",
	"chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
	"renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
	"truncate", "ftruncate", "fsync", "fdatasync", "fallocate", "flock", "fcntl", "dup", "dup2",
	"dup3", "pipe", "pipe2", "ioctl", "umask", "utimensat", "utime", "utimes", "fadvise64",
	"sendfile", "copy_file_range", "memfd_create", "getxattr", "lgetxattr", "fgetxattr",
	/* memory */
	"mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "msync", "mlock", "munlock",
	"brk", "membarrier", "get_mempolicy", "set_mempolicy", "mbind",
	/* threads, scheduling */
	"futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
	"arch_prctl", "prctl", "sched_yield", "sched_getaffinity", "sched_setaffinity",
	"sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler",
	"sched_get_priority_min", "sched_get_priority_max", "getpriority", "setpriority",
	"getcpu",
	/* signals (other processes are out of reach: own uid, own PID namespace) */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigpending",
	"rt_sigtimedwait", "sigaltstack", "signalfd", "signalfd4", "kill", "tgkill", "tkill",
	"restart_syscall", "pause",
	/* time */
	"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
	"times", "getitimer", "setitimer", "alarm", "timer_create", "timer_settime",
	"timer_gettime", "timer_delete", "timer_getoverrun", "timerfd_create", "timerfd_settime",
	"timerfd_gettime", "eventfd", "eventfd2",
	/* waiting */
	"poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
	"epoll_wait", "epoll_pwait", "epoll_pwait2",
	/* identity, limits */
	"getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
	"getresuid", "getresgid", "getpgrp", "getpgid", "getsid", "capget", "uname", "sysinfo",
	"getrusage", "getrlimit", "setrlimit", "prlimit64", "getrandom", "personality",
	/* processes: ld, the build checks (exec of /proc/self/exe) */
	"execve", "execveat", "fork", "vfork", "wait4", "waitid", "exit", "exit_group",
	"setpgid", "setsid", "pidfd_open", "pidfd_send_signal",
	/* sockets: the guests' connections and the hand-over channel (socket()
	 * and socketpair() only for AF_UNIX, below) */
	"connect", "accept", "accept4", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "sendto",
	"recvfrom", "shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername",
	/* restricting itself further is fine */
	"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "seccomp",
};

#define NS_CLONE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
			CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

#if defined(__SANITIZE_ADDRESS__)
#define GP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GP_ASAN 1
#endif
#endif

static int seccomp_install(bool log_only)
{
	scmp_filter_ctx ctx = seccomp_init(log_only ? SCMP_ACT_LOG : SCMP_ACT_ERRNO(EPERM));
	const struct scmp_arg_cmp unix_only = {
		.arg = 0, .op = SCMP_CMP_EQ, .datum_a = AF_UNIX, .datum_b = 0,
	};
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	/* Every thread (there are none yet; the sanitizers may start one). */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; r == 0 && i < sizeof(sc_allow) / sizeof(sc_allow[0]); i++) {
		int nr = seccomp_syscall_resolve_name(sc_allow[i]);

		if (nr != __NR_SCMP_ERROR)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	}
	/* Threads and processes, never new namespaces. clone3 passes its
	 * flags in memory a filter cannot read: ENOSYS makes glibc use clone. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, NS_CLONE_FLAGS, 0));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* Unix sockets only: no packet, raw, netlink or IP sockets. */
	if (r == 0)
		r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &unix_only);
	if (r == 0)
		r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, &unix_only);
#ifdef GP_ASAN
	/* LeakSanitizer stops the process's threads with ptrace from a
	 * thread of its own at exit. Sanitizer builds only (tests): other
	 * processes stay out of reach (own uid, no capabilities, own PID
	 * namespace). */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ptrace), 0);
#endif
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

/* Capabilities left in the effective, permitted or inheritable set. */
static bool caps_left(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &hdr, d) < 0)
		return false;
	for (int i = 0; i < 2; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			return true;
	return false;
}

int pvd_sandbox_worker(struct pvd_server *srv, const struct pvd_guest *g, const char *dir)
{
	struct pvd_sandbox *sb = calloc(1, sizeof(*sb));
	const char *mode = getenv("GPUPASS_PVD_SECCOMP");
	char region[PVD_IVSHMEM_MAX] = "";
	int abi = 0, r;

	if (!sb)
		return -ENOMEM;
	sb->life[0] = sb->life[1] = sb->region_fd = -1;
	srv->sandbox = sb;
	/* Not for whatever the OpenCL stack may execute. */
	fcntl(PVD_WORKER_LIFE_FD, F_SETFD, FD_CLOEXEC);
	/* The guest's ivshmem file, as named when this worker started: the
	 * supervisor's descriptor of it, or (none) its path, for Landlock. */
	pvd_table_get_ivshmem(g, region);
	memcpy(sb->region_path, region, sizeof(region));
	if (fcntl(PVD_WORKER_REGION_FD, F_SETFD, FD_CLOEXEC) == 0)
		sb->region_fd = PVD_WORKER_REGION_FD;
	if (getenv("GPUPASS_PVD_NO_SANDBOX")) {
		gp_warn(&srv->log, "GPUPASS_PVD_NO_SANDBOX is set: this worker runs UNCONFINED "
			"(uid %u, no seccomp, no Landlock)", (unsigned)getuid());
		return 0;
	}
	if (getuid() == 0 || geteuid() == 0)
		gp_dbg(&srv->log, "running as root: the server is not root, or started workers "
		       "unconfined");
	if (caps_left())
		gp_warn(&srv->log, "this worker still has capabilities");
	r = pvd_sandbox_enter(dir, sb->region_fd < 0 && region[0] ? region : NULL,
			      getenv(PVD_SANDBOX_PATHS_ENV), &abi);
	if (r == -EOPNOTSUPP) {
		/* The supervisor warned once, from its startup probe. */
		gp_dbg(&srv->log, "no Landlock: running without the file-system sandbox");
	} else if (r < 0) {
		gp_err(&srv->log, "cannot enter the Landlock sandbox: %s", strerror(-r));
		return r;
	}
	r = seccomp_install(mode && strcmp(mode, "log") == 0);
	if (r < 0) {
		gp_err(&srv->log, "cannot install the seccomp filter: %s", strerror(-r));
		return r;
	}
	if (mode && strcmp(mode, "log") == 0)
		gp_warn(&srv->log, "GPUPASS_PVD_SECCOMP=log: system calls outside the allow-list are "
			"logged by the kernel (audit), not refused");
	gp_dbg(&srv->log, "confined: uid %u, pid %d in its namespace, Landlock ABI %d (writes only "
	       "under %s), seccomp allow-list", (unsigned)getuid(), (int)getpid(), abi, dir);
	return 0;
}

int pvd_sandbox_region_open(struct pvd_server *srv, const char *path, uint64_t size,
			    struct gp_ivshmem **out)
{
	struct pvd_sandbox *sb = srv->sandbox;
	int fd;

	/* The descriptor is of the file named when this worker started; a
	 * file named since (reload) is opened by path, which the sandbox
	 * refuses (EACCES: the session says so). */
	if (!sb || sb->region_fd < 0 || strcmp(path, sb->region_path) != 0)
		return gp_ivshmem_host_open(path, size, out);
	fd = fcntl(sb->region_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	return gp_ivshmem_host_open_fd(fd, size, &sb->region_busy, out);
}
