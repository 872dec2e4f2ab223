/* SPDX-License-Identifier: Apache-2.0 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

char *gp_strtrim(char *s)
{
	size_t n;
	char *p = s;

	while (*p && isspace((unsigned char)*p))
		p++;
	if (p != s)
		memmove(s, p, strlen(p) + 1);
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

int gp_parse_u64(const char *s, int base, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s)
		return -EINVAL;
	while (isspace((unsigned char)*s))
		s++;
	/* strtoull accepts a sign; a negative size is garbage, not a wrap. */
	if (*s == '\0' || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

int gp_parse_int(const char *s, int *out)
{
	long v;
	char *end;

	if (!s)
		return -EINVAL;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == ERANGE || v > __INT_MAX__ || v < -__INT_MAX__ - 1)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return -EINVAL;
	*out = (int)v;
	return 0;
}

int gp_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (!s)
		return -EINVAL;
	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		break;
	}
	if (shift) {
		end++;
		if (toupper((unsigned char)*end) == 'I')
			end++;
		if (toupper((unsigned char)*end) == 'B')
			end++;
	} else if (toupper((unsigned char)*end) == 'B') {
		end++;
	}
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

const char *gp_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	size_t u = 0;
	uint64_t v = bytes;

	while (u + 1 < GP_ARRAY_SIZE(units) && v >= 1024 && (v % 1024) == 0) {
		v /= 1024;
		u++;
	}
	if (u == 0 && bytes >= 1024) {
		/* Not a whole number of KiB: show one decimal of the best unit. */
		double d = (double)bytes;

		while (u + 1 < GP_ARRAY_SIZE(units) && d >= 1024) {
			d /= 1024;
			u++;
		}
		snprintf(buf, len, "%.1f %s", d, units[u]);
		return buf;
	}
	snprintf(buf, len, "%llu %s", (unsigned long long)v, units[u]);
	return buf;
}

char *gp_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

bool gp_str_icontains(const char *haystack, const char *needle)
{
	return haystack && needle && strcasestr(haystack, needle) != NULL;
}

static int strv_grow(struct gp_strv *sv)
{
	size_t cap;
	char **v;

	if (sv->n + 1 < sv->cap)
		return 0;
	cap = sv->cap ? sv->cap * 2 : 8;
	v = realloc(sv->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	sv->v = v;
	sv->cap = cap;
	return 0;
}

static int strv_take(struct gp_strv *sv, char *s)
{
	if (!s || strv_grow(sv) < 0) {
		free(s);
		return -ENOMEM;
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
	return 0;
}

int gp_strv_push(struct gp_strv *sv, const char *s)
{
	return strv_take(sv, strdup(s));
}

int gp_strv_push_printf(struct gp_strv *sv, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return strv_take(sv, r < 0 ? NULL : s);
}

bool gp_strv_contains(const struct gp_strv *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return true;
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void gp_strv_sort(struct gp_strv *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof(*sv->v), cmp_str);
}

void gp_strv_clear(struct gp_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

static int spawn(char *const argv[], int logfd, bool confined, uint64_t memlock, int *pid)
{
	time_t t = time(NULL);
	char when[64];
	pid_t child;

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	dprintf(logfd, "=== gpupass: starting at %s:", when);
	for (size_t i = 0; argv[i]; i++)
		dprintf(logfd, " %s", argv[i]);
	dprintf(logfd, "\n");
	child = fork();
	if (child < 0)
		return -errno;
	if (child == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* Its own session: a terminal's ^C or the end of the gpupass
		 * command does not reach it. */
		setsid();
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		signal(SIGPIPE, SIG_DFL);
		if (confined) {
			struct rlimit rl = { (rlim_t)memlock, (rlim_t)memlock };

			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
				dprintf(STDERR_FILENO, "gpupass: cannot confine %s: %s\n", argv[0],
					strerror(errno));
				_exit(126);
			}
			/* Raising the hard limit needs CAP_SYS_RESOURCE (a
			 * container may lack it): then QEMU starts with what it
			 * has, said in its log. */
			if (memlock && setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
				dprintf(STDERR_FILENO, "gpupass: warning: cannot raise RLIMIT_MEMLOCK "
					"to %llu bytes (%s): VFIO mappings made after QEMU leaves root "
					"may fail\n", (unsigned long long)memlock, strerror(errno));
		}
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "gpupass: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	*pid = (int)child;
	return 0;
}

int gp_spawn_detached(char *const argv[], int logfd, int *pid)
{
	return spawn(argv, logfd, false, 0, pid);
}

int gp_spawn_detached_confined(char *const argv[], int logfd, uint64_t memlock, int *pid)
{
	return spawn(argv, logfd, true, memlock, pid);
}
