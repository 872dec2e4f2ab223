/* SPDX-License-Identifier: Apache-2.0 */
/*
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
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pvd.h"

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

int pvd_sandbox_enter(const char *private_dir, const char *rw_file, int *abi)
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
	/* Paths the administrator adds (a vendor stack installed elsewhere;
	 * the tests' sanitizer suppressions): read only. */
	if (r == 0 && extra) {
		char *list = strdup(extra), *save = NULL;

		if (!list)
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
	/* Device nodes: GPU drivers open, read, write and ioctl them
	 * (/dev/dri, /dev/kfd, /dev/nvidia*); nothing can be created there. */
	if (r == 0)
		r = allow(rs, "/dev", FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE |
				      LANDLOCK_ACCESS_FS_IOCTL_DEV, handled);
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
