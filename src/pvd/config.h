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

/* Defaults of [guest] max_sessions and [server] max_pending, hello_timeout. */
#define GP_PVD_MAX_SESSIONS_DEFAULT 64u
#define GP_PVD_MAX_PENDING_DEFAULT 64u
#define GP_PVD_HELLO_TIMEOUT_DEFAULT_MS 10000u

struct gp_pvd_guest_cfg {
	char *name;
	char *socket;        /* its own listening socket, or NULL */
	int64_t uid;         /* recognised by SO_PEERCRED on a shared socket; -1 */
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
};

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
	char *error; /* why parsing failed, for the caller to print */
};

/* Parses @path. On a syntax or value error returns -EINVAL with
 * cfg->error set ("FILE:LINE: ..."); -errno if the file cannot be read. */
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
