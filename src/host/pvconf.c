/* SPDX-License-Identifier: Apache-2.0 */
#include "pvconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
			uint64_t memory_max, int weight)
{
	char *rest = NULL, *text;
	bool found;
	size_t n;
	int r;

	if (!value_ok(vm) || strpbrk(vm, "[] \t") || !value_ok(socket) || weight < 1 ||
	    weight > 1000)
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
	if (found)
		r = write_atomic(path, rest);
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
	if (!ok || pid <= 1 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
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
