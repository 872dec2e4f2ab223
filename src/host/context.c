/* SPDX-License-Identifier: Apache-2.0 */
#include "context.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int gp_ctx_new(const char *root, const char *state_dir, struct gp_ctx **out)
{
	struct gp_ctx *ctx = calloc(1, sizeof(*ctx));
	int r;

	if (!ctx)
		return -ENOMEM;
	if (state_dir && *state_dir) {
		ctx->state_dir = strdup(state_dir);
		ctx->db_dir = strdup(state_dir);
	} else {
		ctx->state_dir = strdup(GP_DEFAULT_STATE_DIR);
		ctx->db_dir = strdup(GP_DEFAULT_DB_DIR);
	}
	if (!ctx->state_dir || !ctx->db_dir) {
		r = -ENOMEM;
		goto err_free_state_dir;
	}
	r = gp_sysfs_open(root, &ctx->sys);
	if (r < 0)
		goto err_free_state_dir;
	ctx->log.max_level = GP_LOG_WARN;
	*out = ctx;
	return 0;

err_free_state_dir:
	free(ctx->db_dir);
	free(ctx->state_dir);
	free(ctx);
	return r;
}

void gp_ctx_free(struct gp_ctx *ctx)
{
	if (!ctx)
		return;
	gp_sysfs_close(ctx->sys);
	free(ctx->db_dir);
	free(ctx->state_dir);
	free(ctx);
}

void gp_ctx_set_log(struct gp_ctx *ctx, gp_log_fn fn, void *data,
		    enum gp_log_level max_level)
{
	ctx->log.fn = fn;
	ctx->log.data = data;
	ctx->log.max_level = max_level;
}
