/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "transport/addr.h"
#include "transport/tls.h"

struct parse_state {
	struct gp_pvd_config *cfg;
	const char *file;
	int err;
};

struct gp_pvd_guest_cfg *gp_pvd_config_guest(struct gp_pvd_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_guests; i++)
		if (strcmp(cfg->guests[i].name, name) == 0)
			return &cfg->guests[i];
	return NULL;
}

static struct gp_pvd_guest_cfg *guest_get(struct gp_pvd_config *cfg, const char *name)
{
	struct gp_pvd_guest_cfg *g = gp_pvd_config_guest(cfg, name), *ng;

	if (g)
		return g;
	ng = realloc(cfg->guests, (cfg->n_guests + 1) * sizeof(*ng));
	if (!ng)
		return NULL;
	cfg->guests = ng;
	g = &ng[cfg->n_guests];
	memset(g, 0, sizeof(*g));
	g->name = strdup(name);
	if (!g->name)
		return NULL;
	g->uid = -1;
	g->cid = -1;
	g->weight = 1;
	g->max_sessions = GP_PVD_MAX_SESSIONS_DEFAULT;
	cfg->n_guests++;
	return g;
}

__attribute__((format(printf, 2, 3)))
static int fail(struct parse_state *st, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!st->cfg->error)
		st->cfg->error = gp_strdup_printf("%s: %s", st->file, msg);
	st->err = -EINVAL;
	return 0; /* stop inih */
}

/* inih is built without INI_HANDLER_LINENO on Debian: no line numbers. */
static int on_value(void *data, const char *section, const char *name, const char *value)
{
	struct parse_state *st = data;
	struct gp_pvd_config *cfg = st->cfg;
	uint64_t v;

	if (st->err)
		return 0;
	/* inih built with INI_CALL_HANDLER_ON_NEW_SECTION announces sections
	 * with a NULL name; sections are also found by declare_sections(). */
	if (!name)
		return 1;
	if (strcmp(section, "server") == 0) {
		if (strcmp(name, "listen") == 0) {
			struct gp_addr a;

			if (gp_addr_parse(value, true, &a) < 0)
				return fail(st, "listen = %s: expected unix:PATH, vsock:PORT, vsock:CID:PORT "
					    "or tcp:HOST:PORT", value);
			if (gp_strv_push(&cfg->listen, value) < 0)
				return fail(st, "out of memory");
		} else if (strcmp(name, "tls_cert") == 0 || strcmp(name, "tls_key") == 0 ||
			   strcmp(name, "tls_ca") == 0) {
			char **slot = strcmp(name, "tls_cert") == 0 ? &cfg->tls_cert :
				      strcmp(name, "tls_key") == 0 ? &cfg->tls_key : &cfg->tls_ca;

			if (!*value)
				return fail(st, "%s: empty path", name);
			free(*slot);
			*slot = strdup(value);
			if (!*slot)
				return fail(st, "out of memory");
		} else if (strcmp(name, "devices") == 0) {
			char *copy = strdup(value), *tok, *save = NULL;

			if (!copy)
				return fail(st, "out of memory");
			for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				gp_strtrim(tok);
				if (*tok && strcmp(tok, "all") != 0)
					gp_strv_push(&cfg->devices, tok);
			}
			free(copy);
		} else if (strcmp(name, "max_pending") == 0) {
			if (gp_parse_u64(value, 10, &v) < 0 || v < 1 || v > 65536)
				return fail(st, "max_pending '%s' must be 1..65536", value);
			cfg->max_pending = (uint32_t)v;
		} else if (strcmp(name, "hello_timeout") == 0) {
			if (gp_parse_u64(value, 10, &v) < 0 || v < 1 || v > 3600)
				return fail(st, "hello_timeout '%s' must be 1..3600 (seconds)", value);
			cfg->hello_timeout_ms = (uint32_t)v * 1000u;
		} else {
			return fail(st, "unknown key '%s' in [server]", name);
		}
		return 1;
	}
	if (strncmp(section, "guest ", 6) == 0) {
		const char *gname = section + 6;
		struct gp_pvd_guest_cfg *g;

		while (*gname == ' ')
			gname++;
		if (!*gname)
			return fail(st, "a [guest NAME] section needs a name");
		g = guest_get(cfg, gname);
		if (!g)
			return fail(st, "out of memory");
		if (strcmp(name, "socket") == 0) {
			if (!*value)
				return fail(st, "guest %s: empty socket path", gname);
			free(g->socket);
			g->socket = strdup(value);
		} else if (strcmp(name, "uid") == 0) {
			if (gp_parse_u64(value, 10, &v) < 0 || v > UINT32_MAX)
				return fail(st, "guest %s: uid '%s' is not a number", gname, value);
			g->uid = (int64_t)v;
		} else if (strcmp(name, "cid") == 0) {
			/* 0..2 are the hypervisor, local and host (vm_sockets.h);
			 * 1 is what a vsock_loopback peer is, so it is allowed. */
			if (gp_parse_u64(value, 10, &v) < 0 || v == 0 || v >= UINT32_MAX)
				return fail(st, "guest %s: cid '%s' is not a vsock CID (1..4294967294)",
					    gname, value);
			g->cid = (int64_t)v;
		} else if (strcmp(name, "tls_peer_sha256") == 0) {
			if (gp_tls_parse_sha256(value, g->peer_sha256) < 0)
				return fail(st, "guest %s: tls_peer_sha256 '%s' is not a SHA-256 fingerprint "
					    "(64 hex digits, ':' between bytes allowed)", gname, value);
			g->has_peer_sha256 = true;
		} else if (strcmp(name, "token") == 0) {
			if (strlen(value) < 16 || strlen(value) >= sizeof(g->token))
				return fail(st, "guest %s: token must be 16 to %zu characters", gname,
					    sizeof(g->token) - 1);
			strcpy(g->token, value);
		} else if (strcmp(name, "memory_max") == 0) {
			if (gp_parse_size(value, &v) < 0)
				return fail(st, "guest %s: memory_max '%s' is not a size (e.g. 512M, 2G)",
					    gname, value);
			g->memory_max = v;
		} else if (strcmp(name, "max_objects") == 0) {
			if (gp_parse_u64(value, 10, &v) < 0 || v > UINT32_MAX)
				return fail(st, "guest %s: max_objects '%s' is not a number", gname, value);
			g->max_objects = (uint32_t)v;
		} else if (strcmp(name, "max_sessions") == 0) {
			if (gp_parse_u64(value, 10, &v) < 0 || v > 65536)
				return fail(st, "guest %s: max_sessions '%s' must be 0 (unlimited) .. 65536",
					    gname, value);
			g->max_sessions = (uint32_t)v;
		} else if (strcmp(name, "weight") == 0) {
			if (gp_parse_u64(value, 10, &v) < 0 || v < 1 || v > 1000)
				return fail(st, "guest %s: weight '%s' must be 1..1000", gname, value);
			g->weight = (uint32_t)v;
		} else if (strcmp(name, "ivshmem") == 0) {
			/* The file behind the VM's ivshmem-plain device: absolute,
			 * as the service's working directory is not the admin's. */
			if (value[0] != '/' || strlen(value) >= GP_PVD_IVSHMEM_MAX)
				return fail(st, "guest %s: ivshmem '%s' must be an absolute file path "
					    "(at most 255 bytes)",
					    gname, value);
			free(g->ivshmem);
			g->ivshmem = strdup(value);
			if (!g->ivshmem)
				return fail(st, "out of memory");
		} else {
			return fail(st, "unknown key '%s' in [guest %s]", name, gname);
		}
		return 1;
	}
	return fail(st, "unknown section [%s]", section);
}

/* inih calls the handler only for keys, so a section without keys
 * ("[guest default]" alone) would vanish: declare [guest NAME] sections
 * from the text first. */
static int declare_sections(struct gp_pvd_config *cfg, const char *text)
{
	const char *line = text;

	while (line && *line) {
		const char *end = strchr(line, '\n'), *p = line, *close;
		size_t len = end ? (size_t)(end - line) : strlen(line);

		while (p < line + len && (*p == ' ' || *p == '\t'))
			p++;
		close = memchr(p, ']', len - (size_t)(p - line));
		if (p < line + len && *p == '[' && close && strncmp(p + 1, "guest ", 6) == 0) {
			char name[256];
			const char *n = p + 7;
			size_t nl;

			while (n < close && *n == ' ')
				n++;
			nl = (size_t)(close - n);
			while (nl > 0 && n[nl - 1] == ' ')
				nl--;
			if (nl > 0 && nl < sizeof(name)) {
				memcpy(name, n, nl);
				name[nl] = '\0';
				if (!guest_get(cfg, name))
					return -ENOMEM;
			}
		}
		line = end ? end + 1 : NULL;
	}
	return 0;
}

/* Rules across keys, once everything is read. */
static int check_channels(struct parse_state *st)
{
	struct gp_pvd_config *cfg = st->cfg;

	if (!cfg->tls_cert != !cfg->tls_key) {
		fail(st, "[server] tls_cert and tls_key go together (one of them is missing)");
		return st->err;
	}
	if (cfg->tls_ca && !cfg->tls_cert) {
		fail(st, "[server] tls_ca needs tls_cert and tls_key");
		return st->err;
	}
	for (size_t i = 0; i < cfg->listen.n; i++) {
		struct gp_addr a;

		if (gp_addr_parse(cfg->listen.v[i], true, &a) < 0 || a.kind != GP_ADDR_TCP)
			continue;
		/* Guests on other machines talk over networks we do not
		 * control: TLS, or nothing beyond this host. */
		if (!cfg->tls_cert && !gp_addr_is_loopback(&a)) {
			fail(st, "listen = %s: plain TCP is only allowed on a loopback address "
			     "(127.0.0.0/8, ::1); set tls_cert and tls_key in [server]", cfg->listen.v[i]);
			return st->err;
		}
	}
	return 0;
}

static int finish(struct parse_state *st, int r)
{
	if (r > 0 && !st->err) {
		st->cfg->error = gp_strdup_printf("%s:%d: syntax error", st->file, r);
		return -EINVAL;
	}
	if (r < 0 && !st->err)
		return -ENOMEM;
	return st->err ? st->err : check_channels(st);
}

int gp_pvd_config_load(const char *path, struct gp_pvd_config *cfg)
{
	struct parse_state st = { .cfg = cfg, .file = path };
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0;
	int r;

	if (!f)
		return -errno;
	r = getdelim(&text, &len, '\0', f) < 0 ? -EIO : 0;
	if (ferror(f))
		r = -EIO;
	fclose(f);
	if (r == 0 && !text)
		r = -ENOMEM;
	if (r == 0)
		r = declare_sections(cfg, text);
	if (r == 0)
		r = finish(&st, ini_parse_string(text, on_value, &st));
	free(text);
	return r;
}

int gp_pvd_config_parse(const char *text, struct gp_pvd_config *cfg)
{
	struct parse_state st = { .cfg = cfg, .file = "<config>" };
	int r = declare_sections(cfg, text);

	return r < 0 ? r : finish(&st, ini_parse_string(text, on_value, &st));
}

int gp_pvd_config_check(struct gp_pvd_config *cfg)
{
	struct parse_state st = { .cfg = cfg, .file = "<config>" };

	free(cfg->error);
	cfg->error = NULL;
	return check_channels(&st);
}

void gp_pvd_config_clear(struct gp_pvd_config *cfg)
{
	gp_strv_clear(&cfg->listen);
	gp_strv_clear(&cfg->devices);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_ca);
	cfg->tls_cert = cfg->tls_key = cfg->tls_ca = NULL;
	for (size_t i = 0; i < cfg->n_guests; i++) {
		free(cfg->guests[i].name);
		free(cfg->guests[i].socket);
		free(cfg->guests[i].ivshmem);
	}
	free(cfg->guests);
	free(cfg->error);
	cfg->guests = NULL;
	cfg->n_guests = 0;
	cfg->error = NULL;
}
