/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A VM's disk format, fixed when the VM is created. QEMU guesses a disk's
 * format from its first bytes when it is not told: a guest that writes a
 * qcow2 header naming a host file as "backing file" into its raw disk
 * would read that file at its next start. So the format is read once, at
 * `vm create`, from the operator's image (by qemu-img, or given with
 * --disk-format), recorded in the state, and every start passes it, with
 * the backing file recorded then; libvirt closes the same hole the same
 * way (it never probes).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disk.h"

#define QEMU_IMG_TIMEOUT_MS 30000
#define QEMU_IMG_OUT_MAX (1u << 20)

/* execvp takes char *const[]; it does not write the strings. */
static char *arg(const char *s)
{
	union {
		const char *c;
		char *m;
	} u = { .c = s };

	return u.m;
}

/* Runs `qemu-img info --output=json [-f FMT] PATH`: 0 and the document in
 * *out (malloc'd), or -errno. */
static int qemu_img_info(const char *path, const char *format, char **out)
{
	const char *img = getenv("GPUPASS_QEMU_IMG");
	char *argv[8];
	int n = 0, pfd[2], status = 0, r = 0;
	size_t got = 0, cap = 8192;
	char *buf = malloc(cap);
	pid_t pid;
	int waited = 0;

	if (!buf)
		return -ENOMEM;
	argv[n++] = arg(img && *img ? img : "qemu-img");
	argv[n++] = arg("info");
	argv[n++] = arg("--output=json");
	if (format) {
		argv[n++] = arg("-f");
		argv[n++] = arg(format);
	}
	argv[n++] = arg(path);
	argv[n] = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		free(buf);
		return -errno;
	}
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (dup2(pfd[1], 1) < 0 || (devnull >= 0 && dup2(devnull, 2) < 0))
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		free(buf);
		return -errno;
	}
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, 100) == 0) {
			waited += 100;
			if (waited >= QEMU_IMG_TIMEOUT_MS) {
				r = -ETIMEDOUT;
				break;
			}
			continue;
		}
		if (got + 1 >= cap) {
			char *nb = cap < QEMU_IMG_OUT_MAX ? realloc(buf, cap * 2) : NULL;

			if (!nb) {
				r = -EFBIG;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		k = read(pfd[0], buf + got, cap - 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(pfd[0]);
	if (r < 0)
		kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) != pid && r == 0)
		r = -ECHILD;
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
		r = WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOEXEC : -EINVAL;
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[got] = '\0';
	*out = buf;
	return 0;
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) : NULL;
}

static bool fmt_known(const char *f)
{
	return f && (strcmp(f, "raw") == 0 || strcmp(f, "qcow2") == 0);
}

/* Is @path (a real path) inside the real directory @dir? */
static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

int gp_disk_inspect(const char *vm, const char *path, const char *format,
		    const char *allow_backing, struct gp_disk_info *out, struct gp_why *why)
{
	struct gp_disk_info d = { 0 };
	struct json_object *doc = NULL;
	const char *f, *b, *bf;
	char *text = NULL, *real = NULL, *breal = NULL, *allowed = NULL;
	int r;

	if (format && !fmt_known(format)) {
		gp_why_set(why, "VM %s: --disk-format %s: use raw or qcow2", vm, format);
		return -EINVAL;
	}
	r = qemu_img_info(path, format, &text);
	if (r == -ENOEXEC) {
		gp_why_set(why, "VM %s: qemu-img was not found; install the qemu-utils package "
			   "(or give GPUPASS_QEMU_IMG)", vm);
		return -ENOENT;
	}
	if (r < 0) {
		gp_why_set(why, "VM %s: qemu-img could not read the disk image %s%s (%s); check the "
			   "file%s", vm, path, format ? " as " : "", strerror(-r),
			   format ? " and --disk-format" : "");
		return r == -ENOMEM ? r : -EINVAL;
	}
	doc = json_tokener_parse(text);
	f = doc ? jstr(doc, "format") : NULL;
	if (!fmt_known(f)) {
		gp_why_set(why, "VM %s: the disk image %s is %s; gpupass starts raw and qcow2 "
			   "images (qemu-img convert -O qcow2 %s NEW.qcow2)", vm, path,
			   f ? f : "of a format qemu-img does not name", path);
		r = -ENOTSUP;
		goto out;
	}
	snprintf(d.format, sizeof(d.format), "%s", f);
	b = jstr(doc, "backing-filename");
	if (strcmp(f, "qcow2") == 0 && b && *b) {
		char full[PATH_MAX * 2];
		struct json_object *bdoc = NULL;
		char *btext = NULL;

		bf = jstr(doc, "backing-filename-format");
		/* QEMU resolves a relative backing name from the image's folder. */
		real = realpath(path, NULL);
		if (b[0] == '/' || !real)
			snprintf(full, sizeof(full), "%s", b);
		else
			snprintf(full, sizeof(full), "%.*s/%s", (int)(strrchr(real, '/') - real),
				 real, b);
		breal = realpath(full, NULL);
		allowed = allow_backing ? realpath(allow_backing, NULL) : NULL;
		if (!breal) {
			gp_why_set(why, "VM %s: the disk image %s names the backing file %s, which "
				   "does not exist", vm, path, full);
			r = -ENOENT;
			goto out;
		}
		if (!allowed || !under(breal, allowed)) {
			gp_why_set(why, "VM %s: the disk image %s has the backing file %s; give "
				   "--allow-backing DIR with the folder that holds it (a backing file "
				   "is read by QEMU with the VM's rights)", vm, path, breal);
			r = -EPERM;
			goto out;
		}
		if (!fmt_known(bf)) {
			gp_why_set(why, "VM %s: the disk image %s does not say the format of its "
				   "backing file %s (QEMU would guess it); record it: qemu-img rebase -u "
				   "-F raw|qcow2 -b %s %s", vm, path, breal, breal, path);
			r = -EINVAL;
			goto out;
		}
		/* One level: the backing file's own backing would be guessed
		 * from its header again. */
		if (strcmp(bf, "qcow2") == 0 && qemu_img_info(breal, bf, &btext) == 0) {
			const char *bb;

			bdoc = json_tokener_parse(btext);
			bb = bdoc ? jstr(bdoc, "backing-filename") : NULL;
			if (bb && *bb) {
				gp_why_set(why, "VM %s: the backing file %s has a backing file of its "
					   "own (%s); gpupass takes one level: qemu-img convert the chain "
					   "into one image", vm, breal, bb);
				r = -ENOTSUP;
			}
			json_object_put(bdoc);
		}
		free(btext);
		if (r < 0)
			goto out;
		if (strlen(breal) >= sizeof(d.backing) || strchr(breal, ',')) {
			gp_why_set(why, "VM %s: the backing file path %s is too long or holds a ','",
				   vm, breal);
			r = -EINVAL;
			goto out;
		}
		snprintf(d.backing, sizeof(d.backing), "%s", breal);
		snprintf(d.backing_format, sizeof(d.backing_format), "%s", bf);
	}
	*out = d;
	r = 0;
out:
	json_object_put(doc);
	free(text);
	free(real);
	free(breal);
	free(allowed);
	return r;
}
