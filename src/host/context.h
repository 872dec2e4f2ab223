/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The library context: where sysfs is (root), where state lives, where log
 * messages go. Every libgpupass call takes one; there is no global state.
 */
#ifndef GP_HOST_CONTEXT_H
#define GP_HOST_CONTEXT_H

#include "common/log.h"
#include "host/sysfs.h"

struct gp_ctx {
	struct gp_sysfs *sys;
	struct gp_log log;
	char *state_dir; /* runtime files: QMP sockets, pidfiles, logs, locks */
	char *db_dir;    /* the state database: VMs and dismounted GPUs, which
			  * must outlive a reboot; state_dir when one was given */
};

/* Default state directory when neither --state-dir nor GPUPASS_STATE_DIR
 * says otherwise. */
#define GP_DEFAULT_STATE_DIR "/run/gpupass"
/* Default home of the database: VM definitions survive a reboot, unlike
 * /run. An explicit state directory holds the database too. */
#define GP_DEFAULT_DB_DIR "/var/lib/gpupass"

/* @root: sysfs root (NULL: "/"); @state_dir: NULL for the defaults
 * (GP_DEFAULT_STATE_DIR, and GP_DEFAULT_DB_DIR for the database); a given
 * @state_dir holds everything.
 * -ENOENT/-ENOTDIR when the root is not a directory. */
int gp_ctx_new(const char *root, const char *state_dir, struct gp_ctx **out);
void gp_ctx_free(struct gp_ctx *ctx);

void gp_ctx_set_log(struct gp_ctx *ctx, gp_log_fn fn, void *data,
		    enum gp_log_level max_level);

#endif
