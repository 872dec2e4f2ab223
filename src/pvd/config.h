/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass-pvd configuration (INI, read with inih). */
#ifndef GP_PVD_CONFIG_H
#define GP_PVD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"

/* Longest [guest] ivshmem path (with its NUL): the shared guest table
 * of gpupass-pvd holds it (PVD_IVSHMEM_MAX, table.h). */
#define GP_PVD_IVSHMEM_MAX 256

/* [server] worker_uids: the default range of the workers' own uids and
 * gids (uid = first + the guest's slot): 1024 ids, one per slot the
 * shared table has (PVD_MAX_GUESTS), above the usual ranges of system and
 * human users. */
#define GP_PVD_WORKER_UID_FIRST 327680u
#define GP_PVD_WORKER_UID_LAST 328703u
/* The fewest ids a worker_uids range may have: one per guest slot. */
#define GP_PVD_WORKER_UIDS_MIN 1024u
/* Defaults of [guest] max_sessions and [server] max_pending, hello_timeout. */
#define GP_PVD_MAX_SESSIONS_DEFAULT 64u
#define GP_PVD_MAX_PENDING_DEFAULT 64u
#define GP_PVD_HELLO_TIMEOUT_DEFAULT_MS 10000u

struct gp_pvd_guest_cfg {
	char *name;
	char *socket;        /* its own listening socket, or NULL */
	int64_t uid;         /* recognised by SO_PEERCRED on a shared socket; -1 */
	int64_t socket_uid;  /* its own socket is given to this user (QEMU's); -1 */
	uint64_t memory_max; /* bytes; 0 = unlimited */
	uint32_t max_objects; /* 0 = unlimited */
	uint32_t weight;     /* >= 1 */
	uint32_t max_sessions; /* connections served at once; 0 = unlimited */
	char *ivshmem;       /* host file behind the VM's ivshmem region, or NULL;
			      * shorter than GP_PVD_IVSHMEM_MAX */
	/* Channels (issue 5). Fixed-size: reloads copy them by value
	 * into the guest slots (ivshmem above is a pointer, swapped under
	 * the guest's lock). */
	int64_t cid;         /* vsock: the peer CID that is this guest; -1 */
	bool has_peer_sha256;
	uint8_t peer_sha256[32]; /* tcp: SHA-256 of its TLS client certificate */
	char token[257];     /* tcp: its token ("" = none), GP_TLS_TOKEN_MAX bytes */
	/* Where each identity key was set (0: not set), for messages. */
	struct {
		int socket, uid, cid, token, peer, ivshmem;
	} line;
	/* The watchdog (issue 10): a device command running longer than
	 * command_timeout ends the guest's worker; a build runs at most
	 * build_timeout, in a child capped at build_memory_max bytes (less
	 * when the guest's memory_max leaves less). Never 0. */
	uint64_t command_timeout_ms;
	uint64_t build_timeout_ms;
	uint64_t build_memory_max;
};

/* The lines of the first [server] listen keys, for messages. */
#define GP_PVD_LISTEN_LINES 16

/* [guest default] gives each local user who connects to a shared socket a
 * guest of its own, named this prefix + the uid ("default.1001"), with
 * default's limits: names with this prefix are refused in the file. */
#define GP_PVD_UID_GUEST_PREFIX "default."

/* The configuration without a file, and that of an empty file: listen on
 * the shared socket; every local user is a guest of its own, no limits. */
#define GP_PVD_DEFAULT_LISTEN "unix:/run/gpupass/pv.sock"
#define GP_PVD_DEFAULT_CONFIG \
	"[server]\nlisten = " GP_PVD_DEFAULT_LISTEN "\n[guest default]\nweight = 1\n"

/* Defaults: a minute is far beyond any interactive or batch kernel a
 * shared device should run at once (GPU drivers' own watchdogs stop
 * kernels after 2-10 s), yet long enough for big compute kernels on a
 * CPU device; builds of real programs (clpeak, pyopencl, hashcat) take
 * seconds, and LLVM needs a few hundred MiB for large ones. */
#define GP_PVD_COMMAND_TIMEOUT_MS 60000ull
#define GP_PVD_BUILD_TIMEOUT_MS 120000ull
#define GP_PVD_BUILD_MEMORY_MAX (2ull << 30)
/* Bounds the config accepts (a watchdog that never fires is no
 * watchdog: 0 is refused; a day is the longest). */
#define GP_PVD_TIMEOUT_MIN_MS 100ull
#define GP_PVD_TIMEOUT_MAX_MS 86400000ull
#define GP_PVD_BUILD_MEMORY_MIN (256ull << 20)

/* Parses a duration: "30s", "500ms", "2m", "1h", a plain number is
 * seconds. 0 and *ms, or -EINVAL / -ERANGE. */
int gp_pvd_parse_duration(const char *s, uint64_t *ms);

struct gp_pvd_config {
	struct gp_strv listen;  /* unix:PATH, vsock:[CID:]PORT, tcp:HOST:PORT */
	char *tls_cert, *tls_key, *tls_ca; /* [server] TLS for tcp: listeners */
	struct gp_strv devices; /* substrings of device names; empty = all */
	/* Connections not yet identified, per listener (0: the default) and
	 * how long one may take to say hello (0: the default). */
	uint32_t max_pending;
	uint32_t hello_timeout_ms;
	struct gp_pvd_guest_cfg *guests;
	size_t n_guests;
	/* [server] worker_uids = FIRST-LAST (0-0 = the default above) and
	 * sandbox_paths = DIR:DIR (read-only paths added to the workers'
	 * file view); see sandbox.c. */
	uint32_t worker_uid_first, worker_uid_last;
	struct gp_strv sandbox_paths;
	char *error; /* why parsing failed, for the caller to print */
	bool defaulted; /* the file was empty: GP_PVD_DEFAULT_CONFIG was used */
	int listen_line[GP_PVD_LISTEN_LINES];
};

/* Parses @path. On a syntax or value error returns -EINVAL with
 * cfg->error set ("FILE:LINE: ..."); -errno if the file cannot be read
 * (-EISDIR for a directory). A file that is empty or holds only comments
 * means GP_PVD_DEFAULT_CONFIG (cfg->defaulted: the caller says so). */
int gp_pvd_config_load(const char *path, struct gp_pvd_config *cfg);
/* Same, from a string (tests, embedded defaults). */
int gp_pvd_config_parse(const char *text, struct gp_pvd_config *cfg);
/* The rules across keys that _load and _parse check at the end (TLS
 * keys together, plain TCP only on loopback), again: for a caller that
 * changed @cfg->listen. -EINVAL with cfg->error set. */
int gp_pvd_config_check(struct gp_pvd_config *cfg);
void gp_pvd_config_clear(struct gp_pvd_config *cfg);
/* The guest section named @name, or NULL. */
struct gp_pvd_guest_cfg *gp_pvd_config_guest(struct gp_pvd_config *cfg, const char *name);

#endif
