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
	char *state_dir; /* runtime files and the database */
};

/* Default state directory when neither --state-dir nor GPUPASS_STATE_DIR
 * says otherwise. */
#define GP_DEFAULT_STATE_DIR "/run/gpupass"

/* @root: sysfs root (NULL: "/"); @state_dir: NULL for the default.
 * -ENOENT/-ENOTDIR when the root is not a directory. */
int gp_ctx_new(const char *root, const char *state_dir, struct gp_ctx **out);
void gp_ctx_free(struct gp_ctx *ctx);

void gp_ctx_set_log(struct gp_ctx *ctx, gp_log_fn fn, void *data,
		    enum gp_log_level max_level);

#endif
