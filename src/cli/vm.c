/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass vm create|set|list|show|delete|start|stop|status|log|verify */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "host/vm/disk.h"
#include "host/deploy.h"
#include "host/pvconf.h"
#include "host/state.h"
#include "host/vm/qemu.h"

static void vm_usage(FILE *f)
{
	fprintf(f,
		"Usage: gpupass vm COMMAND ...\n"
		"\n"
		"  create NAME [--memory 4G] [--cpus 2] [--disk FILE [--disk-format raw|qcow2]\n"
		"         [--allow-backing DIR] | --kernel K [--initrd I] [--append ARGS]]\n"
		"         [--gpu-passthrough dda|pv|none] [--gpu-name NAME]\n"
		"         [--gpu-count N] [--gpu-memory-max SIZE] [--gpu-weight 1..1000]\n"
		"         [--gpu-shm SIZE] [--share HOSTDIR:TAG[:ro]]... [--accel auto|kvm|tcg]\n"
		"         [--qemu-arg ARG]... [--force]\n"
		"  set NAME [same options]     change it (GPU settings, --gpu-shm and shares\n"
		"                              only while stopped; --share replaces the list,\n"
		"                              --share none removes every share)\n"
		"  list [--json]               every VM, its state and GPUs\n"
		"  show NAME [--json]          one VM in full\n"
		"  delete NAME [--force]       delete it (--force: turn it off first); GPUs that\n"
		"                              vm create dismounted for it go back to the host\n"
		"  start NAME [--timeout SEC] [--force]\n"
		"                              start QEMU; waits until QMP answers. A GPU of\n"
		"                              the VM that is back on the host is dismounted\n"
		"                              again first (--force as for dismount)\n"
		"  stop NAME|--all [--timeout SEC] [--force]\n"
		"                              ACPI power-down, turned off after --timeout\n"
		"                              (default 30 s); --force turns it off at once\n"
		"  status NAME [--json]        stopped, starting, running or paused\n"
		"  log NAME [--lines N]        the serial console and QEMU's messages\n"
		"  verify NAME [--json] [--agent-timeout SEC] [--wait SEC]\n"
		"                              prove the guest sees its GPUs (QMP query-pci;\n"
		"                              lspci -nn through qemu-guest-agent if it runs);\n"
		"                              --wait: ask again each second until it does or\n"
		"                              SEC pass (the firmware enumerates late)\n"
		"\n"
		"--gpu-passthrough also takes DirectDeviceAssignment and ParaVirtualization.\n"
		"A VM with a DDA GPU is never saved, snapshotted or migrated: on host stop it\n"
		"is powered off (gpupass vm stop --all). QEMU: $GPUPASS_QEMU or\n"
		"qemu-system-x86_64; KVM is used when usable, else TCG.\n"
		"A pv VM needs a PV-ready GPU (gpupass survey); its [guest NAME] section\n"
		"(socket <state-dir>/pv/NAME.sock, memory_max, weight) is kept in\n"
		"gpupass-pvd's config: --pvd-config FILE, $GPUPASS_PVD_CONFIG, or\n"
		"<state-dir>/pvd.conf. vm create and vm start of a pv VM send SIGHUP to the\n"
		"gpupass-pvd named by <state-dir>/pvd.pid, or start one when none runs:\n"
		"$GPUPASS_PVD, else gpupass-pvd next to gpupass, else on PATH, as\n"
		"gpupass-pvd --config CONF --pidfile <state-dir>/pvd.pid, log <state-dir>/pvd.log.\n"
		"--gpu-shm SIZE: the pv VM's ivshmem region for bulk data (default 64M, a\n"
		"power of two, 0 = none), file <state-dir>/pv/NAME.shm.\n"
		"--disk FILE: its format is read once at create (qemu-img info) or taken from\n"
		"--disk-format, and recorded: starts never guess it from the guest's data; a\n"
		"qcow2 with a backing file needs --allow-backing DIR (the folder holding it).\n"
		"--share HOSTDIR:TAG[:ro]: export a host folder over virtio-9p (any method; at\n"
		"most 8); in the guest: mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR.\n");
}

enum {
	OPT_MEMORY = 1000, OPT_CPUS, OPT_DISK, OPT_KERNEL, OPT_INITRD, OPT_APPEND, OPT_PT,
	OPT_GPU_NAME, OPT_GPU_COUNT, OPT_GPU_MEMORY_MAX, OPT_GPU_WEIGHT, OPT_PVD_CONFIG, OPT_ACCEL, OPT_QEMU_ARG, OPT_FORCE, OPT_JSON, OPT_ALL,
	OPT_GPU_SHM, OPT_SHARE, OPT_WAIT, OPT_DISK_FORMAT, OPT_ALLOW_BACKING,
	OPT_TIMEOUT, OPT_LINES, OPT_AGENT_TIMEOUT, OPT_HELP,
};

static const struct option vm_opts[] = {
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "disk-format", required_argument, NULL, OPT_DISK_FORMAT },
	{ "allow-backing", required_argument, NULL, OPT_ALLOW_BACKING },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "initrd", required_argument, NULL, OPT_INITRD },
	{ "append", required_argument, NULL, OPT_APPEND },
	{ "gpu-passthrough", required_argument, NULL, OPT_PT },
	{ "gpu-name", required_argument, NULL, OPT_GPU_NAME },
	{ "gpu-count", required_argument, NULL, OPT_GPU_COUNT },
	{ "gpu-memory-max", required_argument, NULL, OPT_GPU_MEMORY_MAX },
	{ "gpu-weight", required_argument, NULL, OPT_GPU_WEIGHT },
	{ "pvd-config", required_argument, NULL, OPT_PVD_CONFIG },
	{ "gpu-shm", required_argument, NULL, OPT_GPU_SHM },
	{ "share", required_argument, NULL, OPT_SHARE },
	{ "wait", required_argument, NULL, OPT_WAIT },
	{ "accel", required_argument, NULL, OPT_ACCEL },
	{ "qemu-arg", required_argument, NULL, OPT_QEMU_ARG },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "lines", required_argument, NULL, OPT_LINES },
	{ "agent-timeout", required_argument, NULL, OPT_AGENT_TIMEOUT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

struct vm_args {
	const char *name;
	bool force, json, all, help;
	int timeout_s, lines, agent_timeout_s, wait_s;
	bool has_timeout;
	/* which config fields were given (for vm set) */
	const char *memory, *cpus, *disk, *kernel, *initrd, *append, *pt, *gpu_name, *gpu_count,
		*accel, *gpu_memory_max, *gpu_weight, *pvd_config, *gpu_shm, *disk_format,
		*allow_backing;
	struct gp_strv qemu_args;
	struct gp_strv shares;
};

static bool set_str(char *dst, size_t len, const char *src)
{
	if (strlen(src) >= len)
		return false;
	strcpy(dst, src);
	return true;
}

static int parse_secs(struct cli *cli, const char *opt, const char *s, int *out)
{
	int v;

	if (gp_parse_int(s, &v) < 0 || v < 0 || v > 86400) {
		cli_error(cli, "%s '%s' is not a number of seconds (0 to 86400)", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_args(struct cli *cli, int argc, char **argv, struct vm_args *a)
{
	int c;

	a->timeout_s = 30;
	a->lines = 200;
	a->agent_timeout_s = 5;
	optind = 0; /* 0: full re-initialisation of GNU getopt (permuting again) */
	while ((c = getopt_long(argc, argv, "h", vm_opts, NULL)) != -1) {
		switch (c) {
		case OPT_MEMORY: a->memory = optarg; break;
		case OPT_CPUS: a->cpus = optarg; break;
		case OPT_DISK: a->disk = optarg; break;
		case OPT_DISK_FORMAT: a->disk_format = optarg; break;
		case OPT_ALLOW_BACKING: a->allow_backing = optarg; break;
		case OPT_KERNEL: a->kernel = optarg; break;
		case OPT_INITRD: a->initrd = optarg; break;
		case OPT_APPEND: a->append = optarg; break;
		case OPT_PT: a->pt = optarg; break;
		case OPT_GPU_NAME: a->gpu_name = optarg; break;
		case OPT_GPU_COUNT: a->gpu_count = optarg; break;
		case OPT_GPU_MEMORY_MAX: a->gpu_memory_max = optarg; break;
		case OPT_GPU_WEIGHT: a->gpu_weight = optarg; break;
		case OPT_PVD_CONFIG: a->pvd_config = optarg; break;
		case OPT_ACCEL: a->accel = optarg; break;
		case OPT_QEMU_ARG:
			if (gp_strv_push(&a->qemu_args, optarg) < 0)
				return -1;
			break;
		case OPT_GPU_SHM: a->gpu_shm = optarg; break;
		case OPT_SHARE:
			if (gp_strv_push(&a->shares, optarg) < 0)
				return -1;
			break;
		case OPT_FORCE: a->force = true; break;
		case OPT_JSON: a->json = true; break;
		case OPT_ALL: a->all = true; break;
		case OPT_TIMEOUT:
			if (parse_secs(cli, "--timeout", optarg, &a->timeout_s) < 0)
				return -1;
			a->has_timeout = true;
			break;
		case OPT_LINES:
			if (gp_parse_int(optarg, &a->lines) < 0 || a->lines < 1) {
				cli_error(cli, "--lines '%s' is not a positive number", optarg);
				return -1;
			}
			break;
		case OPT_WAIT:
			if (parse_secs(cli, "--wait", optarg, &a->wait_s) < 0)
				return -1;
			break;
		case OPT_AGENT_TIMEOUT:
			if (parse_secs(cli, "--agent-timeout", optarg, &a->agent_timeout_s) < 0)
				return -1;
			break;
		case OPT_HELP:
		case 'h':
			a->help = true;
			return 0;
		default:
			return -1;
		}
	}
	if (optind < argc)
		a->name = argv[optind++];
	if (optind < argc) {
		cli_error(cli, "vm %s: unexpected argument '%s'", argv[0], argv[optind]);
		return -1;
	}
	return 0;
}

/* The disk's format, read here once (create, or set with a new --disk or
 * --disk-format) and recorded: starts never look at the disk's contents,
 * which belong to the guest. A disk that cannot be read is left for the
 * configuration check to name. */
static int apply_disk(struct cli *cli, const struct vm_args *a, struct gp_vm_config *cfg)
{
	struct gp_disk_info info;
	struct gp_why why = { "" };

	if (!a->disk && !a->disk_format && !a->allow_backing)
		return 0;
	if (!cfg->disk[0]) {
		cli_error(cli, "VM %s: --disk-format and --allow-backing need a --disk", cfg->name);
		return -1;
	}
	if (access(cfg->disk, R_OK) < 0)
		return 0;
	if (gp_disk_inspect(cfg->name, cfg->disk, a->disk_format, a->allow_backing, &info,
			    &why) < 0) {
		cli_error(cli, "%s", why.msg);
		return -1;
	}
	snprintf(cfg->disk_format, sizeof(cfg->disk_format), "%s", info.format);
	snprintf(cfg->disk_backing, sizeof(cfg->disk_backing), "%s", info.backing);
	snprintf(cfg->disk_backing_format, sizeof(cfg->disk_backing_format), "%s",
		 info.backing_format);
	return 0;
}

/* Applies the given options onto @cfg; prints and returns -1 on bad ones. */
static int apply(struct cli *cli, const struct vm_args *a, struct gp_vm_config *cfg)
{
	if (a->memory) {
		uint64_t m;

		if (gp_parse_size(a->memory, &m) < 0 || m < (64ull << 20) || m > (1ull << 46)) {
			cli_error(cli, "VM %s: invalid memory size '%s'; give e.g. 512M or 4G "
				  "(64M to 64T)", cfg->name, a->memory);
			return -1;
		}
		cfg->memory = m;
	}
	if (a->cpus && (gp_parse_int(a->cpus, &cfg->cpus) < 0 || cfg->cpus < 1)) {
		cli_error(cli, "VM %s: --cpus '%s' is not a positive number", cfg->name, a->cpus);
		return -1;
	}
	if (a->pt && gp_passthrough_parse(a->pt, &cfg->passthrough) < 0) {
		cli_error(cli, "VM %s: --gpu-passthrough '%s' is not dda, pv or none", cfg->name, a->pt);
		return -1;
	}
	if (a->gpu_count && (gp_parse_int(a->gpu_count, &cfg->gpu_count) < 0 || cfg->gpu_count < 0)) {
		cli_error(cli, "VM %s: --gpu-count '%s' is not a number", cfg->name, a->gpu_count);
		return -1;
	}
	if (a->gpu_memory_max) {
		uint64_t m;

		if (gp_parse_size(a->gpu_memory_max, &m) < 0 || m == 0 || m > INT64_MAX) {
			cli_error(cli, "VM %s: invalid --gpu-memory-max '%s'; give a size such as "
				  "512M or 2G", cfg->name, a->gpu_memory_max);
			return -1;
		}
		cfg->pv_memory_max = m;
	}
	if (a->gpu_weight && (gp_parse_int(a->gpu_weight, &cfg->pv_weight) < 0 ||
			      cfg->pv_weight < 1 || cfg->pv_weight > 1000)) {
		cli_error(cli, "VM %s: invalid --gpu-weight '%s'; give 1 to 1000", cfg->name,
			  a->gpu_weight);
		return -1;
	}
	if ((a->disk && !set_str(cfg->disk, sizeof(cfg->disk), a->disk)) ||
	    (a->kernel && !set_str(cfg->kernel, sizeof(cfg->kernel), a->kernel)) ||
	    (a->initrd && !set_str(cfg->initrd, sizeof(cfg->initrd), a->initrd)) ||
	    (a->append && !set_str(cfg->append, sizeof(cfg->append), a->append)) ||
	    (a->gpu_name && !set_str(cfg->gpu_name, sizeof(cfg->gpu_name), a->gpu_name)) ||
	    (a->accel && !set_str(cfg->accel, sizeof(cfg->accel), a->accel))) {
		cli_error(cli, "VM %s: an option value is too long", cfg->name);
		return -1;
	}
	if (apply_disk(cli, a, cfg) < 0)
		return -1;
	if (a->gpu_shm) {
		uint64_t m;

		if (cfg->passthrough != GP_PT_PV) {
			cli_error(cli, "VM %s: --gpu-shm is for --gpu-passthrough pv", cfg->name);
			return -1;
		}
		if (gp_parse_size(a->gpu_shm, &m) < 0 || (m && (m & (m - 1) ||
		    m < GP_VM_PV_SHM_MIN || m > GP_VM_PV_SHM_MAX))) {
			cli_error(cli, "VM %s: invalid --gpu-shm '%s'; give a power of two between "
				  "1M and 16G (e.g. 64M), or 0 for none", cfg->name, a->gpu_shm);
			return -1;
		}
		cfg->pv_shm = m;
	}
	if (a->shares.n) {
		bool none = a->shares.n == 1 && strcmp(a->shares.v[0], "none") == 0;

		if (!none && a->shares.n > GP_VM_MAX_SHARES) {
			cli_error(cli, "VM %s: at most %d --share folders", cfg->name,
				  GP_VM_MAX_SHARES);
			return -1;
		}
		cfg->nshares = 0;
		for (size_t i = 0; !none && i < a->shares.n; i++) {
			struct gp_vm_share *sh = &cfg->shares[cfg->nshares];

			if (gp_vm_share_parse(a->shares.v[i], sh) < 0) {
				cli_error(cli, "VM %s: --share '%s' is not HOSTDIR:TAG[:ro] (an "
					  "absolute directory, a tag of 1 to %d letters, digits, "
					  "'_', '.' or '-')", cfg->name, a->shares.v[i],
					  GP_SHARE_TAG_MAX);
				return -1;
			}
			/* Stored and shown as the folder it really is: no "..",
			 * no symlink that could later point elsewhere. A path
			 * that does not resolve is left for the checks to name. */
			if (sh->dir[0] == '/') {
				char *real = realpath(sh->dir, NULL);

				if (real && strlen(real) < sizeof(sh->dir))
					strcpy(sh->dir, real);
				free(real);
			}
			cfg->nshares++;
		}
	}
	/* A dda request without a count means one GPU. */
	if (cfg->passthrough == GP_PT_DDA && cfg->gpu_count == 0 && !a->gpu_count)
		cfg->gpu_count = 1;
	/* PV shares one GPU: a count left from dda does not carry over. */
	if (cfg->passthrough == GP_PT_PV && a->pt && !a->gpu_count)
		cfg->gpu_count = 0;
	if (cfg->passthrough == GP_PT_NONE && a->pt && !a->gpu_count) {
		cfg->gpu_count = 0;
		cfg->gpu_name[0] = '\0';
	}
	if (a->qemu_args.n) {
		size_t off = 0;

		cfg->extra[0] = '\0';
		for (size_t i = 0; i < a->qemu_args.n; i++) {
			int n = snprintf(cfg->extra + off, sizeof(cfg->extra) - off, "%s%s",
					 off ? " " : "", a->qemu_args.v[i]);

			if (n < 0 || (size_t)n >= sizeof(cfg->extra) - off) {
				cli_error(cli, "VM %s: --qemu-arg values are too long", cfg->name);
				return -1;
			}
			off += (size_t)n;
		}
	}
	return 0;
}

static void progress(void *data, const char *msg)
{
	(void)data;
	printf("%s\n", msg);
	fflush(stdout);
}

static struct gp_deploy_opts deploy_opts(const struct vm_args *a, struct gp_pvd_result *res)
{
	struct gp_deploy_opts o = {
		.force = a->force,
		.qemu = getenv("GPUPASS_QEMU"),
		.pvd_conf = a->pvd_config ? a->pvd_config : getenv("GPUPASS_PVD_CONFIG"),
		.pvd = getenv("GPUPASS_PVD"),
		.progress = progress,
		.pvd_result = res,
	};

	return o;
}

/* What happened to gpupass-pvd: one line on stdout, or a warning with the
 * way out on stderr (the VM itself is fine: its port reconnects). */
static void report_pvd(struct gp_ctx *ctx, const char *vm, const struct gp_deploy_opts *o,
		       const struct gp_pvd_result *res)
{
	char conf[GP_VM_PATH_LEN];

	if (!res->tried)
		return;
	if (res->err == 0) {
		if (res->started)
			printf("gpupass-pvd started (pid %d), serving VM %s; log %s\n", (int)res->pid,
			       vm, res->log);
		else
			printf("gpupass-pvd (pid %d) reloaded, serving VM %s\n", (int)res->pid, vm);
		return;
	}
	if (!o->pvd_conf || !*o->pvd_conf)
		(void)gp_pvconf_default_path(ctx, conf, sizeof(conf));
	else
		snprintf(conf, sizeof(conf), "%s", o->pvd_conf);
	fprintf(stderr, "gpupass: warning: VM %s uses PV but %s; the VM's port connects once "
		"gpupass-pvd listens: start it with gpupass-pvd --config %s --pidfile "
		"%s/" GP_PVD_PIDFILE "\n", vm, res->why.msg, conf, ctx->state_dir);
}

static struct json_object *jstr(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

/* What confines a running QEMU, read from the kernel (/proc/PID/status):
 * {"uid","user","seccomp","no_new_privs","cap_eff"}; when stopped, what
 * the next start asks for: {"user","sandbox"}. */
static struct json_object *qemu_confinement(const char *vm, pid_t pid)
{
	struct json_object *o = json_object_new_object();
	char path[64], line[256], quser[64] = "";
	struct gp_why w;
	FILE *f;

	if (!pid) {
		if (gp_deploy_qemu_user(vm, quser, sizeof(quser), &w) < 0)
			snprintf(quser, sizeof(quser), "?");
		json_object_object_add(o, "user", json_object_new_string(quser[0] ? quser : "root"));
		json_object_object_add(o, "sandbox", json_object_new_boolean(true));
		return o;
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if (sscanf(line, "Uid: %*u %llu", &v) == 1) {
			struct passwd *pw = getpwuid((uid_t)v);

			json_object_object_add(o, "uid", json_object_new_int64((int64_t)v));
			json_object_object_add(o, "user", pw ? json_object_new_string(pw->pw_name) : NULL);
		} else if (sscanf(line, "Seccomp: %llu", &v) == 1) {
			json_object_object_add(o, "seccomp", json_object_new_boolean(v == 2));
		} else if (sscanf(line, "NoNewPrivs: %llu", &v) == 1) {
			json_object_object_add(o, "no_new_privs", json_object_new_boolean(v == 1));
		} else if (strncmp(line, "CapEff:", 7) == 0) {
			line[strcspn(line, "\n")] = '\0';
			json_object_object_add(o, "cap_eff", json_object_new_string(line + 8 +
					       strspn(line + 8, " \t")));
		}
	}
	if (f)
		fclose(f);
	return o;
}

static struct json_object *vm_json(struct gp_ctx *ctx, struct gp_state *st,
				   const struct gp_vm_config *c)
{
	struct json_object *o = json_object_new_object(), *g = json_object_new_array();
	struct gp_strv gpus = { 0 };
	struct gp_vm_paths p;
	enum gp_vm_run_state rs = GP_VM_STOPPED;
	pid_t pid = 0;

	memset(&p, 0, sizeof(p));
	if (gp_vm_paths_get(ctx, c->name, &p) == 0)
		(void)gp_vm_status(&p, &rs, &pid, NULL);
	json_object_object_add(o, "name", json_object_new_string(c->name));
	json_object_object_add(o, "state", json_object_new_string(gp_vm_run_state_name(rs)));
	json_object_object_add(o, "pid", pid ? json_object_new_int(pid) : NULL);
	json_object_object_add(o, "memory", json_object_new_int64((int64_t)c->memory));
	json_object_object_add(o, "cpus", json_object_new_int(c->cpus));
	json_object_object_add(o, "disk", jstr(c->disk));
	json_object_object_add(o, "disk_format", jstr(c->disk_format));
	json_object_object_add(o, "disk_backing", jstr(c->disk_backing));
	json_object_object_add(o, "disk_backing_format", jstr(c->disk_backing_format));
	json_object_object_add(o, "kernel", jstr(c->kernel));
	json_object_object_add(o, "initrd", jstr(c->initrd));
	json_object_object_add(o, "append", jstr(c->append));
	json_object_object_add(o, "gpu_passthrough",
			       json_object_new_string(gp_passthrough_name(c->passthrough)));
	json_object_object_add(o, "gpu_name", jstr(c->gpu_name));
	json_object_object_add(o, "gpu_count", json_object_new_int(c->gpu_count));
	json_object_object_add(o, "accel", json_object_new_string(c->accel));
	json_object_object_add(o, "qemu_args", jstr(c->extra));
	json_object_object_add(o, "qemu_confinement", qemu_confinement(c->name, pid));
	if (c->passthrough == GP_PT_PV) {
		struct json_object *pv = json_object_new_object();
		char sock[GP_VM_PATH_LEN];

		json_object_object_add(pv, "socket", gp_pv_socket_path(ctx, c->name, sock,
					sizeof(sock)) == 0 ? json_object_new_string(sock) : NULL);
		json_object_object_add(pv, "memory_max", c->pv_memory_max ?
				       json_object_new_int64((int64_t)c->pv_memory_max) : NULL);
		json_object_object_add(pv, "weight", json_object_new_int(c->pv_weight));
		json_object_object_add(pv, "shm_size", json_object_new_int64((int64_t)c->pv_shm));
		json_object_object_add(pv, "shm_file", c->pv_shm && gp_pv_shm_path(ctx, c->name, sock,
					sizeof(sock)) == 0 ? json_object_new_string(sock) : NULL);
		json_object_object_add(o, "pv", pv);
	}
	{
		struct json_object *sh = json_object_new_array();

		for (size_t i = 0; i < c->nshares; i++) {
			struct json_object *e = json_object_new_object();

			json_object_object_add(e, "dir", json_object_new_string(c->shares[i].dir));
			json_object_object_add(e, "tag", json_object_new_string(c->shares[i].tag));
			json_object_object_add(e, "readonly",
					       json_object_new_boolean(c->shares[i].readonly));
			json_object_array_add(sh, e);
		}
		json_object_object_add(o, "shares", sh);
	}
	(void)gp_state_vm_gpus(st, c->name, &gpus);
	for (size_t i = 0; i < gpus.n; i++) {
		struct gp_state_gpu rec;
		struct json_object *e = json_object_new_object(), *fns = json_object_new_array();

		json_object_object_add(e, "address", json_object_new_string(gpus.v[i]));
		if (gp_state_gpu_get(st, gpus.v[i], &rec) == 0) {
			json_object_object_add(e, "iommu_group", json_object_new_int(rec.iommu_group));
			json_object_object_add(e, "on_vfio",
					       json_object_new_boolean(gp_bind_gpu_on_vfio(ctx, &rec)));
			for (size_t f = 0; f < rec.nfn; f++)
				json_object_array_add(fns, json_object_new_string(rec.fn[f].address));
		}
		json_object_object_add(e, "functions", fns);
		json_object_array_add(g, e);
	}
	gp_strv_clear(&gpus);
	json_object_object_add(o, "gpus", g);
	json_object_object_add(o, "never_saved", json_object_new_boolean(c->passthrough == GP_PT_DDA));
	json_object_object_add(o, "log", json_object_new_string(p.log));
	return o;
}

static void print_json(struct json_object *o)
{
	cli_json_print(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
}

static int fail(struct cli *cli, const struct gp_why *why, int r)
{
	cli_error(cli, "%s", why->msg[0] ? why->msg : strerror(-r));
	return cli_exit_for(r);
}

static int vm_create_set(struct cli *cli, struct gp_ctx *ctx, struct gp_state *st,
			 struct vm_args *a, bool create)
{
	struct gp_vm_config *cfg = malloc(sizeof(*cfg));
	struct gp_pvd_result res = { 0 };
	struct gp_deploy_opts o = deploy_opts(a, &res);
	struct gp_strv gpus = { 0 };
	struct gp_why why = { "" };
	int r;

	if (!cfg)
		return GP_EXIT_FAIL;
	if (create) {
		gp_vm_config_init(cfg, a->name);
	} else {
		r = gp_state_vm_get(st, a->name, cfg);
		if (r < 0) {
			cli_error(cli, "VM %s does not exist; gpupass vm list shows the VMs", a->name);
			free(cfg);
			return GP_EXIT_USAGE;
		}
	}
	if (apply(cli, a, cfg) < 0) {
		free(cfg);
		return GP_EXIT_USAGE;
	}
	r = create ? gp_deploy_vm_create(ctx, st, cfg, &o, &gpus, &why)
		   : gp_deploy_vm_set(ctx, st, cfg, &o, &why);
	if (r < 0) {
		r = fail(cli, &why, r);
	} else {
		printf("VM %s %s", cfg->name, create ? "created" : "updated");
		for (size_t i = 0; i < gpus.n; i++)
			printf("%s%s", i ? ", " : " with GPU ", gpus.v[i]);
		printf("\n");
		report_pvd(ctx, cfg->name, &o, &res);
		r = GP_EXIT_OK;
	}
	gp_strv_clear(&gpus);
	free(cfg);
	return r;
}

static int vm_list(struct gp_ctx *ctx, struct gp_state *st, bool json)
{
	struct json_object *arr = json_object_new_array();
	struct gp_strv names = { 0 };
	struct gp_vm_config *cfg = malloc(sizeof(*cfg));

	if (!cfg || gp_state_vm_list(st, &names) < 0) {
		free(cfg);
		json_object_put(arr);
		return GP_EXIT_FAIL;
	}
	for (size_t i = 0; i < names.n; i++) {
		if (gp_state_vm_get(st, names.v[i], cfg) == 0)
			json_object_array_add(arr, vm_json(ctx, st, cfg));
	}
	if (json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "schema", json_object_new_string("gpupass.vms/1"));
		json_object_object_add(o, "vms", json_object_get(arr));
		print_json(o);
		json_object_put(o);
	} else {
		printf("%-20s %-9s %-7s %-5s %-5s %s\n", "NAME", "STATE", "MEMORY", "CPUS", "GPU", "GPUS");
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *v = json_object_array_get_idx(arr, i), *x, *g;
			char sz[32];
			size_t ng;

			json_object_object_get_ex(v, "memory", &x);
			gp_format_size((uint64_t)json_object_get_int64(x), sz, sizeof(sz));
			json_object_object_get_ex(v, "gpus", &g);
			ng = json_object_array_length(g);
			printf("%-20s %-9s %-7s %-5d %-5s ",
			       json_object_get_string(json_object_object_get(v, "name")),
			       json_object_get_string(json_object_object_get(v, "state")), sz,
			       json_object_get_int(json_object_object_get(v, "cpus")),
			       json_object_get_string(json_object_object_get(v, "gpu_passthrough")));
			for (size_t k = 0; k < ng; k++)
				printf("%s%s", k ? "," : "",
				       json_object_get_string(json_object_object_get(
					       json_object_array_get_idx(g, k), "address")));
			printf("%s\n", ng ? "" : "-");
		}
		if (names.n == 0)
			printf("(no VMs; gpupass vm create NAME ... makes one)\n");
	}
	json_object_put(arr);
	gp_strv_clear(&names);
	free(cfg);
	return GP_EXIT_OK;
}

static int vm_show(struct cli *cli, struct gp_ctx *ctx, struct gp_state *st, struct vm_args *a,
		   bool status_only)
{
	struct gp_vm_config *cfg = malloc(sizeof(*cfg));
	struct json_object *o;
	int r;

	if (!cfg)
		return GP_EXIT_FAIL;
	r = gp_state_vm_get(st, a->name, cfg);
	if (r < 0) {
		free(cfg);
		cli_error(cli, "VM %s does not exist; gpupass vm list shows the VMs", a->name);
		return GP_EXIT_USAGE;
	}
	o = vm_json(ctx, st, cfg);
	if (a->json) {
		print_json(o);
	} else if (status_only) {
		struct json_object *pid = json_object_object_get(o, "pid");

		printf("%s: %s", a->name, json_object_get_string(json_object_object_get(o, "state")));
		if (pid)
			printf(" (pid %d)", json_object_get_int(pid));
		printf("\n");
	} else {
		struct json_object *g = json_object_object_get(o, "gpus");
		char sz[32];

		printf("name:            %s\n", cfg->name);
		printf("state:           %s\n", json_object_get_string(json_object_object_get(o, "state")));
		printf("memory:          %s\n", gp_format_size(cfg->memory, sz, sizeof(sz)));
		printf("cpus:            %d\n", cfg->cpus);
		{
			struct json_object *q = json_object_object_get(o, "qemu_confinement"), *v;

			if (json_object_object_get_ex(q, "uid", &v))
				printf("qemu:            runs as %s (uid %d), seccomp %s, no_new_privs %s, "
				       "capabilities %s\n",
				       json_object_get_string(json_object_object_get(q, "user")),
				       json_object_get_int(v),
				       json_object_get_boolean(json_object_object_get(q, "seccomp")) ?
				       "on" : "OFF",
				       json_object_get_boolean(json_object_object_get(q,
							       "no_new_privs")) ? "on" : "OFF",
				       json_object_get_string(json_object_object_get(q, "cap_eff")));
			else
				printf("qemu:            starts as root, then runs as %s, under -sandbox on "
				       "(seccomp), no_new_privs\n",
				       json_object_get_string(json_object_object_get(q, "user")));
		}
		if (cfg->disk[0])
			printf("disk:            %s (%s%s%s%s%s)\n", cfg->disk,
			       cfg->disk_format[0] ? cfg->disk_format : "format not recorded: "
			       "vm set --disk-format", cfg->disk_backing[0] ? ", backing file " : "",
			       cfg->disk_backing, cfg->disk_backing[0] ? " as " : "",
			       cfg->disk_backing_format);
		if (cfg->kernel[0])
			printf("kernel:          %s\n", cfg->kernel);
		if (cfg->initrd[0])
			printf("initrd:          %s\n", cfg->initrd);
		if (cfg->append[0])
			printf("append:          %s\n", cfg->append);
		printf("gpu-passthrough: %s\n", gp_passthrough_name(cfg->passthrough));
		if (cfg->gpu_name[0])
			printf("gpu-name:        %s\n", cfg->gpu_name);
		if (cfg->passthrough == GP_PT_PV) {
			struct json_object *pv = json_object_object_get(o, "pv");
			const char *sock = json_object_get_string(json_object_object_get(pv, "socket"));

			printf("gpu-memory-max:  %s\n", cfg->pv_memory_max ?
			       gp_format_size(cfg->pv_memory_max, sz, sizeof(sz)) : "no limit");
			printf("gpu-weight:      %d\n", cfg->pv_weight);
			printf("pv-socket:       %s\n", sock ? sock : "(path too long)");
			if (cfg->pv_shm)
				printf("gpu-shm:         %s (%s)\n",
				       gp_format_size(cfg->pv_shm, sz, sizeof(sz)),
				       json_object_get_string(json_object_object_get(pv, "shm_file")));
			else
				printf("gpu-shm:         none (bulk data inline over the port)\n");
		} else {
			printf("gpu-count:       %d\n", cfg->gpu_count);
		}
		printf("accel:           %s\n", cfg->accel);
		if (cfg->extra[0])
			printf("qemu-args:       %s\n", cfg->extra);
		for (size_t i = 0; i < cfg->nshares; i++)
			printf("share:           %s as %s (%s)\n", cfg->shares[i].dir,
			       cfg->shares[i].tag, cfg->shares[i].readonly ? "read-only" : "read-write");
		for (size_t i = 0; i < json_object_array_length(g); i++) {
			struct json_object *e = json_object_array_get_idx(g, i);

			printf("gpu:             %s (%s)\n",
			       json_object_get_string(json_object_object_get(e, "address")),
			       json_object_get_boolean(json_object_object_get(e, "on_vfio")) ?
			       "on vfio-pci" : "NOT on vfio-pci");
		}
		if (cfg->passthrough == GP_PT_DDA)
			printf("host stop:       powered off, never saved or migrated\n");
		printf("log:             %s\n", json_object_get_string(json_object_object_get(o, "log")));
	}
	json_object_put(o);
	free(cfg);
	return GP_EXIT_OK;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Host stop: every VM is asked at once, then all get the same --timeout
 * before being turned off, so N VMs take one timeout, not N. */
static int vm_stop_all(struct cli *cli, struct gp_ctx *ctx, struct gp_state *st, struct vm_args *a)
{
	struct gp_strv names = { 0 }, running = { 0 };
	int64_t deadline;
	int rc = GP_EXIT_OK;

	if (gp_state_vm_list(st, &names) < 0)
		return GP_EXIT_FAIL;
	for (size_t i = 0; i < names.n; i++) {
		struct gp_vm_paths p;
		enum gp_vm_run_state rs;
		pid_t pid;

		if (gp_vm_paths_get(ctx, names.v[i], &p) < 0 ||
		    gp_vm_status(&p, &rs, &pid, NULL) < 0 || rs == GP_VM_STOPPED)
			continue;
		(void)gp_strv_push(&running, names.v[i]);
		if (!a->force)
			(void)gp_vm_request_powerdown(&p);
	}
	deadline = mono_ms() + (int64_t)a->timeout_s * 1000;
	for (size_t i = 0; i < running.n; i++) {
		struct gp_why why = { "" };
		int64_t left = deadline - mono_ms();
		bool forced = false;
		int r = gp_deploy_vm_stop(ctx, st, running.v[i], left > 0 ? (int)left : 0, a->force,
					  &forced, &why);

		if (r < 0) {
			cli_error(cli, "%s", why.msg);
			rc = GP_EXIT_FAIL;
		} else {
			printf("VM %s: %s\n", running.v[i], forced ? "turned off" : "powered down");
		}
	}
	if (running.n == 0)
		printf("no VM running\n");
	gp_strv_clear(&running);
	gp_strv_clear(&names);
	return rc;
}

static int vm_log(struct cli *cli, struct gp_ctx *ctx, struct gp_state *st, struct vm_args *a)
{
	struct gp_vm_config *cfg = malloc(sizeof(*cfg));
	struct gp_vm_paths p;
	char *tail = NULL, *start;
	int n = 0, r;

	if (!cfg)
		return GP_EXIT_FAIL;
	r = gp_state_vm_get(st, a->name, cfg);
	free(cfg);
	if (r < 0) {
		cli_error(cli, "VM %s does not exist; gpupass vm list shows the VMs", a->name);
		return GP_EXIT_USAGE;
	}
	if (gp_vm_paths_get(ctx, a->name, &p) < 0)
		return GP_EXIT_FAIL;
	r = gp_vm_log_tail(&p, 4u << 20, &tail);
	if (r == -ENOENT) {
		printf("(VM %s has no log yet: it was never started)\n", a->name);
		return GP_EXIT_OK;
	}
	if (r < 0) {
		cli_error(cli, "VM %s: cannot read %s: %s", a->name, p.log, strerror(-r));
		return GP_EXIT_FAIL;
	}
	/* The last --lines lines. */
	start = tail + strlen(tail);
	if (start > tail && start[-1] == '\n')
		start--;
	while (start > tail) {
		if (start[-1] == '\n' && ++n >= a->lines)
			break;
		start--;
	}
	fputs(start, stdout);
	if (*start && tail[strlen(tail) - 1] != '\n')
		putchar('\n');
	free(tail);
	return GP_EXIT_OK;
}

static int vm_verify(struct cli *cli, struct gp_ctx *ctx, struct gp_state *st, struct vm_args *a)
{
	int64_t deadline = mono_ms() + (int64_t)a->wait_s * 1000;
	struct gp_verify v;
	struct gp_why why = { "" };
	int r, tries = 0;

	/* Right after vm start the guest firmware may not have enumerated
	 * the root ports yet: --wait asks again until it has. A VM that is
	 * not running (or stops meanwhile) ends the wait at once. */
	for (;;) {
		struct timespec one = { 1, 0 };

		r = gp_deploy_vm_verify(ctx, st, a->name, a->agent_timeout_s * 1000, &v, &why);
		tries++;
		if (r < 0)
			return fail(cli, &why, r);
		if (v.ok || mono_ms() + 1000 > deadline)
			break;
		gp_verify_clear(&v);
		nanosleep(&one, NULL);
	}
	if (a->wait_s && !a->json)
		printf("(%d quer%s %s)\n", tries, tries == 1 ? "y" : "ies",
		       v.ok ? "until verified" : "over the whole --wait");
	if (a->json) {
		struct json_object *o = json_object_new_object(), *arr = json_object_new_array();

		for (size_t i = 0; i < v.n; i++) {
			struct json_object *d = json_object_new_object();
			char ids[16];

			json_object_object_add(d, "host_address", json_object_new_string(v.dev[i].host));
			snprintf(ids, sizeof(ids), "%04x:%04x", v.dev[i].vendor_id, v.dev[i].device_id);
			json_object_object_add(d, "ids", json_object_new_string(ids));
			json_object_object_add(d, "qdev_id", json_object_new_string(v.dev[i].qdev_id));
			json_object_object_add(d, "in_query_pci", json_object_new_boolean(v.dev[i].in_qmp));
			json_object_object_add(d, "guest_address", jstr(v.dev[i].guest_addr));
			json_object_object_add(d, "in_guest_lspci", v.dev[i].in_lspci < 0 ? NULL :
					       json_object_new_boolean(v.dev[i].in_lspci));
			json_object_array_add(arr, d);
		}
		json_object_object_add(o, "vm", json_object_new_string(a->name));
		json_object_object_add(o, "ok", json_object_new_boolean(v.ok));
		json_object_object_add(o, "guest_agent", json_object_new_boolean(v.agent));
		json_object_object_add(o, "devices", arr);
		json_object_object_add(o, "lspci", jstr(v.lspci));
		print_json(o);
		json_object_put(o);
	} else {
		if (v.n == 0)
			printf("VM %s has no assigned GPU\n", a->name);
		for (size_t i = 0; i < v.n; i++) {
			printf("%s %04x:%04x -> guest %s: query-pci %s", v.dev[i].host,
			       v.dev[i].vendor_id, v.dev[i].device_id,
			       v.dev[i].guest_addr[0] ? v.dev[i].guest_addr : "?",
			       v.dev[i].in_qmp ? "ok" : "MISSING");
			if (v.dev[i].in_lspci >= 0)
				printf(", guest lspci %s", v.dev[i].in_lspci ? "ok" : "MISSING");
			printf("\n");
		}
		if (!v.agent)
			printf("(guest agent not answering: lspci inside the guest not checked)\n");
		else
			printf("--- lspci -nn in the guest ---\n%s", v.lspci ? v.lspci : "");
		printf("VM %s: %s\n", a->name, v.ok ? "verified" : "NOT verified");
	}
	r = v.ok ? GP_EXIT_OK : GP_EXIT_FAIL;
	gp_verify_clear(&v);
	return r;
}

int cmd_vm(struct cli *cli, int argc, char **argv)
{
	struct vm_args a = { 0 };
	struct gp_ctx *ctx;
	struct gp_state *st = NULL;
	const char *sub;
	int r;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		vm_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? GP_EXIT_USAGE : GP_EXIT_OK;
	}
	sub = argv[1];
	if (strcmp(sub, "save") == 0 || strcmp(sub, "snapshot") == 0 ||
	    strcmp(sub, "migrate") == 0) {
		cli_error(cli, "vm %s: gpupass never saves, snapshots or migrates a VM: a DDA VM "
			  "holds host hardware whose state cannot be captured; stop it with "
			  "gpupass vm stop instead", sub);
		return GP_EXIT_FAIL;
	}
	if (parse_args(cli, argc - 1, argv + 1, &a) < 0) {
		fprintf(stderr, "Try 'gpupass vm --help'.\n");
		r = GP_EXIT_USAGE;
		goto out_args;
	}
	if (a.help) {
		vm_usage(stdout);
		r = GP_EXIT_OK;
		goto out_args;
	}
	if (strcmp(sub, "list") && !(strcmp(sub, "stop") == 0 && a.all) && !a.name) {
		cli_error(cli, "vm %s: which VM? give its name (gpupass vm list shows them)", sub);
		r = GP_EXIT_USAGE;
		goto out_args;
	}
	if (strcmp(sub, "create") && strcmp(sub, "set") && strcmp(sub, "list") &&
	    strcmp(sub, "show") && strcmp(sub, "delete") && strcmp(sub, "start") &&
	    strcmp(sub, "stop") && strcmp(sub, "status") && strcmp(sub, "log") &&
	    strcmp(sub, "verify")) {
		cli_error(cli, "unknown vm command '%s'; see gpupass vm --help", sub);
		r = GP_EXIT_USAGE;
		goto out_args;
	}
	if (a.name && !gp_vm_name_valid(a.name)) {
		cli_error(cli, "'%s' is not a valid VM name; use 1 to 63 letters, digits, '_', "
			  "'.' or '-', not starting with '.' or '-'",
			  a.name);
		r = GP_EXIT_USAGE;
		goto out_args;
	}
	r = cli_state(cli, &ctx, &st);
	if (r)
		goto out_args;

	if (strcmp(sub, "create") == 0 || strcmp(sub, "set") == 0) {
		r = vm_create_set(cli, ctx, st, &a, strcmp(sub, "create") == 0);
	} else if (strcmp(sub, "list") == 0) {
		r = vm_list(ctx, st, a.json);
	} else if (strcmp(sub, "show") == 0 || strcmp(sub, "status") == 0) {
		r = vm_show(cli, ctx, st, &a, strcmp(sub, "status") == 0);
	} else if (strcmp(sub, "delete") == 0) {
		struct gp_deploy_opts o = deploy_opts(&a, NULL);
		struct gp_why why = { "" };

		r = gp_deploy_vm_delete(ctx, st, a.name, &o, &why);
		if (r < 0) {
			r = fail(cli, &why, r);
		} else {
			printf("VM %s deleted\n", a.name);
			r = GP_EXIT_OK;
		}
	} else if (strcmp(sub, "start") == 0) {
		struct gp_pvd_result res = { 0 };
		struct gp_deploy_opts o = deploy_opts(&a, &res);
		struct gp_why why = { "" };
		bool already = false;

		if (a.has_timeout)
			o.start_timeout_ms = a.timeout_s * 1000;
		r = gp_deploy_vm_start(ctx, st, a.name, &o, &already, &why);
		if (r < 0) {
			r = fail(cli, &why, r);
		} else {
			printf(already ? "VM %s is already running\n" : "VM %s started\n", a.name);
			report_pvd(ctx, a.name, &o, &res);
			r = GP_EXIT_OK;
		}
	} else if (strcmp(sub, "stop") == 0) {
		if (a.all) {
			r = vm_stop_all(cli, ctx, st, &a);
		} else {
			struct gp_why why = { "" };
			bool forced = false;

			r = gp_deploy_vm_stop(ctx, st, a.name, a.timeout_s * 1000, a.force, &forced, &why);
			if (r < 0) {
				r = fail(cli, &why, r);
			} else {
				printf("VM %s stopped%s\n", a.name, forced ? " (turned off)" : "");
				r = GP_EXIT_OK;
			}
		}
	} else if (strcmp(sub, "log") == 0) {
		r = vm_log(cli, ctx, st, &a);
	} else {
		r = vm_verify(cli, ctx, st, &a);
	}
	gp_state_close(st);
out_args:
	gp_strv_clear(&a.qemu_args);
	gp_strv_clear(&a.shares);
	return r;
}
