/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by every part: strings, sizes, numbers. */
#ifndef GP_COMMON_UTIL_H
#define GP_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define GP_UNUSED __attribute__((unused))

/* Removes leading and trailing whitespace in place; returns s. */
char *gp_strtrim(char *s);

/* Parses a whole string as an unsigned number in @base (0: auto).
 * Returns 0, -EINVAL on anything but digits (after trimming), -ERANGE. */
int gp_parse_u64(const char *s, int base, uint64_t *out);
int gp_parse_int(const char *s, int *out);

/* Parses "4096", "64K", "512M", "4G", "1T" (binary units, case-insensitive,
 * optional trailing "B" or "iB"). Returns 0, -EINVAL, -ERANGE. */
int gp_parse_size(const char *s, uint64_t *out);

/* Formats bytes as "16 MiB", "128 GiB", "4 KiB" or "123 B" into buf. */
const char *gp_format_size(uint64_t bytes, char *buf, size_t len);

/* asprintf that returns NULL on failure instead of an undefined pointer. */
char *gp_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Case-insensitive substring test. */
bool gp_str_icontains(const char *haystack, const char *needle);

/* A growable NULL-terminated list of owned strings. */
struct gp_strv {
	char **v;
	size_t n;
	size_t cap;
};
int gp_strv_push(struct gp_strv *sv, const char *s);
int gp_strv_push_printf(struct gp_strv *sv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
bool gp_strv_contains(const struct gp_strv *sv, const char *s);
void gp_strv_sort(struct gp_strv *sv);
void gp_strv_clear(struct gp_strv *sv);

/* Starts @argv (argv[0] a path) detached: its own session, stdin from
 * /dev/null, stdout and stderr appended to @logfd after a line
 * "=== gpupass: starting at <UTC time>: <argv>". @logfd stays the
 * caller's. 0 and *@pid, or -errno when fork fails (a failed exec shows
 * as exit status 127 with the reason in the log). */
int gp_spawn_detached(char *const argv[], int logfd, int *pid);
/* Same, and in the child before exec: no_new_privs (it can never gain
 * privileges through exec) and, when @memlock is not 0, RLIMIT_MEMLOCK
 * set to it (VFIO pins a VM's memory for DMA). */
int gp_spawn_detached_confined(char *const argv[], int logfd, uint64_t memlock, int *pid);

#endif
