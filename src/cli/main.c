/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass: global options, then one sub-command. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/util.h"

struct command {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "survey", cmd_survey, "which GPUs can be given to VMs, by which method, and what to fix" },
	{ "dismount", cmd_dismount, "take a GPU (its whole IOMMU group) from the host onto vfio-pci" },
	{ "mount", cmd_mount, "give a dismounted GPU back to its host drivers" },
	{ "assign", cmd_assign, "give a GPU to a VM by DDA (dismounting it if needed)" },
	{ "unassign", cmd_unassign, "take a GPU from the VM that holds it" },
	{ "vm", cmd_vm, "create, start, stop, verify VMs (QEMU) with their GPUs" },
	{ "pv", cmd_pv, "PV: the guests gpupass-pvd serves (pv status)" },
};

void cli_error(const struct cli *cli, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line, whatever the user typed: a name or query holding a
	 * newline or a terminal escape is shown escaped, not obeyed. */
	fprintf(stderr, "%s: error: ", cli->prog);
	for (const unsigned char *c = (const unsigned char *)msg; *c; c++) {
		if (*c < 0x20 || *c == 0x7f)
			fprintf(stderr, "\\x%02x", *c);
		else
			fputc(*c, stderr);
	}
	fputc('\n', stderr);
}

static void cli_log(void *data, enum gp_log_level level, const char *msg)
{
	const struct cli *cli = data;

	fprintf(stderr, "%s: %s: %s\n", cli->prog, gp_log_level_name(level), msg);
}

int cli_ctx(struct cli *cli, struct gp_ctx **out)
{
	int r;

	if (!cli->ctx) {
		r = gp_ctx_new(cli->root, cli->state_dir, &cli->ctx);
		if (r < 0) {
			cli_error(cli, "cannot use %s as the system root: %s (check --root or GPUPASS_ROOT)",
				  cli->root ? cli->root : "/", strerror(-r));
			return GP_EXIT_USAGE;
		}
		gp_ctx_set_log(cli->ctx, cli_log, cli,
			       cli->verbose >= 2 ? GP_LOG_DEBUG :
			       cli->verbose == 1 ? GP_LOG_INFO : GP_LOG_WARN);
	}
	*out = cli->ctx;
	return 0;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [GLOBAL OPTIONS] COMMAND [ARGS]\n"
		"\n"
		"GPU acceleration for Linux VMs on a KVM/QEMU host: DDA (a whole GPU to one\n"
		"VM through VFIO) and PV (a GPU shared through a paravirtual OpenCL channel).\n"
		"\n"
		"Global options (before the command):\n"
		"  --root DIR        read /sys, /dev and /proc under DIR (env GPUPASS_ROOT)\n"
		"  --state-dir DIR   keep state and runtime files under DIR\n"
		"                    (env GPUPASS_STATE_DIR, default " GP_DEFAULT_STATE_DIR ")\n"
		"  -v, --verbose     more detail on stderr (twice: debug)\n"
		"  -h, --help        this help; COMMAND --help for a command's own\n"
		"  --version         print the version\n"
		"\n"
		"Commands:\n",
		prog);
	for (size_t i = 0; i < GP_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nSee gpupass(8) for the whole manual.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli cli = {
		.prog = "gpupass",
		.root = getenv("GPUPASS_ROOT"),
		.state_dir = getenv("GPUPASS_STATE_DIR"),
	};
	int c, r;

	/* "+": stop at the first non-option, which is the sub-command. */
	while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			cli.root = optarg;
			break;
		case 's':
			cli.state_dir = optarg;
			break;
		case 'v':
			cli.verbose++;
			break;
		case 'h':
			usage(stdout, cli.prog);
			return GP_EXIT_OK;
		case 'V':
			printf("gpupass %s\n", GP_VERSION);
			return GP_EXIT_OK;
		default:
			fprintf(stderr, "Try '%s --help'.\n", cli.prog);
			return GP_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr, cli.prog);
		return GP_EXIT_USAGE;
	}
	for (size_t i = 0; i < GP_ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			char **sub = argv + optind;
			int subc = argc - optind;

			optind = 0; /* reset getopt for the sub-command */
			r = commands[i].fn(&cli, subc, sub);
			gp_ctx_free(cli.ctx);
			return r;
		}
	}
	cli_error(&cli, "unknown command '%s'; run '%s --help' for the list",
		  argv[optind], cli.prog);
	return GP_EXIT_USAGE;
}
