/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the whole survey on a fake host whose GPU attributes hold the
 * fuzz input. The input is split at 0x00 bytes into: config, resource,
 * class, reset_method, reserved_regions, iommu_group link target, and
 * /proc/1/fd/3 link target. Nothing may crash, and the survey must still
 * finish and report the GPU. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakesys.h"
#include "host/context.h"
#include "host/survey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One tree for the whole run; each input rewrites its files. */
static struct gp_fake *fake;

static void cleanup(void)
{
	gp_fake_free(fake, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const files[] = { "config", "resource", "class", "reset_method" };
	const uint8_t *p = data, *end = data + size;
	char rel[512];
	const char *dir;
	struct gp_ctx *ctx;
	struct gp_survey *s;

	if (!fake) {
		if (gp_fake_build("workstation", NULL, &fake) < 0)
			abort();
		atexit(cleanup);
	}
	dir = gp_fake_dev_dir(fake, "0000:01:00.0");
	for (size_t i = 0; i < 7; i++) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p));
		size_t n = z ? (size_t)(z - p) : (size_t)(end - p);
		char *s0 = strndup((const char *)p, n);

		if (!s0)
			return 0;
		if (i < 4) {
			snprintf(rel, sizeof(rel), "%s/%s", dir, files[i]);
			gp_fake_write(fake, rel, p, n);
		} else if (i == 4) {
			gp_fake_write(fake, "sys/kernel/iommu_groups/1/reserved_regions", p, n);
		} else if (i == 5) {
			snprintf(rel, sizeof(rel), "%s/iommu_group", dir);
			gp_fake_symlink(fake, *s0 ? s0 : "x", rel);
		} else {
			gp_fake_symlink(fake, *s0 ? s0 : "x", "proc/1/fd/3");
		}
		free(s0);
		p = z ? z + 1 : end;
	}
	if (gp_ctx_new(gp_fake_root(fake), NULL, &ctx) < 0)
		abort();
	gp_ctx_set_log(ctx, NULL, NULL, GP_LOG_ERR);
	if (gp_survey_run(ctx, NULL, &s) == 0) {
		struct json_object *j;

		if (gp_survey_to_json(s, &j) == 0)
			json_object_put(j);
		gp_survey_free(s);
	} else {
		abort(); /* only an unlistable /sys/bus/pci may fail the survey */
	}
	gp_ctx_free(ctx);
	return 0;
}
