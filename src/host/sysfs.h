/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one door to /sys, /dev and /proc. Every path is taken relative to a
 * root directory (default "/"), so a test or an operator can point gpupass at
 * a fake tree with --root DIR / GPUPASS_ROOT. Paths are resolved with
 * openat2(RESOLVE_IN_ROOT): an absolute symlink inside a fake tree stays
 * inside it, as it would on the real host.
 *
 * Paths are written as on the host ("/sys/bus/pci/devices/0000:00:02.0/class");
 * a leading "/" is optional. printf-style variants take a format.
 */
#ifndef GP_HOST_SYSFS_H
#define GP_HOST_SYSFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/util.h"

struct gp_sysfs;

/* Opens @root (NULL or "" means "/"). -ENOENT / -ENOTDIR when it is not a
 * directory. */
int gp_sysfs_open(const char *root, struct gp_sysfs **out);
void gp_sysfs_close(struct gp_sysfs *sys);

/* The root as given (never NULL; "/" by default). Borrowed. */
const char *gp_sysfs_root(const struct gp_sysfs *sys);
/* True when the root is the real "/": some actions (loading modules) only
 * make sense then. */
bool gp_sysfs_is_real_root(const struct gp_sysfs *sys);

/* Largest file gp_sysfs_read() accepts; sysfs attributes are one page, but
 * /proc and config spaces can be larger. */
#define GP_SYSFS_READ_MAX (1u << 20)

/* Reads a whole file into a NUL-terminated malloc'd buffer (*len excludes
 * the NUL). -EFBIG when larger than GP_SYSFS_READ_MAX. */
int gp_sysfs_read(struct gp_sysfs *sys, const char *path, char **out, size_t *len);

/* Reads the first line of a text attribute, trimmed, into buf.
 * -ENAMETOOLONG when it does not fit. */
int gp_sysfs_read_str(struct gp_sysfs *sys, const char *path, char *buf, size_t len);

/* Reads a number ("0x10de", "42", "-1"). -EINVAL when it does not parse. */
int gp_sysfs_read_u64(struct gp_sysfs *sys, const char *path, int base, uint64_t *out);
int gp_sysfs_read_int(struct gp_sysfs *sys, const char *path, int *out);

/* Reads up to @max bytes of a binary file (a config space). */
int gp_sysfs_read_bin(struct gp_sysfs *sys, const char *path, void *buf,
		      size_t max, size_t *got);

/* Writes @val (no newline added) to an attribute, as the kernel expects:
 * one write() of the whole value. Returns 0 or the write's -errno. */
int gp_sysfs_write(struct gp_sysfs *sys, const char *path, const char *val);

/* Test hook: called on every gp_sysfs_write() before anything is written,
 * so a unit test can model the kernel behind a fake tree (a write to
 * drivers_probe binds the device to the driver in driver_override, ...).
 * @path is as the caller gave it. Return GP_SYSFS_HOOK_PASS to let the
 * ordinary write happen, 0 for "done", or -errno for the write to fail
 * with. NULL @fn removes the hook. */
#define GP_SYSFS_HOOK_PASS 1
typedef int (*gp_sysfs_write_hook)(void *data, struct gp_sysfs *sys,
				   const char *path, const char *val);
void gp_sysfs_set_write_hook(struct gp_sysfs *sys, gp_sysfs_write_hook fn, void *data);

/* Link target as stored, and its last component ("driver" -> "nvidia"). */
int gp_sysfs_readlink(struct gp_sysfs *sys, const char *path, char *buf, size_t len);
int gp_sysfs_link_name(struct gp_sysfs *sys, const char *path, char *buf, size_t len);

/* Canonical path of @path inside the root, starting with "/" (symlinks
 * followed, as the kernel would, but never outside the root). */
int gp_sysfs_resolve(struct gp_sysfs *sys, const char *path, char *buf, size_t len);

bool gp_sysfs_exists(struct gp_sysfs *sys, const char *path);
bool gp_sysfs_is_dir(struct gp_sysfs *sys, const char *path);

/* Names in a directory, sorted, without "." and "..". */
int gp_sysfs_list(struct gp_sysfs *sys, const char *dir, struct gp_strv *names);

/* Opens a file for callers that need a descriptor (/dev nodes). */
int gp_sysfs_open_fd(struct gp_sysfs *sys, const char *path, int flags);

/* Formats a path; returns NULL-free storage in buf or an empty string when
 * it does not fit (which every following access reports as -ENAMETOOLONG). */
const char *gp_sysfs_path(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
