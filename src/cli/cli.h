/* SPDX-License-Identifier: Apache-2.0 */
/* What every sub-command of the gpupass CLI shares. */
#ifndef GP_CLI_CLI_H
#define GP_CLI_CLI_H

#include <stdbool.h>

#include "host/context.h"

/* Exit codes: the same for every sub-command. */
enum {
	GP_EXIT_OK = 0,
	GP_EXIT_FAIL = 1,  /* the operation failed or was refused */
	GP_EXIT_USAGE = 2, /* bad command line, or an input that does not exist */
};

struct cli {
	const char *prog;
	const char *root;      /* --root / GPUPASS_ROOT, NULL for "/" */
	const char *state_dir; /* --state-dir / GPUPASS_STATE_DIR */
	int verbose;
	struct gp_ctx *ctx; /* made on first use by cli_ctx() */
};

/* Opens the library context; on failure prints why and returns an exit
 * code (> 0). Returns 0 and sets *out on success. */
int cli_ctx(struct cli *cli, struct gp_ctx **out);

/* "gpupass: error: ..." on stderr. */
void cli_error(const struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Sub-commands: argv[0] is the sub-command's name. */
int cmd_survey(struct cli *cli, int argc, char **argv);
int cmd_dismount(struct cli *cli, int argc, char **argv);
int cmd_mount(struct cli *cli, int argc, char **argv);
int cmd_assign(struct cli *cli, int argc, char **argv);
int cmd_unassign(struct cli *cli, int argc, char **argv);
int cmd_vm(struct cli *cli, int argc, char **argv);

/* dda.c: opens the context and the state database and reconciles it with
 * the kernel (printing each repair). 0 or an exit code. */
struct gp_state;
int cli_state(struct cli *cli, struct gp_ctx **ctx, struct gp_state **st);
/* -errno of a library call to an exit code (2: input that does not exist). */
int cli_exit_for(int r);
int cmd_pv(struct cli *cli, int argc, char **argv);

struct json_object;
/* Prints @o (json_object_to_json_string_ext @flags) with every string made
 * valid UTF-8 first: a byte that is not becomes U+FFFD (jsonout.c). */
void cli_json_print(struct json_object *o, int flags);
/* @len bytes of @in as valid UTF-8 (malloc'd; NULL without memory). */
char *cli_utf8_valid(const char *in, size_t len);

#endif
