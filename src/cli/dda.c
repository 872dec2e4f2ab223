/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass dismount | mount | assign | unassign — DDA by hand. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "host/bind.h"
#include "host/deploy.h"
#include "host/state.h"

int cli_exit_for(int r)
{
	switch (r) {
	case 0:
		return GP_EXIT_OK;
	case -ENOENT:
	case -ENOTUNIQ:
	case -EINVAL:
		return GP_EXIT_USAGE;
	default:
		return GP_EXIT_FAIL;
	}
}

int cli_state(struct cli *cli, struct gp_ctx **ctx, struct gp_state **st)
{
	struct gp_strv report = { 0 };
	int r = cli_ctx(cli, ctx);

	if (r)
		return r;
	r = gp_state_open(*ctx, st);
	if (r == -EBADMSG)
		cli_error(cli, "the state database %s/%s is damaged (empty, or not a gpupass "
			  "SQLite database); move it aside and run the command again (its VMs are lost; "
			  "GPUs left on vfio-pci are then taken as dismounted by hand)",
			  (*ctx)->db_dir, GP_STATE_DB_NAME);
	else if (r == -EISDIR)
		cli_error(cli, "the state database %s/%s is a directory, not a database file; "
			  "remove or rename it (or use another --state-dir)", (*ctx)->db_dir,
			  GP_STATE_DB_NAME);
	else if (r == -EPROTO)
		cli_error(cli, "the state database %s/%s was written by a newer gpupass; use that "
			  "version, or another --state-dir", (*ctx)->db_dir, GP_STATE_DB_NAME);
	else if (r < 0)
		cli_error(cli, "cannot open the state database under %s: %s (check --state-dir "
			  "or GPUPASS_STATE_DIR, and that you are root)", (*ctx)->db_dir,
			  strerror(-r));
	if (r < 0) {
		*st = NULL;
		return GP_EXIT_FAIL;
	}
	/* The kernel is the truth: repair what a crash or a hand-made change
	 * left before doing anything. */
	{
		struct gp_deploy_opts o = { 0 };

		(void)gp_deploy_reconcile(*ctx, *st, &o, &report);
	}
	for (size_t i = 0; i < report.n; i++)
		fprintf(stderr, "%s: repaired: %s\n", cli->prog, report.v[i]);
	gp_strv_clear(&report);
	return 0;
}

static int dda_usage(FILE *f, const char *cmd)
{
	if (strcmp(cmd, "dismount") == 0)
		fprintf(f,
			"Usage: gpupass dismount GPU [--force] [--json]\n"
			"\n"
			"Takes the GPU's whole IOMMU group from its host drivers and binds it to\n"
			"vfio-pci, remembering each function's driver. GPU is an address\n"
			"(0000:01:00.0), a location path (PCIROOT(0)#PCI(0100)#PCI(0000)) or a\n"
			"unique name substring (\"Tesla T4\"). Refused when the survey says DDA is\n"
			"not ready; the warnings boot-vga, in-use, no-reset and reset-quirk need\n"
			"--force; a group shared with another device is never taken.\n");
	else if (strcmp(cmd, "mount") == 0)
		fprintf(f,
			"Usage: gpupass mount GPU [--json]\n"
			"\n"
			"Gives a dismounted GPU's group back to its original drivers and checks\n"
			"they bound. Refused while a running VM holds the GPU; a stopped VM keeps\n"
			"its claim (vm start dismounts the GPU again; unassign frees it).\n");
	else if (strcmp(cmd, "assign") == 0)
		fprintf(f,
			"Usage: gpupass assign GPU --vm NAME [--force]\n"
			"\n"
			"Gives the GPU to the (stopped) VM, dismounting it first when needed.\n");
	else
		fprintf(f,
			"Usage: gpupass unassign GPU\n"
			"\n"
			"Takes the GPU from the (stopped) VM that holds it; it stays dismounted\n"
			"(gpupass mount GPU gives it back to the host).\n");
	return f == stdout ? GP_EXIT_OK : GP_EXIT_USAGE;
}

static void print_gpu_json(struct gp_state *st, const char *addr, bool did, const char *action)
{
	struct json_object *o = json_object_new_object(), *fns = json_object_new_array();
	struct gp_state_gpu rec;
	char vm[GP_NAME_LEN];

	json_object_object_add(o, "address", json_object_new_string(addr));
	json_object_object_add(o, "action", json_object_new_string(action));
	json_object_object_add(o, "changed", json_object_new_boolean(did));
	if (gp_state_gpu_get(st, addr, &rec) == 0) {
		json_object_object_add(o, "dismounted", json_object_new_boolean(1));
		json_object_object_add(o, "iommu_group", json_object_new_int(rec.iommu_group));
		for (size_t i = 0; i < rec.nfn; i++) {
			struct json_object *f = json_object_new_object();

			json_object_object_add(f, "address", json_object_new_string(rec.fn[i].address));
			json_object_object_add(f, "original_driver",
					       rec.fn[i].original_driver[0] ?
					       json_object_new_string(rec.fn[i].original_driver) : NULL);
			json_object_array_add(fns, f);
		}
		json_object_object_add(o, "vm", gp_state_gpu_owner(st, addr, vm, sizeof(vm)) == 0 ?
				       json_object_new_string(vm) : NULL);
	} else {
		json_object_object_add(o, "dismounted", json_object_new_boolean(0));
	}
	json_object_object_add(o, "functions", fns);
	cli_json_print(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
	json_object_put(o);
}

static int parse(int argc, char **argv, bool *force, bool *json, const char **vm,
		 const char **gpu)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "vm", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			*force = true;
			break;
		case 'j':
			*json = true;
			break;
		case 'm':
			*vm = optarg;
			break;
		case 'h':
			return 1;
		default:
			return -1;
		}
	}
	if (optind != argc - 1)
		return -1;
	*gpu = argv[optind];
	return 0;
}

static int cmd_dda(struct cli *cli, int argc, char **argv)
{
	const char *cmd = argv[0], *vm = NULL, *gpu = NULL;
	bool force = false, json = false, did = false;
	struct gp_why why = { "" };
	struct gp_ctx *ctx;
	struct gp_state *st = NULL;
	char addr[GP_ADDR_LEN] = "", owner[GP_NAME_LEN] = "";
	int p = parse(argc, argv, &force, &json, &vm, &gpu), r;

	if (p > 0)
		return dda_usage(stdout, cmd);
	if (p < 0) {
		if (optind >= argc)
			cli_error(cli, "%s: which GPU? give its address, location path or name", cmd);
		else
			cli_error(cli, "%s: bad arguments; see gpupass %s --help", cmd, cmd);
		return GP_EXIT_USAGE;
	}
	if (strcmp(cmd, "assign") == 0 && !vm) {
		cli_error(cli, "assign %s: which VM? add --vm NAME", gpu);
		return GP_EXIT_USAGE;
	}
	r = cli_state(cli, &ctx, &st);
	if (r)
		goto out;
	if (strcmp(cmd, "dismount") == 0) {
		struct gp_bind_opts o = { .force = force };

		r = gp_bind_dismount(ctx, st, gpu, &o, addr, &did, &why);
		if (r == 0 && !json)
			printf(did ? "%s: dismounted; its IOMMU group is on vfio-pci\n"
				   : "%s: already dismounted (on vfio-pci)\n", addr);
	} else if (strcmp(cmd, "mount") == 0) {
		r = gp_deploy_mount(ctx, st, gpu, NULL, addr, owner, &did, &why);
		if (r == 0 && !json)
			printf(did ? "%s: mounted; back on its host drivers\n"
				   : "%s: not dismounted by gpupass; nothing to do\n", addr);
		if (r == 0 && owner[0])
			fprintf(stderr, "%s: note: %s is still assigned to the stopped VM %s: "
				"gpupass vm start %s takes it again (gpupass unassign %s "
				"frees it)\n", cli->prog, addr, owner, owner, addr);
	} else if (strcmp(cmd, "assign") == 0) {
		struct gp_deploy_opts o = { .force = force };

		r = gp_deploy_assign(ctx, st, gpu, vm, &o, addr, &why);
		did = r == 0;
		if (r == 0 && !json)
			printf("%s: assigned to VM %s\n", addr, vm);
	} else {
		r = gp_deploy_unassign(ctx, st, gpu, NULL, addr, owner, &why);
		did = r == 0;
		if (r == 0 && !json)
			printf("%s: unassigned from VM %s; still dismounted (gpupass mount %s gives "
			       "it back to the host)\n", addr, owner, addr);
	}
	if (r < 0) {
		cli_error(cli, "%s", why.msg[0] ? why.msg : strerror(-r));
		r = cli_exit_for(r);
		goto out;
	}
	if (json)
		print_gpu_json(st, addr, did, cmd);
	r = GP_EXIT_OK;
out:
	gp_state_close(st);
	return r;
}

int cmd_dismount(struct cli *cli, int argc, char **argv)
{
	return cmd_dda(cli, argc, argv);
}

int cmd_mount(struct cli *cli, int argc, char **argv)
{
	return cmd_dda(cli, argc, argv);
}

int cmd_assign(struct cli *cli, int argc, char **argv)
{
	return cmd_dda(cli, argc, argv);
}

int cmd_unassign(struct cli *cli, int argc, char **argv)
{
	return cmd_dda(cli, argc, argv);
}
