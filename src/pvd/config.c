/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass-pvd's configuration: the INI file read with inih, every value
 * checked, and the rules across sections (one socket, uid, CID, token,
 * fingerprint or region per guest), each refusal with its file and line. */
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>

#include "config.h"
#include "transport/addr.h"
#include "transport/tls.h"

/* A key seen in a section, to refuse the second of a pair. */
struct seen_key {
	char *section;
	char *key;
	int line;
};

struct parse_state {
	struct gp_pvd_config *cfg;
	const char *file;
	int err;
	/* The reader feeds inih line by line (inih on Debian is built
	 * without INI_HANDLER_LINENO): the line of the current key. */
	const char *text;
	size_t len, pos;
	int line, next_line;
	struct seen_key *seen;
	size_t n_seen;
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
	g->socket_uid = -1;
	g->cid = -1;
	g->weight = 1;
	g->command_timeout_ms = GP_PVD_COMMAND_TIMEOUT_MS;
	g->build_timeout_ms = GP_PVD_BUILD_TIMEOUT_MS;
	g->build_memory_max = GP_PVD_BUILD_MEMORY_MAX;
	g->max_sessions = GP_PVD_MAX_SESSIONS_DEFAULT;
	cfg->n_guests++;
	return g;
}

int gp_pvd_parse_duration(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = { { "", 1000 }, { "s", 1000 }, { "ms", 1 }, { "m", 60000 }, { "min", 60000 },
		      { "h", 3600000 } };
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -ERANGE;
		*ms = v * units[i].ms;
		return 0;
	}
	return -EINVAL;
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
		st->cfg->error = st->line > 0 ? gp_strdup_printf("%s:%d: %s", st->file, st->line, msg) :
						gp_strdup_printf("%s: %s", st->file, msg);
	st->err = -EINVAL;
	return 0; /* stop inih */
}

/* Same, for a rule across keys: the line named is @line (0: none). */
__attribute__((format(printf, 3, 4)))
static int fail_at(struct parse_state *st, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st->line = line;
	return fail(st, "%s", msg);
}

/* A key set twice in one section is a mistake (the last would silently
 * win): refused, except `listen`, which lists several addresses. */
static int key_once(struct parse_state *st, const char *section, const char *name)
{
	struct seen_key *ns;

	if (strcmp(section, "server") == 0 && strcmp(name, "listen") == 0)
		return 1;
	for (size_t i = 0; i < st->n_seen; i++)
		if (strcmp(st->seen[i].section, section) == 0 && strcmp(st->seen[i].key, name) == 0)
			return fail(st, "[%s] %s is set twice (first on line %d): keep one", section,
				    name, st->seen[i].line);
	ns = realloc(st->seen, (st->n_seen + 1) * sizeof(*ns));
	if (!ns)
		return fail(st, "out of memory");
	st->seen = ns;
	ns[st->n_seen].section = strdup(section);
	ns[st->n_seen].key = strdup(name);
	ns[st->n_seen].line = st->line;
	if (!ns[st->n_seen].section || !ns[st->n_seen].key) {
		free(ns[st->n_seen].section);
		free(ns[st->n_seen].key);
		return fail(st, "out of memory");
	}
	st->n_seen++;
	return 1;
}

static void seen_clear(struct parse_state *st)
{
	for (size_t i = 0; i < st->n_seen; i++) {
		free(st->seen[i].section);
		free(st->seen[i].key);
	}
	free(st->seen);
	st->seen = NULL;
	st->n_seen = 0;
}

/* inih strips inline comments after ';'; '#' ones (as in the shipped
 * examples) are cut here: a '#' after a blank ends the value. */
static const char *strip_comment(const char *value, char *buf, size_t cap)
{
	const char *h = value;
	size_t n;

	while ((h = strchr(h, '#')) && h != value && h[-1] != ' ' && h[-1] != '\t')
		h++;
	if (!h)
		return value;
	n = (size_t)(h - value);
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	if (n >= cap)
		return value;
	memcpy(buf, value, n);
	buf[n] = '\0';
	return buf;
}

/* worker_uids = FIRST-LAST: never uid 0 (a worker must not be root),
 * at least as many ids as guest slots can exist (one per slot). */
static int worker_uids(struct parse_state *st, const char *value)
{
	char *dash = strchr(value, '-'), first[32];
	uint64_t a, b;
	size_t len = dash ? (size_t)(dash - value) : 0;

	if (!dash || len == 0 || len >= sizeof(first))
		return fail(st, "worker_uids = %s: expected FIRST-LAST (e.g. %u-%u)", value,
			    GP_PVD_WORKER_UID_FIRST, GP_PVD_WORKER_UID_LAST);
	memcpy(first, value, len);
	first[len] = '\0';
	gp_strtrim(first);
	if (gp_parse_u64(first, 10, &a) < 0 || gp_parse_u64(dash + 1, 10, &b) < 0 ||
	    a >= UINT32_MAX || b >= UINT32_MAX)
		return fail(st, "worker_uids = %s: FIRST and LAST must be numbers below 4294967295",
			    value);
	if (a == 0)
		return fail(st, "worker_uids = %s: the range includes uid 0 (root): start above it",
			    value);
	if (b < a)
		return fail(st, "worker_uids = %s: LAST is below FIRST", value);
	if (b - a + 1 < GP_PVD_WORKER_UIDS_MIN)
		return fail(st, "worker_uids = %s: %llu ids, at least %u are needed (one per guest "
			    "slot)", value, (unsigned long long)(b - a + 1), GP_PVD_WORKER_UIDS_MIN);
	st->cfg->worker_uid_first = (uint32_t)a;
	st->cfg->worker_uid_last = (uint32_t)b;
	return 1;
}

/* sandbox_paths = DIR:DIR...: absolute paths the workers may read. */
static int sandbox_paths(struct parse_state *st, const char *value)
{
	char *copy = strdup(value), *tok, *save = NULL;

	if (!copy)
		return fail(st, "out of memory");
	for (tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		gp_strtrim(tok);
		if (tok[0] != '/') {
			fail(st, "sandbox_paths: '%s' is not an absolute path", tok);
			break;
		}
		if (gp_strv_push(&st->cfg->sandbox_paths, tok) < 0) {
			fail(st, "out of memory");
			break;
		}
	}
	free(copy);
	return st->err ? 0 : 1;
}

static int on_value(void *data, const char *section, const char *name, const char *raw)
{
	struct parse_state *st = data;
	struct gp_pvd_config *cfg = st->cfg;
	char vbuf[4096];
	const char *value = raw ? strip_comment(raw, vbuf, sizeof(vbuf)) : raw;
	uint64_t v;

	if (st->err)
		return 0;
	/* inih built with INI_CALL_HANDLER_ON_NEW_SECTION announces sections
	 * with a NULL name; sections are also found by declare_sections(). */
	if (!name)
		return 1;
	if (!key_once(st, section, name))
		return 0;
	if (strcmp(section, "server") == 0) {
		if (strcmp(name, "listen") == 0) {
			struct gp_addr a;

			if (gp_addr_parse(value, true, &a) < 0)
				return fail(st, "listen = %s: expected unix:PATH, vsock:PORT, vsock:CID:PORT "
					    "or tcp:HOST:PORT", value);
			if (gp_strv_push(&cfg->listen, value) < 0)
				return fail(st, "out of memory");
			if (cfg->listen.n <= GP_PVD_LISTEN_LINES)
				cfg->listen_line[cfg->listen.n - 1] = st->line;
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
		} else if (strcmp(name, "worker_uids") == 0) {
			return worker_uids(st, value);
		} else if (strcmp(name, "sandbox_paths") == 0) {
			return sandbox_paths(st, value);
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
		if (strncmp(gname, GP_PVD_UID_GUEST_PREFIX, strlen(GP_PVD_UID_GUEST_PREFIX)) == 0)
			return fail(st, "[guest %s]: names that begin with '%s' are the per-user "
				    "guests of [guest default]; choose another name", gname,
				    GP_PVD_UID_GUEST_PREFIX);
		g = guest_get(cfg, gname);
		if (!g)
			return fail(st, "out of memory");
		if (strcmp(name, "socket") == 0) {
			if (!*value)
				return fail(st, "guest %s: empty socket path", gname);
			free(g->socket);
			g->socket = strdup(value);
			if (!g->socket)
				return fail(st, "out of memory");
			g->line.socket = st->line;
		} else if (strcmp(name, "socket_owner") == 0) {
			/* The user the guest's QEMU runs as: it connects (and
			 * reconnects) to the socket after dropping root. */
			struct passwd *pw = getpwnam(value);

			if (gp_parse_u64(value, 10, &v) == 0 && v < UINT32_MAX)
				g->socket_uid = (int64_t)v;
			else if (pw)
				g->socket_uid = pw->pw_uid;
			else
				return fail(st, "guest %s: socket_owner '%s' is no user of this host",
					    gname, value);
		} else if (strcmp(name, "uid") == 0) {
			/* (uid_t)-1 means "no user" to the kernel's calls. */
			if (gp_parse_u64(value, 10, &v) < 0 || v >= UINT32_MAX)
				return fail(st, "guest %s: uid '%s' is not a user id (0..4294967294)",
					    gname, value);
			g->uid = (int64_t)v;
			g->line.uid = st->line;
		} else if (strcmp(name, "cid") == 0) {
			/* 0..2 are the hypervisor, local and host (vm_sockets.h);
			 * 1 is what a vsock_loopback peer is, so it is allowed. */
			if (gp_parse_u64(value, 10, &v) < 0 || v == 0 || v >= UINT32_MAX)
				return fail(st, "guest %s: cid '%s' is not a vsock CID (1..4294967294)",
					    gname, value);
			g->cid = (int64_t)v;
			g->line.cid = st->line;
		} else if (strcmp(name, "tls_peer_sha256") == 0) {
			if (gp_tls_parse_sha256(value, g->peer_sha256) < 0)
				return fail(st, "guest %s: tls_peer_sha256 '%s' is not a SHA-256 fingerprint "
					    "(64 hex digits, ':' between bytes allowed)", gname, value);
			g->has_peer_sha256 = true;
			g->line.peer = st->line;
		} else if (strcmp(name, "token") == 0) {
			if (strlen(value) < 16 || strlen(value) >= sizeof(g->token))
				return fail(st, "guest %s: token must be 16 to %zu characters", gname,
					    sizeof(g->token) - 1);
			strcpy(g->token, value);
			g->line.token = st->line;
		} else if (strcmp(name, "memory_max") == 0) {
			if (gp_parse_size(value, &v) < 0)
				return fail(st, "guest %s: memory_max '%s' is not a size (e.g. 512M, 2G)",
					    gname, value);
			g->memory_max = v;
		} else if (strcmp(name, "command_timeout") == 0 || strcmp(name, "build_timeout") == 0) {
			bool cmd = name[0] == 'c';

			if (gp_pvd_parse_duration(value, &v) < 0 || v < GP_PVD_TIMEOUT_MIN_MS ||
			    v > GP_PVD_TIMEOUT_MAX_MS)
				return fail(st, "guest %s: %s '%s' must be a duration from 100ms to 24h "
					    "(e.g. 500ms, 30s, 2m)", gname, name, value);
			*(cmd ? &g->command_timeout_ms : &g->build_timeout_ms) = v;
		} else if (strcmp(name, "build_memory_max") == 0) {
			if (gp_parse_size(value, &v) < 0 || v < GP_PVD_BUILD_MEMORY_MIN)
				return fail(st, "guest %s: build_memory_max '%s' must be a size of at least "
					    "256M (e.g. 512M, 2G)", gname, value);
			g->build_memory_max = v;
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
			g->line.ivshmem = st->line;
		} else {
			return fail(st, "unknown key '%s' in [guest %s]", name, gname);
		}
		return 1;
	}
	return fail(st, "unknown section [%s]", section);
}

/* inih calls the handler only for keys, so a section without keys
 * ("[guest default]" alone) would vanish: declare [guest NAME] sections
 * from the text first. A section named twice is refused (inih would merge
 * them, so a second [guest a] would silently change the first). */
static int declare_sections(struct parse_state *st, const char *text)
{
	struct gp_pvd_config *cfg = st->cfg;
	const char *line = text;
	struct seen_key *heads = NULL;
	size_t n_heads = 0;
	int lineno = 0, r = 0;

	while (r == 0 && line && *line) {
		const char *end = strchr(line, '\n'), *p = line, *close;
		size_t len = end ? (size_t)(end - line) : strlen(line);

		lineno++;
		while (p < line + len && (*p == ' ' || *p == '\t'))
			p++;
		close = p < line + len && *p == '[' ? memchr(p, ']', len - (size_t)(p - line)) : NULL;
		if (close) {
			char name[256];
			const char *n = p + 1;
			size_t nl;

			while (n < close && *n == ' ')
				n++;
			nl = (size_t)(close - n);
			while (nl > 0 && n[nl - 1] == ' ')
				nl--;
			if (nl >= sizeof(name)) {
				r = fail_at(st, lineno, "a section name of %zu bytes is too long", nl) ? 0 :
				    st->err;
				break;
			}
			memcpy(name, n, nl);
			name[nl] = '\0';
			for (size_t i = 0; i < n_heads && r == 0; i++)
				if (strcmp(heads[i].section, name) == 0)
					r = fail_at(st, lineno, "[%s] appears twice (first on line %d): "
						    "merge the two sections", name, heads[i].line) ? 0 : st->err;
			if (r == 0) {
				struct seen_key *nh = realloc(heads, (n_heads + 1) * sizeof(*nh));

				if (!nh || !(nh[n_heads].section = strdup(name))) {
					heads = nh ? nh : heads;
					r = -ENOMEM;
					break;
				}
				heads = nh;
				heads[n_heads].key = NULL;
				heads[n_heads++].line = lineno;
			}
			if (r == 0 && strncmp(name, "guest ", 6) == 0) {
				const char *gname = name + 6;

				while (*gname == ' ')
					gname++;
				if (*gname && strncmp(gname, GP_PVD_UID_GUEST_PREFIX,
						      strlen(GP_PVD_UID_GUEST_PREFIX)) == 0)
					r = fail_at(st, lineno, "[guest %s]: names that begin with '%s' are "
						    "the per-user guests of [guest default]; choose another "
						    "name", gname, GP_PVD_UID_GUEST_PREFIX) ? 0 : st->err;
				else if (*gname && !guest_get(cfg, gname))
					r = -ENOMEM;
			}
		}
		line = end ? end + 1 : NULL;
	}
	for (size_t i = 0; i < n_heads; i++)
		free(heads[i].section);
	free(heads);
	return r;
}

/* Socket paths compared as the kernel would resolve them, without
 * touching the file system: "//" and "/./" collapse, "a/.." goes. */
static void path_norm(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (const char *p = in; *p;) {
		const char *e = strchrnul(p, '/');
		size_t n = (size_t)(e - p);

		if (n == 0 || (n == 1 && p[0] == '.')) {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			out[o] = '\0';
		} else if (o + 1 + n < cap) {
			out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
			out[o] = '\0';
		}
		p = *e ? e + 1 : e;
	}
	if (o == 0 && cap > 1) {
		out[0] = '/';
		out[1] = '\0';
	}
}

static bool same_path(const char *a, const char *b)
{
	char na[4096], nb[4096];

	if (!a || !b)
		return false;
	path_norm(a, na, sizeof(na));
	path_norm(b, nb, sizeof(nb));
	return strcmp(na, nb) == 0;
}

/* What makes a guest who it is must be its own: two guests with one
 * socket, uid, CID, token or certificate would get each other's
 * connections (the later silently), two with one region file would share
 * memory, and a guest socket that is also [server] listen would be bound
 * twice. */
static int check_identities(struct parse_state *st)
{
	struct gp_pvd_config *cfg = st->cfg;

	for (size_t j = 0; j < cfg->n_guests; j++) {
		const struct gp_pvd_guest_cfg *b = &cfg->guests[j];

		for (size_t l = 0; b->socket && l < cfg->listen.n; l++) {
			const char *a = cfg->listen.v[l];

			if (strncmp(a, "unix:", 5) == 0 && same_path(a + 5, b->socket))
				return fail_at(st, b->line.socket, "guest %s: socket %s is also [server] "
					       "listen%s: a guest's own socket must be a path of its own",
					       b->name, b->socket, l < GP_PVD_LISTEN_LINES &&
					       cfg->listen_line[l] ? "" : " (--listen)") ? 0 : st->err;
		}
		for (size_t i = 0; i < j; i++) {
			const struct gp_pvd_guest_cfg *a = &cfg->guests[i];
			const char *what = NULL;
			int la = 0, lb = 0;

			if (a->socket && same_path(a->socket, b->socket)) {
				what = "socket";
				la = a->line.socket, lb = b->line.socket;
			} else if (a->uid >= 0 && a->uid == b->uid) {
				what = "uid";
				la = a->line.uid, lb = b->line.uid;
			} else if (a->cid >= 0 && a->cid == b->cid) {
				what = "cid";
				la = a->line.cid, lb = b->line.cid;
			} else if (a->token[0] && strcmp(a->token, b->token) == 0) {
				what = "token";
				la = a->line.token, lb = b->line.token;
			} else if (a->has_peer_sha256 && b->has_peer_sha256 &&
				   memcmp(a->peer_sha256, b->peer_sha256, 32) == 0) {
				what = "tls_peer_sha256";
				la = a->line.peer, lb = b->line.peer;
			} else if (a->ivshmem && same_path(a->ivshmem, b->ivshmem)) {
				what = "ivshmem";
				la = a->line.ivshmem, lb = b->line.ivshmem;
			}
			if (what)
				return fail_at(st, lb, "guest %s has the same %s as guest %s (line %d): "
					       "each guest needs its own", b->name, what, a->name, la) ?
					       0 : st->err;
		}
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

/* inih's reader: one line (or the first @num - 1 bytes of a longer one)
 * per call, counting lines for the messages. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	size_t n = 0;

	if (st->pos >= st->len || num < 2)
		return NULL;
	while (st->pos + n < st->len && n < (size_t)num - 1) {
		if (st->text[st->pos + n++] == '\n')
			break;
	}
	memcpy(str, st->text + st->pos, n);
	str[n] = '\0';
	st->pos += n;
	st->line = st->next_line;
	if (str[n - 1] == '\n')
		st->next_line++;
	return str;
}

/* Empty, or only blank lines and comments: the administrator asked for
 * the defaults. */
static bool blank(const char *text, size_t len)
{
	bool bol = true, comment = false;

	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if (c == '\n') {
			bol = true;
			comment = false;
		} else if (comment || c == ' ' || c == '\t' || c == '\r') {
			continue;
		} else if (bol && (c == '#' || c == ';')) {
			comment = true;
		} else {
			return false;
		}
	}
	return true;
}

static int parse_text(struct parse_state *st, const char *text, size_t len)
{
	const char *nul = memchr(text, '\0', len);
	int r;

	if (nul) {
		int line = 1;

		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		fail_at(st, line, "a NUL byte: this is not a text file (or it is damaged); "
			"the rest of it would be lost, so nothing is used");
		return st->err;
	}
	if (blank(text, len)) {
		st->cfg->defaulted = true;
		return gp_pvd_config_parse(GP_PVD_DEFAULT_CONFIG, st->cfg);
	}
	st->text = text;
	st->len = len;
	st->next_line = 1;
	r = declare_sections(st, text);
	if (r < 0) {
		seen_clear(st);
		return st->err ? st->err : r;
	}
	r = ini_parse_stream(read_line, st, on_value, st);
	seen_clear(st);
	if (r > 0 && !st->err)
		return fail_at(st, r, "syntax error (expected [section], key = value or a "
			       "comment)") ? 0 : st->err;
	if (r < 0 && !st->err)
		return -ENOMEM;
	if (st->err)
		return st->err;
	st->line = 0;
	r = check_channels(st);
	return r < 0 ? r : check_identities(st);
}

int gp_pvd_config_load(const char *path, struct gp_pvd_config *cfg)
{
	struct parse_state st = { .cfg = cfg, .file = path };
	struct stat sb;
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0, cap = 0;
	int r = 0;

	if (!f)
		return -errno;
	if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		fclose(f);
		return -EISDIR;
	}
	/* Read whole, NUL bytes included (getdelim would stop at one). */
	for (;;) {
		size_t n;

		if (len == cap) {
			char *nt = cap < (1u << 24) ? realloc(text, cap ? cap * 2 : 4096) : NULL;

			if (!nt) {
				r = cap < (1u << 24) ? -ENOMEM : -EFBIG;
				break;
			}
			text = nt;
			cap = cap ? cap * 2 : 4096;
		}
		n = fread(text + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	fclose(f);
	if (r == 0) {
		text[len] = '\0';
		r = parse_text(&st, text, len);
	}
	free(text);
	return r;
}

int gp_pvd_config_parse(const char *text, struct gp_pvd_config *cfg)
{
	struct parse_state st = { .cfg = cfg, .file = "<config>" };

	return parse_text(&st, text, strlen(text));
}

int gp_pvd_config_check(struct gp_pvd_config *cfg)
{
	struct parse_state st = { .cfg = cfg, .file = "<config>" };
	int r;

	free(cfg->error);
	cfg->error = NULL;
	/* A --listen that replaced [server] listen has no line. */
	memset(cfg->listen_line, 0, sizeof(cfg->listen_line));
	r = check_channels(&st);
	return r < 0 ? r : check_identities(&st);
}

void gp_pvd_config_clear(struct gp_pvd_config *cfg)
{
	gp_strv_clear(&cfg->listen);
	gp_strv_clear(&cfg->devices);
	gp_strv_clear(&cfg->sandbox_paths);
	cfg->worker_uid_first = cfg->worker_uid_last = 0;
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
	cfg->defaulted = false;
	memset(cfg->listen_line, 0, sizeof(cfg->listen_line));
}
