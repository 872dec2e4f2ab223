/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass survey — placeholder until the survey module lands (issue 2). */
#include <stdio.h>

#include "cli.h"

int cmd_survey(struct cli *cli, int argc, char **argv)
{
	struct gp_ctx *ctx;
	int r = cli_ctx(cli, &ctx);

	(void)argc;
	(void)argv;
	if (r)
		return r;
	cli_error(cli, "survey is not implemented yet");
	return GP_EXIT_FAIL;
}
