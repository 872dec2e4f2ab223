/* SPDX-License-Identifier: Apache-2.0 */
#include "deploy.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host/clprobe.h"
#include "host/pci.h"
#include "host/pvconf.h"
#include "host/survey.h"
#include "host/vm/qmp.h"

#define MIN_MEMORY (64ull << 20)
#define MAX_CPUS 288 /* QEMU 7.2 q35 max_cpus */

static const struct gp_deploy_opts no_opts;

static bool file_readable(const char *path, bool want_dir_ok)
{
	struct stat sb;

	if (stat(path, &sb) < 0 || access(path, R_OK) < 0)
		return false;
	return S_ISREG(sb.st_mode) || S_ISBLK(sb.st_mode) || (want_dir_ok && S_ISDIR(sb.st_mode));
}

int gp_deploy_check_share(const char *vm, const struct gp_vm_share *sh, struct gp_why *why)
{
	struct stat sb;

	if (!gp_vm_share_tag_valid(sh->tag)) {
		gp_why_set(why, "VM %s: share tag '%s' is not valid; use 1 to %d letters, digits, "
			   "'_', '.' or '-' (QEMU's 9p mount_tag limit)", vm, sh->tag,
			   GP_SHARE_TAG_MAX);
		return -EINVAL;
	}
	/* A comma would end QEMU's path= property and start another option. */
	if (sh->dir[0] != '/' || strchr(sh->dir, ',') || strchr(sh->dir, '\n')) {
		gp_why_set(why, "VM %s: share %s: '%s' must be an absolute directory path without "
			   "',' or newlines", vm, sh->tag, sh->dir);
		return -EINVAL;
	}
	if (stat(sh->dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		gp_why_set(why, "VM %s: share %s: %s is not an existing directory; create it or "
			   "fix the path", vm, sh->tag, sh->dir);
		return -ENOENT;
	}
	return 0;
}

static int check_shares(const struct gp_vm_config *c, struct gp_why *why)
{
	if (c->nshares > GP_VM_MAX_SHARES) {
		gp_why_set(why, "VM %s: at most %d --share folders", c->name, GP_VM_MAX_SHARES);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->nshares; i++) {
		int r = gp_deploy_check_share(c->name, &c->shares[i], why);

		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->shares[i].tag, c->shares[j].tag) == 0) {
				gp_why_set(why, "VM %s: share tag '%s' is given twice; each folder "
					   "needs its own tag", c->name, c->shares[i].tag);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int gp_deploy_check_config(const struct gp_vm_config *c, struct gp_why *why)
{
	char sz[32];

	if (!gp_vm_name_valid(c->name)) {
		gp_why_set(why, "'%s' is not a valid VM name; use 1 to 63 letters, digits, '_', "
			   "'.' or '-', not starting with '.' or '-'", c->name);
		return -EINVAL;
	}
	if (c->memory < MIN_MEMORY || c->memory > (1ull << 46)) {
		gp_why_set(why, "VM %s: memory %s is out of range; give between 64M and 64T, "
			   "e.g. --memory 4G", c->name, gp_format_size(c->memory, sz, sizeof(sz)));
		return -EINVAL;
	}
	if (c->cpus < 1 || c->cpus > MAX_CPUS) {
		gp_why_set(why, "VM %s: %d CPUs is out of range; give 1 to %d", c->name, c->cpus,
			   MAX_CPUS);
		return -EINVAL;
	}
	if (!c->kernel[0] && !c->disk[0]) {
		gp_why_set(why, "VM %s has nothing to boot; give --disk FILE or --kernel FILE "
			   "(with --initrd, --append)", c->name);
		return -EINVAL;
	}
	if (c->kernel[0] && !file_readable(c->kernel, false)) {
		gp_why_set(why, "VM %s: kernel %s does not exist or cannot be read; give the path "
			   "of a bzImage/vmlinuz", c->name, c->kernel);
		return -ENOENT;
	}
	if (c->initrd[0] && !c->kernel[0]) {
		gp_why_set(why, "VM %s: --initrd needs --kernel", c->name);
		return -EINVAL;
	}
	if (c->initrd[0] && !file_readable(c->initrd, false)) {
		gp_why_set(why, "VM %s: initrd %s does not exist or cannot be read", c->name,
			   c->initrd);
		return -ENOENT;
	}
	if (c->disk[0] && !file_readable(c->disk, false)) {
		gp_why_set(why, "VM %s: disk image %s does not exist or cannot be read; create it "
			   "(e.g. qemu-img create -f qcow2 %s 20G) or fix the path", c->name,
			   c->disk, c->disk);
		return -ENOENT;
	}
	if (c->disk[0] && strcmp(c->disk_format, "raw") != 0 && strcmp(c->disk_format, "qcow2") != 0) {
		gp_why_set(why, "VM %s: the format of its disk %s is not recorded (a VM made by an "
			   "older gpupass: the format was guessed from the disk's contents at every "
			   "start, which the guest controls); record it once: gpupass vm set %s "
			   "--disk-format raw|qcow2", c->name, c->disk, c->name);
		return -EINVAL;
	}
	if (strcmp(c->accel, "auto") && strcmp(c->accel, "kvm") && strcmp(c->accel, "tcg")) {
		gp_why_set(why, "VM %s: accelerator '%s' is not auto, kvm or tcg", c->name, c->accel);
		return -EINVAL;
	}
	if (c->pv_weight < 1 || c->pv_weight > 1000) {
		gp_why_set(why, "VM %s: --gpu-weight %d is out of range; give 1 to 1000", c->name,
			   c->pv_weight);
		return -EINVAL;
	}
	if (c->passthrough == GP_PT_PV && c->gpu_count > 0) {
		gp_why_set(why, "VM %s: --gpu-count is for dda; a pv VM shares one GPU "
			   "(choose it with --gpu-name)", c->name);
		return -EINVAL;
	}
	if (c->passthrough == GP_PT_DDA && c->gpu_count < 1) {
		gp_why_set(why, "VM %s: --gpu-count must be at least 1 with dda", c->name);
		return -EINVAL;
	}
	if (c->passthrough == GP_PT_NONE && (c->gpu_count > 0 || c->gpu_name[0])) {
		gp_why_set(why, "VM %s: --gpu-name/--gpu-count need --gpu-passthrough dda or pv",
			   c->name);
		return -EINVAL;
	}
	if (c->gpu_count > 16) {
		gp_why_set(why, "VM %s: at most 16 GPUs per VM", c->name);
		return -EINVAL;
	}
	/* ivshmem-plain maps the region as its BAR2, and a PCI BAR is a power
	 * of two (PCI Local Bus 3.0 §6.2.5.1). */
	if (c->passthrough == GP_PT_PV && c->pv_shm &&
	    (c->pv_shm & (c->pv_shm - 1) || c->pv_shm < GP_VM_PV_SHM_MIN ||
	     c->pv_shm > GP_VM_PV_SHM_MAX)) {
		gp_why_set(why, "VM %s: --gpu-shm %s is not a power of two between 1M and 16G "
			   "(or 0 for none); e.g. --gpu-shm 64M", c->name,
			   gp_format_size(c->pv_shm, sz, sizeof(sz)));
		return -EINVAL;
	}
	return check_shares(c, why);
}

static bool gpu_matches(const struct gp_survey_gpu *g, const char *name)
{
	char disp[256];

	if (!name || !*name)
		return true;
	gp_pci_dev_display_name(g->dev, disp, sizeof(disp));
	return gp_str_icontains(disp, name) || strcasecmp(g->dev->address, name) == 0 ||
	       (g->dev->location_path && strcasecmp(g->dev->location_path, name) == 0);
}

/* Mounts back GPUs that @vm's creation dismounted and that nobody holds. */
static void give_back_auto(struct gp_ctx *ctx, struct gp_state *st, const char *vm,
			   const struct gp_strv *gpus, const struct gp_deploy_opts *o)
{
	struct gp_bind_opts bo = { .kops = o->kops, .lock_wait = true };

	for (size_t i = 0; i < gpus->n; i++) {
		struct gp_state_gpu rec;
		struct gp_why w;
		char owner[GP_NAME_LEN];

		if (gp_state_gpu_get(st, gpus->v[i], &rec) < 0 || strcmp(rec.auto_for_vm, vm) != 0)
			continue;
		if (gp_state_gpu_owner(st, rec.address, owner, sizeof(owner)) == 0)
			continue;
		if (gp_bind_mount_addr(ctx, st, rec.address, &bo, NULL, &w) < 0)
			gp_warn(&ctx->log, "%s: %s", rec.address, w.msg);
	}
}

/* Picks and takes cfg->gpu_count GPUs for @cfg->name (which must exist in
 * the database). On failure nothing stays changed. */
static int pick_and_assign(struct gp_ctx *ctx, struct gp_state *st, const struct gp_vm_config *cfg,
			   const struct gp_deploy_opts *o, struct gp_strv *taken, struct gp_why *why)
{
	struct gp_survey *survey = NULL;
	struct gp_strv ready = { 0 }, dismounted = { 0 }, assigned = { 0 };
	char notready[768] = "";
	size_t nmatch = 0, off = 0;
	bool warned = false; /* a GPU held back only by a --force warning */
	int r;

	r = gp_survey_run(ctx, NULL, &survey);
	if (r < 0) {
		gp_why_set(why, "VM %s: cannot survey the host's GPUs: %s", cfg->name, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < gp_survey_gpu_count(survey); i++) {
		const struct gp_survey_gpu *g = gp_survey_gpu(survey, i);
		char owner[GP_NAME_LEN];
		struct gp_why w = { "" };

		if (!gpu_matches(g, cfg->gpu_name))
			continue;
		nmatch++;
		if (gp_state_gpu_owner(st, g->dev->address, owner, sizeof(owner)) == 0) {
			if (strcmp(owner, cfg->name) == 0)
				continue; /* already ours (vm set): not counted twice */
			snprintf(w.msg, sizeof(w.msg), "%s is held by VM %s", g->dev->address, owner);
		} else {
			int c = gp_bind_check(g, o->force, &w);

			if (c == 0) {
				r = gp_strv_push(&ready, g->dev->address);
				if (r < 0)
					goto out;
				continue;
			}
			warned |= c == -EACCES;
		}
		if (off < sizeof(notready))
			off += (size_t)snprintf(notready + off, sizeof(notready) - off, "; %s", w.msg);
	}
	if (ready.n < (size_t)cfg->gpu_count) {
		gp_why_set(why, "VM %s: asked for %d GPU%s%s%s%s by DDA, but %zu match and %zu %s "
			   "ready%s%s", cfg->name, cfg->gpu_count, cfg->gpu_count > 1 ? "s" : "",
			   cfg->gpu_name[0] ? " matching '" : "", cfg->gpu_name,
			   cfg->gpu_name[0] ? "'" : "", nmatch, ready.n, ready.n == 1 ? "is" : "are",
			   notready[0] ? notready : "; run gpupass survey to see the GPUs",
			   warned ? " (warnings can be accepted with --force)" : "");
		r = -ENOSPC;
		goto out;
	}
	for (size_t i = 0; i < (size_t)cfg->gpu_count; i++) {
		const struct gp_survey_gpu *g;
		struct gp_bind_opts bo = { .force = o->force, .kops = o->kops,
					   .for_vm = cfg->name };
		bool did = false;

		r = gp_survey_find(survey, ready.v[i], &g, NULL);
		if (r == 0)
			r = gp_bind_dismount_gpu(ctx, st, survey, g, &bo, &did, why);
		if (r < 0)
			goto err_undo;
		if (did)
			(void)gp_strv_push(&dismounted, ready.v[i]);
		r = gp_state_assign(st, ready.v[i], cfg->name);
		if (r < 0) {
			gp_why_set(why, "VM %s: cannot assign %s: %s", cfg->name, ready.v[i],
				   r == -EBUSY ? "another VM took it just now; try again" :
				   strerror(-r));
			goto err_undo;
		}
		(void)gp_strv_push(&assigned, ready.v[i]);
	}
	for (size_t i = 0; taken && i < assigned.n; i++)
		(void)gp_strv_push(taken, assigned.v[i]);
	r = 0;
	goto out;

err_undo:
	for (size_t i = 0; i < assigned.n; i++)
		(void)gp_state_unassign(st, assigned.v[i]);
	give_back_auto(ctx, st, cfg->name, &dismounted, o);
out:
	gp_strv_clear(&ready);
	gp_strv_clear(&dismounted);
	gp_strv_clear(&assigned);
	gp_survey_free(survey);
	return r;
}

/* An OpenCL device of the host that is not one of its GPUs (a CPU such as
 * PoCL's, an FPGA board) and whose name contains @name: PV can use it, by
 * the operator's explicit choice only. */
static const struct gp_cl_device *pv_only_match(const struct gp_clprobe *probe,
						const struct gp_survey *s, const char *name)
{
	if (!name[0])
		return NULL;
	for (size_t i = 0; i < gp_clprobe_device_count(probe); i++) {
		const struct gp_cl_device *d = gp_clprobe_device(probe, i);

		if (!gp_clprobe_is_survey_gpu(d, s) && gp_str_icontains(d->name, name))
			return d;
	}
	return NULL;
}

/* Is a GPU matching cfg->gpu_name PV-ready (the survey with the OpenCL
 * probe)? -ENOSPC with the survey's reasons when none is. Else, with
 * --force, an OpenCL device that is not a GPU matching --gpu-name (said
 * with a warning through o->progress). */
static int pv_check_ready(struct gp_ctx *ctx, const struct gp_vm_config *cfg,
			  const struct gp_deploy_opts *o, struct gp_why *why)
{
	const struct gp_cl_device *alt;
	struct gp_clprobe *probe = NULL;
	struct gp_survey *survey = NULL;
	char notready[768] = "";
	size_t nmatch = 0, off = 0;
	int r = gp_clprobe_new(ctx, &probe);

	if (r == 0)
		r = gp_clprobe_survey(ctx, probe, &survey);
	if (r < 0) {
		gp_why_set(why, "VM %s: cannot survey the host's GPUs: %s", cfg->name, strerror(-r));
		goto out;
	}
	r = -ENOSPC;
	for (size_t i = 0; i < gp_survey_gpu_count(survey); i++) {
		const struct gp_survey_gpu *g = gp_survey_gpu(survey, i);
		const struct gp_method_result *m = &g->methods[GP_METHOD_PV];

		if (!gpu_matches(g, cfg->gpu_name))
			continue;
		nmatch++;
		if (m->ready) {
			r = 0;
			goto out;
		}
		if (m->n_problems && off < sizeof(notready))
			off += (size_t)snprintf(notready + off, sizeof(notready) - off, "; %s: %s: %s (%s)",
						g->dev->address,
						gp_problem_code_name(m->problems[0].code),
						m->problems[0].message,
						m->problems[0].fix);
	}
	alt = pv_only_match(probe, survey, cfg->gpu_name);
	if (alt && o->force) {
		char msg[512];

		snprintf(msg, sizeof(msg), "warning: VM %s: PV on '%s' (%s, %s), which is %s; "
			 "taken because of --force", cfg->name, alt->name,
			 gp_clprobe_platform(probe, alt->platform)->name,
			 gp_cl_device_type_name(alt->type), gp_cl_device_pv_only_note(alt));
		if (o->progress)
			o->progress(o->progress_data, msg);
		r = 0;
		goto out;
	}
	if (alt) {
		gp_why_set(why, "VM %s: no PV-ready GPU matches '%s' (%zu GPU%s match); the OpenCL "
			   "device '%s' (%s, %s) matches but is %s: add --force to give the VM PV on "
			   "it", cfg->name, cfg->gpu_name, nmatch, nmatch == 1 ? "" : "s", alt->name,
			   gp_clprobe_platform(probe, alt->platform)->name,
			   gp_cl_device_type_name(alt->type), gp_cl_device_pv_only_note(alt));
		goto out;
	}
	gp_why_set(why, "VM %s: no PV-ready GPU%s%s%s: %zu match and none is ready%s", cfg->name,
		   cfg->gpu_name[0] ? " matches '" : "", cfg->gpu_name,
		   cfg->gpu_name[0] ? "'" : "", nmatch,
		   notready[0] ? notready : "; run gpupass survey to see the GPUs (devices that "
		   "are not GPUs are listed as 'PV only': --gpu-name NAME --force takes one)");
out:
	gp_survey_free(survey);
	gp_clprobe_free(probe);
	return r;
}

static int pvd_conf_path(struct gp_ctx *ctx, const struct gp_deploy_opts *o, char *buf,
			 size_t len)
{
	if (o->pvd_conf && *o->pvd_conf) {
		int n = snprintf(buf, len, "%s", o->pvd_conf);

		return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
	}
	return gp_pvconf_default_path(ctx, buf, len);
}

/* Makes sure gpupass-pvd serves this VM's socket: reloads or starts it.
 * Never fails the caller: the outcome goes to o->pvd_result. */
static void pv_serve(struct gp_ctx *ctx, const char *name, const char *conf, const char *sock,
		     const struct gp_deploy_opts *o)
{
	struct gp_pvd_result *res = o->pvd_result, local;
	struct gp_pvd_ensure e = {
		.binary = o->pvd,
		.config = conf,
		.wait_socket = sock,
		.timeout_ms = o->pvd_timeout_ms,
	};
	pid_t pid;

	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	res->tried = true;
	if (o->progress && gp_pvd_pid(ctx, &pid) < 0) {
		char msg[GP_VM_PATH_LEN + 128];

		snprintf(msg, sizeof(msg), "VM %s: gpupass-pvd is not running; starting it "
			 "(log: %s/" GP_PVD_LOGFILE ")...", name, ctx->state_dir);
		o->progress(o->progress_data, msg);
	}
	res->err = gp_pvd_ensure(ctx, &e, &res->why);
	res->pid = e.pid;
	res->started = e.started;
	snprintf(res->log, sizeof(res->log), "%s", e.log);
	/* A caller that asked for the result reports it itself. */
	if (res->err < 0 && !o->pvd_result)
		gp_warn(&ctx->log, "VM %s: %s", name, res->why.msg);
}

/* The ivshmem file of a pv VM: made (or resized) when it has a region,
 * removed when not. @path gets it ("" when none). */
static int pv_shm_apply(struct gp_ctx *ctx, const struct gp_vm_config *cfg, char *path,
			size_t len, struct gp_why *why)
{
	int r = gp_pv_shm_path(ctx, cfg->name, path, len);

	if (r < 0) {
		gp_why_set(why, "VM %s: the PV region path under %s is too long", cfg->name,
			   ctx->state_dir);
		return r;
	}
	if (!cfg->pv_shm) {
		unlink(path);
		path[0] = '\0';
		return 0;
	}
	r = gp_pv_shm_create(path, cfg->pv_shm);
	if (r < 0)
		gp_why_set(why, "VM %s: cannot make its PV shared-memory file %s: %s", cfg->name,
			   path, strerror(-r));
	return r;
}

/* Writes the [guest NAME] section (with the ivshmem file, made here), then
 * tells a running gpupass-pvd, or with @start starts one. */
static int pv_apply(struct gp_ctx *ctx, const struct gp_vm_config *cfg,
		    const struct gp_deploy_opts *o, bool start, struct gp_why *why)
{
	char conf[GP_VM_PATH_LEN], sock[GP_VM_PATH_LEN], dir[GP_VM_PATH_LEN], shm[GP_VM_PATH_LEN];
	int r = pvd_conf_path(ctx, o, conf, sizeof(conf));

	if (r == 0)
		r = gp_pv_socket_path(ctx, cfg->name, sock, sizeof(sock));
	if (r < 0) {
		gp_why_set(why, "VM %s: the PV socket path under %s is too long for a unix "
			   "socket; use a shorter --state-dir", cfg->name, ctx->state_dir);
		return r;
	}
	if (mkdir(ctx->state_dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		gp_why_set(why, "VM %s: cannot create %s: %s", cfg->name, ctx->state_dir,
			   strerror(-r));
		return r;
	}
	snprintf(dir, sizeof(dir), "%s/pv", ctx->state_dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		gp_why_set(why, "VM %s: cannot create %s: %s", cfg->name, dir, strerror(-r));
		return r;
	}
	r = pv_shm_apply(ctx, cfg, shm, sizeof(shm), why);
	if (r < 0)
		return r;
	{
		char quser[64];
		struct gp_why w;

		/* The VM's QEMU reconnects to the socket as its own user. */
		if (gp_deploy_qemu_user(cfg->name, quser, sizeof(quser), &w) < 0)
			quser[0] = '\0';
		r = gp_pvconf_put_guest_owned(conf, cfg->name, sock, quser, cfg->pv_memory_max,
					      cfg->pv_weight, shm);
	}
	if (r < 0) {
		gp_why_set(why, "VM %s: cannot write its section into gpupass-pvd's config %s: %s",
			   cfg->name, conf, strerror(-r));
		return r;
	}
	if (start) {
		pv_serve(ctx, cfg->name, conf, sock, o);
		return 0;
	}
	r = gp_pvd_reload(ctx);
	if (r < 0)
		gp_warn(&ctx->log, "VM %s: cannot signal gpupass-pvd to reload: %s", cfg->name,
			strerror(-r));
	return 0;
}

static void pv_remove(struct gp_ctx *ctx, const char *name, const struct gp_deploy_opts *o)
{
	char conf[GP_VM_PATH_LEN];
	int r;

	if (gp_pv_shm_path(ctx, name, conf, sizeof(conf)) == 0)
		unlink(conf);
	r = pvd_conf_path(ctx, o, conf, sizeof(conf));

	if (r == 0)
		r = gp_pvconf_remove_guest(conf, name);
	if (r < 0) {
		gp_warn(&ctx->log, "VM %s: cannot remove its section from %s: %s", name, conf,
			strerror(-r));
		return;
	}
	if (gp_pvd_reload(ctx) < 0)
		gp_warn(&ctx->log, "VM %s: cannot signal gpupass-pvd to reload", name);
}

int gp_deploy_vm_create(struct gp_ctx *ctx, struct gp_state *st, const struct gp_vm_config *cfg,
			const struct gp_deploy_opts *opts, struct gp_strv *gpus, struct gp_why *why)
{
	const struct gp_deploy_opts *o = opts ? opts : &no_opts;
	struct gp_vm_config existing;
	int r = gp_deploy_check_config(cfg, why);

	if (r < 0)
		return r;
	if (cfg->passthrough == GP_PT_PV) {
		r = pv_check_ready(ctx, cfg, o, why);
		if (r < 0)
			return r;
	}
	if (gp_state_vm_get(st, cfg->name, &existing) == 0) {
		gp_why_set(why, "VM %s already exists; pick another name, or change it with "
			   "gpupass vm set %s", cfg->name, cfg->name);
		return -EEXIST;
	}
	r = gp_state_vm_add(st, cfg);
	if (r < 0) {
		gp_why_set(why, "VM %s: cannot be recorded: %s", cfg->name,
			   r == -EEXIST ? "it was just created by another gpupass" : strerror(-r));
		return r;
	}
	if (cfg->passthrough == GP_PT_DDA) {
		r = pick_and_assign(ctx, st, cfg, o, gpus, why);
		if (r < 0) {
			(void)gp_state_vm_delete(st, cfg->name);
			return r;
		}
	} else if (cfg->passthrough == GP_PT_PV) {
		r = pv_apply(ctx, cfg, o, true, why);
		if (r < 0) {
			char shm[GP_VM_PATH_LEN];

			if (gp_pv_shm_path(ctx, cfg->name, shm, sizeof(shm)) == 0)
				unlink(shm);
			(void)gp_state_vm_delete(st, cfg->name);
			return r;
		}
	}
	return 0;
}

static bool vm_running(struct gp_ctx *ctx, const char *name)
{
	struct gp_vm_paths p;
	enum gp_vm_run_state s;
	pid_t pid;

	if (gp_vm_paths_get(ctx, name, &p) < 0)
		return false;
	return gp_vm_status(&p, &s, &pid, NULL) == 0 && s != GP_VM_STOPPED;
}

/* libvirt's rule for a VM's VFIO groups: while its QEMU holds them,
 * /dev/vfio/GROUP belongs to the user QEMU runs as (it could reopen them
 * after -runas); before and after, to root alone, so that no other QEMU
 * of that user can take a GPU its VM does not hold. The node is opened
 * O_PATH: opening a VFIO group for real would claim it. */
static int vfio_chown(struct gp_ctx *ctx, int group, uid_t uid, gid_t gid, bool *changed)
{
	char p[64];
	struct stat sb;
	int fd = gp_sysfs_open_fd(ctx->sys, gp_sysfs_path(p, sizeof(p), "/dev/vfio/%d", group),
				  O_PATH | O_NOFOLLOW);
	int r = 0;

	if (changed)
		*changed = false;
	if (fd < 0)
		return fd;
	if (fstat(fd, &sb) < 0)
		r = -errno;
	else if (!S_ISCHR(sb.st_mode) && !S_ISREG(sb.st_mode)) /* regular: fake trees */
		r = -ENOTTY;
	else if ((sb.st_uid != uid || sb.st_gid != gid) &&
		 fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0)
		r = -errno;
	else if (changed)
		*changed = sb.st_uid != uid || sb.st_gid != gid;
	close(fd);
	return r;
}

/* Every VFIO group of VM @name's GPUs to @user (NULL: root). -errno with
 * @why naming the node. */
static int vfio_hand(struct gp_ctx *ctx, struct gp_state *st, const char *name, const char *user,
		     struct gp_strv *report, struct gp_why *why)
{
	struct gp_strv gpus = { 0 };
	uid_t uid = 0;
	gid_t gid = 0;
	int r = 0;

	if (user) {
		struct passwd *pw = getpwnam(user);

		if (!pw) {
			gp_why_set(why, "VM %s: the user %s that QEMU runs as does not exist", name,
				   user);
			return -ENOENT;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (gp_state_vm_gpus(st, name, &gpus) < 0)
		return 0;
	for (size_t i = 0; i < gpus.n; i++) {
		struct gp_state_gpu rec;
		bool changed = false;
		int e;

		if (gp_state_gpu_get(st, gpus.v[i], &rec) < 0 || rec.state != GP_GPU_DISMOUNTED ||
		    rec.iommu_group < 0)
			continue;
		e = vfio_chown(ctx, rec.iommu_group, uid, gid, &changed);
		if (e == -ENOENT)
			continue; /* not on vfio-pci now: nothing to hand */
		if (e < 0 && r == 0) {
			gp_why_set(why, "VM %s: cannot give /dev/vfio/%d (GPU %s) to %s: %s", name,
				   rec.iommu_group, rec.address, user ? user : "root", strerror(-e));
			r = e;
		}
		if (changed && report)
			(void)gp_strv_push_printf(report, "VM %s: /dev/vfio/%d (GPU %s) given back "
						  "to root (its QEMU is gone)", name,
						  rec.iommu_group, rec.address);
	}
	gp_strv_clear(&gpus);
	return r;
}

/* The device locks of every GPU a VM holds. vm start keeps them until
 * QEMU answers (it has opened its VFIO devices by then), and unassign and
 * delete take them around their "is it running?" check, so that no mount,
 * unassign or delete slips in between a check and what it protects. */
struct vm_locks {
	size_t n;
	struct gp_bind_lock *l[16];
};

static void unlock_vm_gpus(struct vm_locks *vl)
{
	for (size_t i = 0; i < vl->n; i++)
		gp_bind_lock_release(vl->l[i]);
	vl->n = 0;
}

static int lock_vm_gpus(struct gp_ctx *ctx, struct gp_state *st, const char *vm,
			struct vm_locks *vl, struct gp_why *why)
{
	struct gp_strv gpus = { 0 };
	int r = gp_state_vm_gpus(st, vm, &gpus);

	vl->n = 0;
	if (r == 0 && gpus.n > GP_ARRAY_SIZE(vl->l))
		r = -E2BIG;
	/* Sorted (gp_state_vm_gpus), so two callers lock in one order. */
	for (size_t i = 0; r == 0 && i < gpus.n; i++) {
		struct gp_state_gpu rec;

		/* A claimed GPU that is mounted has no record: nothing to lock,
		 * and vm start refuses it further on. */
		if (gp_state_gpu_get(st, gpus.v[i], &rec) < 0)
			continue;
		r = gp_bind_lock_gpu(ctx, &rec, true, &vl->l[vl->n]);
		if (r == 0)
			vl->n++;
		else
			gp_why_set(why, "VM %s: cannot lock GPU %s under %s/locks: %s", vm,
				   rec.address, ctx->state_dir, strerror(-r));
	}
	gp_strv_clear(&gpus);
	if (r < 0)
		unlock_vm_gpus(vl);
	return r;
}

static bool shares_equal(const struct gp_vm_config *a, const struct gp_vm_config *b)
{
	if (a->nshares != b->nshares)
		return false;
	for (size_t i = 0; i < a->nshares; i++)
		if (strcmp(a->shares[i].dir, b->shares[i].dir) ||
		    strcmp(a->shares[i].tag, b->shares[i].tag) ||
		    a->shares[i].readonly != b->shares[i].readonly)
			return false;
	return true;
}

/* The VM's own lock, <state_dir>/locks/vm.NAME.lock (flock: gone with a
 * killed process). vm start holds it from its "is it running?" check until
 * QEMU answers; assign, vm set and vm delete hold it around their check and
 * what they change, so none slips in between a check and a start. Taken
 * before any GPU lock: one order, no deadlock. */
static int lock_vm(struct gp_ctx *ctx, const char *name, struct gp_bind_lock **out,
		   struct gp_why *why)
{
	struct gp_strv key = { 0 };
	int r = gp_strv_push_printf(&key, "vm.%s", name);

	if (r == 0)
		r = gp_bind_lock_take(ctx, &key, true, out);
	if (r < 0)
		gp_why_set(why, "VM %s: cannot lock it under %s/locks: %s", name, ctx->state_dir,
			   strerror(-r));
	gp_strv_clear(&key);
	return r;
}

static int get_vm(struct gp_state *st, const char *name, struct gp_vm_config *cfg,
		  struct gp_why *why)
{
	int r = gp_state_vm_get(st, name, cfg);

	if (r == -ENOENT)
		gp_why_set(why, "VM %s does not exist; gpupass vm list shows the VMs, "
			   "gpupass vm create makes one", name);
	else if (r < 0)
		gp_why_set(why, "VM %s: cannot read the state database: %s", name, strerror(-r));
	return r;
}

static int vm_set_locked(struct gp_ctx *ctx, struct gp_state *st, const struct gp_vm_config *cfg,
			 const struct gp_deploy_opts *opts, struct gp_why *why)
{
	const struct gp_deploy_opts *o = opts ? opts : &no_opts;
	struct gp_vm_config old;
	struct gp_strv held = { 0 };
	bool gpu_change;
	int r = get_vm(st, cfg->name, &old, why);

	if (r < 0)
		return r;
	r = gp_deploy_check_config(cfg, why);
	if (r < 0)
		return r;
	gpu_change = old.passthrough != cfg->passthrough || old.gpu_count != cfg->gpu_count ||
		     strcmp(old.gpu_name, cfg->gpu_name) != 0 ||
		     (cfg->passthrough == GP_PT_PV && old.pv_shm != cfg->pv_shm);
	if (!shares_equal(&old, cfg) && vm_running(ctx, cfg->name)) {
		gp_why_set(why, "VM %s is running; its shared folders can only change while it is "
			   "stopped (gpupass vm stop %s)", cfg->name, cfg->name);
		return -EBUSY;
	}
	if (cfg->passthrough == GP_PT_PV && (gpu_change || old.passthrough != GP_PT_PV)) {
		r = pv_check_ready(ctx, cfg, o, why);
		if (r < 0)
			return r;
	}
	if (!gpu_change) {
		/* Quotas and weight apply to the server's next allocations. */
		r = gp_state_vm_update(st, cfg);
		if (r == 0 && cfg->passthrough == GP_PT_PV) {
			r = pv_apply(ctx, cfg, o, false, why);
			if (r < 0)
				(void)gp_state_vm_update(st, &old);
		}
		return r;
	}
	if (vm_running(ctx, cfg->name)) {
		gp_why_set(why, "VM %s is running; its GPUs can only change while it is stopped "
			   "(gpupass vm stop %s)", cfg->name, cfg->name);
		return -EBUSY;
	}
	r = gp_state_vm_gpus(st, cfg->name, &held);
	if (r < 0)
		return r;
	for (size_t i = 0; i < held.n; i++)
		(void)gp_state_unassign(st, held.v[i]);
	r = gp_state_vm_update(st, cfg);
	if (r == 0 && cfg->passthrough == GP_PT_DDA)
		r = pick_and_assign(ctx, st, cfg, o, NULL, why);
	if (r < 0) {
		/* Back to the old settings and GPUs. */
		(void)gp_state_vm_update(st, &old);
		for (size_t i = 0; i < held.n; i++)
			(void)gp_state_assign(st, held.v[i], cfg->name);
	} else {
		give_back_auto(ctx, st, cfg->name, &held, o);
		if (cfg->passthrough == GP_PT_PV)
			r = pv_apply(ctx, cfg, o, false, why);
		else if (old.passthrough == GP_PT_PV)
			pv_remove(ctx, cfg->name, o);
		if (r < 0)
			(void)gp_state_vm_update(st, &old);
	}
	gp_strv_clear(&held);
	return r;
}

static void remove_runtime(struct gp_ctx *ctx, const char *name)
{
	struct gp_vm_paths p;

	if (gp_vm_paths_get(ctx, name, &p) < 0)
		return;
	unlink(p.pid);
	unlink(p.qmp);
	unlink(p.qga);
	unlink(p.log);
	rmdir(p.dir);
}

static int vm_delete_locked(struct gp_ctx *ctx, struct gp_state *st, const char *name,
			    const struct gp_deploy_opts *opts, struct gp_why *why)
{
	const struct gp_deploy_opts *o = opts ? opts : &no_opts;
	struct gp_vm_config cfg;
	struct gp_strv held = { 0 };
	struct vm_locks vl;
	int r = get_vm(st, name, &cfg, why);

	if (r < 0)
		return r;
	r = lock_vm_gpus(ctx, st, name, &vl, why);
	if (r < 0)
		return r;
	if (vm_running(ctx, name)) {
		if (!o->force) {
			unlock_vm_gpus(&vl);
			gp_why_set(why, "VM %s is running; stop it first (gpupass vm stop %s) or "
				   "pass --force to turn it off and delete it", name, name);
			return -EBUSY;
		}
		r = gp_deploy_vm_stop(ctx, st, name, 0, true, NULL, why);
		if (r < 0) {
			unlock_vm_gpus(&vl);
			return r;
		}
	}
	r = gp_state_vm_gpus(st, name, &held);
	if (r == 0)
		r = gp_state_vm_delete(st, name);
	/* Released before the give-back below, which takes them itself. */
	unlock_vm_gpus(&vl);
	if (r < 0) {
		gp_why_set(why, "VM %s: cannot be deleted from the state database: %s", name,
			   strerror(-r));
		gp_strv_clear(&held);
		return r;
	}
	/* GPUs stay on vfio-pci or go back whole: never half-bound. */
	give_back_auto(ctx, st, name, &held, o);
	if (cfg.passthrough == GP_PT_PV)
		pv_remove(ctx, name, o);
	remove_runtime(ctx, name);
	gp_strv_clear(&held);
	return 0;
}

static int assign_locked(struct gp_ctx *ctx, struct gp_state *st, const char *query,
			 const char *vm, const struct gp_deploy_opts *opts, char *addr_out,
			 struct gp_why *why)
{
	const struct gp_deploy_opts *o = opts ? opts : &no_opts;
	struct gp_bind_opts bo = { .force = o->force, .kops = o->kops };
	struct gp_vm_config cfg;
	char addr[GP_ADDR_LEN] = "", owner[GP_NAME_LEN];
	bool did = false;
	int r = get_vm(st, vm, &cfg, why);

	if (r < 0)
		return r;
	if (cfg.passthrough == GP_PT_PV) {
		gp_why_set(why, "VM %s uses PV; a GPU can only be assigned to a dda or none VM", vm);
		return -EINVAL;
	}
	if (vm_running(ctx, vm)) {
		gp_why_set(why, "VM %s is running; assign GPUs while it is stopped "
			   "(gpupass vm stop %s)", vm, vm);
		return -EBUSY;
	}
	/* Refuse a GPU held by another VM before dismounting anything. */
	if (gp_state_gpu_owner(st, query, owner, sizeof(owner)) == 0 && strcmp(owner, vm) != 0) {
		gp_why_set(why, "GPU %s is held by VM %s; run gpupass unassign %s first", query,
			   owner, query);
		return -EBUSY;
	}
	{
		struct gp_survey *survey;
		const struct gp_survey_gpu *g;
		struct gp_strv cands = { 0 };

		r = gp_survey_run(ctx, NULL, &survey);
		if (r < 0) {
			gp_why_set(why, "cannot survey the host: %s", strerror(-r));
			return r;
		}
		r = gp_survey_find(survey, query, &g, &cands);
		if (r == 0) {
			snprintf(addr, sizeof(addr), "%s", g->dev->address);
			if (gp_state_gpu_owner(st, addr, owner, sizeof(owner)) == 0 &&
			    strcmp(owner, vm) != 0) {
				gp_why_set(why, "GPU %s is held by VM %s; run gpupass unassign %s "
					   "first", addr, owner, addr);
				r = -EBUSY;
			} else {
				r = gp_bind_dismount_gpu(ctx, st, survey, g, &bo, &did, why);
			}
		} else if (r == -ENOTUNIQ) {
			gp_why_set(why, "'%s' matches %zu GPUs; name one by its address (gpupass "
				   "survey lists them)", query, cands.n);
		} else {
			gp_why_set(why, "no GPU matches '%s'; run gpupass survey to list the GPUs",
				   query);
			r = -ENOENT;
		}
		gp_strv_clear(&cands);
		gp_survey_free(survey);
		if (r < 0)
			return r;
	}
	r = gp_state_assign(st, addr, vm);
	if (r < 0) {
		if (r == -EBUSY && gp_state_gpu_owner(st, addr, owner, sizeof(owner)) == 0)
			gp_why_set(why, "GPU %s is held by VM %s; run gpupass unassign %s first",
				   addr, owner, addr);
		else
			gp_why_set(why, "cannot assign %s to VM %s: %s", addr, vm, strerror(-r));
		if (did) {
			struct gp_why w;

			(void)gp_bind_mount_addr(ctx, st, addr, &bo, NULL, &w);
		}
		return r;
	}
	/* A GPU by hand makes a none VM a dda VM of as many GPUs as it holds
	 * (vm start then takes exactly those); unassign undoes it. */
	if (cfg.passthrough == GP_PT_NONE || cfg.hand_gpus > 0) {
		struct gp_strv held = { 0 };

		cfg.passthrough = GP_PT_DDA;
		if (gp_state_vm_gpus(st, vm, &held) == 0)
			cfg.hand_gpus = (int)held.n;
		else
			cfg.hand_gpus++;
		gp_strv_clear(&held);
		cfg.gpu_count = cfg.hand_gpus;
		(void)gp_state_vm_update(st, &cfg);
	}
	if (addr_out)
		snprintf(addr_out, GP_ADDR_LEN, "%s", addr);
	return 0;
}

int gp_deploy_unassign(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		       const struct gp_deploy_opts *opts, char *addr_out, char *vm_out,
		       struct gp_why *why)
{
	struct gp_state_gpu rec;
	struct gp_bind_lock *lock = NULL;
	char vm[GP_NAME_LEN];
	int r;

	(void)opts;
	r = gp_state_gpu_get(st, query, &rec);
	if (r < 0) {
		struct gp_survey *survey;
		const struct gp_survey_gpu *g;

		/* Maybe a name: resolve it, then look again. */
		if (gp_survey_run(ctx, NULL, &survey) == 0) {
			if (gp_survey_find(survey, query, &g, NULL) == 0)
				r = gp_state_gpu_get(st, g->dev->address, &rec);
			gp_survey_free(survey);
		}
	}
	if (r < 0 || gp_state_gpu_owner(st, rec.address, vm, sizeof(vm)) < 0) {
		gp_why_set(why, "GPU %s is not assigned to any VM; gpupass vm list shows which "
			   "VM holds which GPU", query);
		return -ENOENT;
	}
	r = gp_bind_lock_gpu(ctx, &rec, true, &lock);
	if (r < 0) {
		gp_why_set(why, "cannot unassign %s from VM %s: cannot lock it under %s/locks: %s",
			   rec.address, vm, ctx->state_dir, strerror(-r));
		return r;
	}
	if (vm_running(ctx, vm)) {
		gp_bind_lock_release(lock);
		gp_why_set(why, "VM %s is running with GPU %s; stop it first (gpupass vm stop %s)",
			   vm, rec.address, vm);
		return -EBUSY;
	}
	r = gp_state_unassign(st, rec.address);
	/* A VM that got its GPUs by hand goes back to what it was: none after
	 * its last one. */
	if (r == 0) {
		struct gp_vm_config cfg;

		if (gp_state_vm_get(st, vm, &cfg) == 0 && cfg.hand_gpus > 0) {
			struct gp_strv held = { 0 };

			cfg.hand_gpus = gp_state_vm_gpus(st, vm, &held) == 0 ? (int)held.n :
										cfg.hand_gpus - 1;
			gp_strv_clear(&held);
			cfg.gpu_count = cfg.hand_gpus;
			if (cfg.hand_gpus == 0)
				cfg.passthrough = GP_PT_NONE;
			(void)gp_state_vm_update(st, &cfg);
		}
	}
	gp_bind_lock_release(lock);
	if (r < 0) {
		gp_why_set(why, "cannot unassign %s from VM %s: %s", rec.address, vm, strerror(-r));
		return r;
	}
	if (addr_out)
		snprintf(addr_out, GP_ADDR_LEN, "%s", rec.address);
	if (vm_out)
		snprintf(vm_out, GP_NAME_LEN, "%s", vm);
	return 0;
}

/* The cards of a VM, in the order of its sorted GPU list (which fixes the
 * qdev ids gpu<card>f<fn>). */
struct cards {
	size_t n;
	struct gp_vm_card card[16];
	struct gp_vm_hostdev dev[16][GP_STATE_MAX_FN];
	struct gp_state_gpu rec[16];
};

static int load_cards(struct gp_ctx *ctx, struct gp_state *st, const char *name,
		      struct cards *cs, bool check_kernel, struct gp_why *why)
{
	struct gp_strv gpus = { 0 };
	struct gp_pci_scan *scan = NULL;
	int r = gp_state_vm_gpus(st, name, &gpus);

	cs->n = 0;
	if (r < 0)
		return r;
	if (gpus.n > GP_ARRAY_SIZE(cs->card)) {
		r = -E2BIG;
		goto out;
	}
	if (gpus.n && check_kernel) {
		r = gp_pci_scan_new(ctx, &scan);
		if (r < 0) {
			gp_why_set(why, "VM %s: cannot read the PCI devices: %s", name, strerror(-r));
			goto out;
		}
	}
	for (size_t i = 0; i < gpus.n; i++) {
		struct gp_state_gpu *rec = &cs->rec[i];
		char p[64];

		r = gp_state_gpu_get(st, gpus.v[i], rec);
		if (r == -ENOENT && check_kernel) {
			gp_why_set(why, "VM %s: GPU %s is not bound to vfio-pci (it was mounted back "
				   "to the host); run gpupass dismount %s, then start %s again",
				   name, gpus.v[i], gpus.v[i], name);
			r = -EIO;
			goto out;
		}
		if (r < 0)
			goto out;
		if (check_kernel && (rec->state != GP_GPU_DISMOUNTED || !gp_bind_gpu_on_vfio(ctx, rec))) {
			gp_why_set(why, "VM %s: GPU %s is not bound to vfio-pci (it was given back "
				   "to the host); run gpupass dismount %s, then start %s again",
				   name, rec->address, rec->address, name);
			r = -EIO;
			goto out;
		}
		if (check_kernel && !gp_sysfs_exists(ctx->sys, gp_sysfs_path(p, sizeof(p),
						"/dev/vfio/%d", rec->iommu_group))) {
			gp_why_set(why, "VM %s: /dev/vfio/%d for GPU %s is missing; is vfio-pci "
				   "loaded? run gpupass mount %s then gpupass dismount %s", name,
				   rec->iommu_group, rec->address, rec->address, rec->address);
			r = -ENODEV;
			goto out;
		}
		for (size_t f = 0; f < rec->nfn; f++) {
			struct gp_vm_hostdev *d = &cs->dev[i][f];
			const struct gp_pci_dev *pd = scan ? gp_pci_scan_find(scan, rec->fn[f].address)
							   : NULL;

			memset(d, 0, sizeof(*d));
			snprintf(d->address, sizeof(d->address), "%s", rec->fn[f].address);
			d->vendor_id = rec->fn[f].vendor_id;
			d->device_id = rec->fn[f].device_id;
			for (int b = 0; pd && b < 6 && b < pd->nbars; b++) {
				d->bar_size[b] = pd->bars[b].size;
				d->bar_64[b] = pd->bars[b].is_64bit;
				d->bar_mem[b] = pd->bars[b].is_mem;
			}
		}
		cs->card[i].fn = cs->dev[i];
		cs->card[i].nfn = rec->nfn;
		cs->n++;
	}
	r = 0;
out:
	gp_pci_scan_free(scan);
	gp_strv_clear(&gpus);
	return r;
}

static int find_qemu(const char *name, const struct gp_deploy_opts *o, char *buf, size_t len,
		     struct gp_why *why)
{
	if (gp_vm_find_qemu(o->qemu, buf, len) == 0)
		return 0;
	gp_why_set(why, "VM %s: QEMU (%s) was not found; install the qemu-system-x86 package "
		   "or point GPUPASS_QEMU at the binary", name,
		   o->qemu && *o->qemu ? o->qemu : GP_QEMU_DEFAULT);
	return -ENOENT;
}

/* Can @user search every folder above @path (so connect() reaches it)?
 * -EACCES with @why naming the folder and the fix. */
static int reachable_by(const char *vm, const char *user, const char *path, struct gp_why *why)
{
	struct passwd *pw = getpwnam(user);
	char dir[GP_VM_PATH_LEN];
	char *slash;

	if (!pw)
		return 0;
	snprintf(dir, sizeof(dir), "%s", path);
	while ((slash = strrchr(dir, '/')) && slash != dir) {
		struct stat sb;
		mode_t m;

		*slash = '\0';
		if (stat(dir, &sb) < 0)
			continue;
		m = sb.st_uid == pw->pw_uid ? (sb.st_mode & S_IXUSR) :
		    sb.st_gid == pw->pw_gid ? (sb.st_mode & S_IXGRP) : (sb.st_mode & S_IXOTH);
		if (!m) {
			gp_why_set(why, "VM %s: QEMU runs as %s and cannot reach its PV socket %s: the "
				   "folder %s (mode %04o) keeps it out; chmod o+x %s, or use another "
				   "--state-dir", vm, user, path, dir, (unsigned)(sb.st_mode & 07777), dir);
			return -EACCES;
		}
	}
	return 0;
}

int gp_deploy_qemu_user(const char *vm, char *buf, size_t len, struct gp_why *why)
{
	const char *u = getenv("GPUPASS_QEMU_USER");

	buf[0] = '\0';
	if (!u)
		u = GP_QEMU_USER;
	/* Only root can hand QEMU to another user; "root" asks for none. */
	if (geteuid() != 0 || !*u || strcmp(u, "root") == 0)
		return 0;
	if (!getpwnam(u)) {
		gp_why_set(why, "VM %s: the user %s that QEMU runs as does not exist; create it "
			   "(systemd-sysusers gpupass.conf, or useradd --system --no-create-home "
			   "--shell /usr/sbin/nologin %s), or set GPUPASS_QEMU_USER=root to run QEMU "
			   "as root (not recommended)", vm, u, u);
		return -ENOENT;
	}
	if (strlen(u) >= len)
		return -ENAMETOOLONG;
	snprintf(buf, len, "%s", u);
	return 0;
}

static int build(struct gp_ctx *ctx, struct gp_state *st, const char *name,
		 const struct gp_deploy_opts *o, struct gp_strv *argv, struct gp_vm_paths *paths,
		 struct gp_why *why)
{
	char quser[64];
	struct gp_vm_config cfg;
	struct cards *cs;
	char qemu[4096];
	int r = get_vm(st, name, &cfg, why);

	if (r < 0)
		return r;
	r = gp_deploy_check_config(&cfg, why);
	if (r < 0)
		return r;
	r = find_qemu(name, o, qemu, sizeof(qemu), why);
	if (r < 0)
		return r;
	r = gp_vm_paths_get(ctx, name, paths);
	if (r < 0) {
		gp_why_set(why, "VM %s: runtime paths under %s are too long for unix sockets; "
			   "use a shorter --state-dir", name, ctx->state_dir);
		return r;
	}
	r = gp_deploy_qemu_user(name, quser, sizeof(quser), why);
	if (r < 0)
		return r;
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	r = load_cards(ctx, st, name, cs, true, why);
	if (r == 0) {
		struct gp_vm_launch l = {
			.run_as = quser[0] ? quser : NULL,
			.cfg = &cfg,
			.qemu = qemu,
			.accel = gp_vm_accel_resolve(ctx, cfg.accel),
			.cards = cs->card,
			.ncards = cs->n,
			.paths = paths,
		};
		char mig[64], prop[80], pvsock[GP_VM_PATH_LEN], pvshm[GP_VM_PATH_LEN];

		if (cfg.passthrough == GP_PT_PV) {
			r = gp_pv_socket_path(ctx, name, pvsock, sizeof(pvsock));
			if (r == 0 && cfg.pv_shm) {
				r = gp_pv_shm_path(ctx, name, pvshm, sizeof(pvshm));
				l.pv_shm_path = pvshm;
				l.pv_shm_size = cfg.pv_shm;
			}
			if (r < 0) {
				gp_why_set(why, "VM %s: the PV socket path under %s is too long for "
					   "a unix socket; use a shorter --state-dir", name,
					   ctx->state_dir);
				free(cs);
				return r;
			}
			l.pv_socket = pvsock;
			/* QEMU reconnects to it as its own user (after a restart
			 * of gpupass-pvd): every folder above must let it through. */
			if (quser[0]) {
				r = reachable_by(name, quser, pvsock, why);
				if (r < 0) {
					free(cs);
					return r;
				}
			}
		}

		/* A DDA VM is never migrated or saved: say so to QEMU rather
		 * than rely on its default (which 8.1 made "auto"). */
		if (cs->n && gp_vm_qemu_migration_prop(qemu, mig, sizeof(mig)) == 0) {
			snprintf(prop, sizeof(prop), "%s=off", mig);
			l.vfio_migration_prop = prop;
		}
		r = gp_vm_build_argv(&l, argv);
		if (r < 0)
			gp_why_set(why, "VM %s: cannot build the QEMU command line: %s", name,
				   strerror(-r));
	}
	free(cs);
	return r;
}

int gp_deploy_vm_argv(struct gp_ctx *ctx, struct gp_state *st, const char *name,
		      const struct gp_deploy_opts *opts, struct gp_strv *argv, struct gp_why *why)
{
	struct gp_vm_paths *p = malloc(sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	r = build(ctx, st, name, opts ? opts : &no_opts, argv, p, why);
	free(p);
	return r;
}

/* A stopped VM keeps its claim on a GPU that was mounted back to the host
 * (by `mount`, or by a host reboot, after which the kernel's drivers have
 * it again). Its configuration asks for DDA, so vm start takes the GPU
 * again, through the same dismount as by hand: the survey's checks, the
 * --force rules, group-shared never. What this start took is given back
 * if a later GPU cannot be taken. */
static void give_back_taken(struct gp_ctx *ctx, struct gp_state *st,
			    const struct gp_deploy_opts *o, const struct gp_strv *taken)
{
	struct gp_bind_opts back = { .kops = o->kops, .allow_held = true, .lock_wait = true };

	for (size_t i = 0; i < taken->n; i++) {
		struct gp_why w;

		if (gp_bind_mount_addr(ctx, st, taken->v[i], &back, NULL, &w) < 0)
			gp_warn(&ctx->log, "%s: %s", taken->v[i], w.msg);
	}
}

static int retake_claimed(struct gp_ctx *ctx, struct gp_state *st, const char *name,
			  const struct gp_deploy_opts *o, struct gp_strv *taken, struct gp_why *why)
{
	struct gp_bind_opts bo = { .force = o->force, .kops = o->kops, .for_vm = name };
	struct gp_strv gpus = { 0 };
	int r = gp_state_vm_gpus(st, name, &gpus);

	for (size_t i = 0; r == 0 && i < gpus.n; i++) {
		struct gp_state_gpu rec;
		struct gp_why w = { "" };
		bool did = false;

		if (gp_state_gpu_get(st, gpus.v[i], &rec) == 0 && rec.state == GP_GPU_DISMOUNTED &&
		    gp_bind_gpu_on_vfio(ctx, &rec))
			continue;
		r = gp_bind_dismount(ctx, st, gpus.v[i], &bo, NULL, &did, &w);
		if (r < 0) {
			gp_why_set(why, "VM %s: its GPU %s is back on the host and cannot be taken "
				   "again: %s", name, gpus.v[i], w.msg);
			break;
		}
		if (did) {
			gp_info(&ctx->log, "VM %s: took its GPU %s back from the host", name,
				gpus.v[i]);
			(void)gp_strv_push(taken, gpus.v[i]);
		}
	}
	gp_strv_clear(&gpus);
	return r;
}

static int vm_start_locked(struct gp_ctx *ctx, struct gp_state *st, const char *name,
			   const struct gp_deploy_opts *opts, bool *already, struct gp_why *why)
{
	const struct gp_deploy_opts *o = opts ? opts : &no_opts;
	struct gp_strv argv = { 0 };
	struct gp_vm_paths *p;
	struct gp_vm_config cfg;
	struct gp_strv taken = { 0 };
	struct vm_locks vl;
	int r;

	if (already)
		*already = false;
	r = get_vm(st, name, &cfg, why);
	if (r < 0)
		return r;
	if (vm_running(ctx, name)) {
		if (already)
			*already = true;
		return 0;
	}
	/* What needs no GPU is checked before any GPU is taken again: a bad
	 * setting or a missing QEMU changes nothing on the host. */
	{
		char qemu[4096];

		r = gp_deploy_check_config(&cfg, why);
		if (r == 0)
			r = find_qemu(name, o, qemu, sizeof(qemu), why);
		if (r < 0)
			return r;
	}
	if (cfg.passthrough == GP_PT_PV) {
		/* Its region file and its server before QEMU: /run (the state
		 * directory) does not outlive a reboot, and QEMU's port connects
		 * at once when the server listens. */
		char shm[GP_VM_PATH_LEN], conf[GP_VM_PATH_LEN], sock[GP_VM_PATH_LEN], quser[64];

		/* Refused before anything starts: QEMU's user must reach the
		 * socket (build() checks again, for vm argv too). */
		if (gp_pv_socket_path(ctx, name, sock, sizeof(sock)) == 0 &&
		    gp_deploy_qemu_user(name, quser, sizeof(quser), why) == 0 && quser[0]) {
			r = reachable_by(name, quser, sock, why);
			if (r < 0)
				return r;
		}
		r = pv_shm_apply(ctx, &cfg, shm, sizeof(shm), why);
		if (r < 0)
			return r;
		if (pvd_conf_path(ctx, o, conf, sizeof(conf)) == 0 &&
		    gp_pv_socket_path(ctx, name, sock, sizeof(sock)) == 0)
			pv_serve(ctx, name, conf, sock, o);
	}
	r = retake_claimed(ctx, st, name, o, &taken, why);
	if (r < 0)
		goto err_give_back;
	r = lock_vm_gpus(ctx, st, name, &vl, why);
	if (r < 0)
		goto err_give_back;
	if (vm_running(ctx, name)) {
		/* Another gpupass started it meanwhile. */
		unlock_vm_gpus(&vl);
		gp_strv_clear(&taken);
		if (already)
			*already = true;
		return 0;
	}
	p = malloc(sizeof(*p));
	if (!p) {
		unlock_vm_gpus(&vl);
		r = -ENOMEM;
		goto err_give_back;
	}
	r = build(ctx, st, name, o, &argv, p, why);
	if (r == 0) {
		pid_t pid;

		struct gp_vm_config sc;
		uint64_t memlock = 0;
		bool hand_failed = false;

		/* VFIO pins the guest's memory for DMA, counted against
		 * RLIMIT_MEMLOCK once QEMU is no longer root: its memory and 1 GiB
		 * for the MMIO it maps (libvirt's rule). */
		if (gp_state_vm_get(st, name, &sc) == 0 && sc.passthrough == GP_PT_DDA) {
			char quser[64];

			memlock = sc.memory + (1ull << 30);
			r = gp_deploy_qemu_user(name, quser, sizeof(quser), why);
			if (r == 0 && quser[0])
				r = vfio_hand(ctx, st, name, quser, NULL, why);
			hand_failed = r < 0; /* why says it all */
		}
		if (r == 0)
			r = gp_vm_spawn(ctx, p, &argv, memlock,
					o->start_timeout_ms > 0 ? o->start_timeout_ms : 60000, &pid, why);
		if (r < 0)
			(void)vfio_hand(ctx, st, name, NULL, NULL, NULL);
		if (r < 0 && !hand_failed && r != -ECHILD && r != -ETIMEDOUT)
			gp_why_set(why, "VM %s: cannot start QEMU: %s", name, strerror(-r));
		else if (r < 0 && !hand_failed) {
			char tmp[sizeof(why->msg)];

			snprintf(tmp, sizeof(tmp), "%s", why ? why->msg : "");
			gp_why_set(why, "VM %s: %s", name, tmp);
		}
	}
	unlock_vm_gpus(&vl);
	free(p);
	gp_strv_clear(&argv);
	if (r == 0) {
		gp_strv_clear(&taken);
		return 0;
	}
err_give_back:
	/* A start that failed leaves the host as it found it. */
	give_back_taken(ctx, st, o, &taken);
	gp_strv_clear(&taken);
	return r;
}

int gp_deploy_vm_stop(struct gp_ctx *ctx, struct gp_state *st, const char *name,
		      int timeout_ms, bool force, bool *forced, struct gp_why *why)
{
	struct gp_vm_config cfg;
	struct gp_vm_paths p;
	int r = get_vm(st, name, &cfg, why);

	if (r < 0)
		return r;
	r = gp_vm_paths_get(ctx, name, &p);
	if (r < 0)
		return r;
	r = gp_vm_stop(ctx, &p, timeout_ms, force, forced, why);
	if (r == 0)
		(void)vfio_hand(ctx, st, name, NULL, NULL, NULL);
	if (r < 0) {
		char tmp[sizeof(why->msg)];

		snprintf(tmp, sizeof(tmp), "%s", why ? why->msg : "");
		gp_why_set(why, "VM %s: %s", name, tmp);
	}
	return r;
}

void gp_verify_clear(struct gp_verify *v)
{
	if (!v)
		return;
	free(v->lspci);
	memset(v, 0, sizeof(*v));
}

int gp_deploy_vm_verify(struct gp_ctx *ctx, struct gp_state *st, const char *name,
			int agent_timeout_ms, struct gp_verify *out, struct gp_why *why)
{
	struct gp_vm_config cfg;
	struct gp_vm_paths p;
	struct cards *cs;
	struct gp_qmp *q = NULL;
	struct json_object *ret = NULL;
	struct gp_qmp_pci_dev *devs = NULL;
	size_t ndevs = 0;
	char err[256];
	enum gp_vm_run_state rs;
	pid_t pid;
	int r;

	memset(out, 0, sizeof(*out));
	r = get_vm(st, name, &cfg, why);
	if (r < 0)
		return r;
	r = gp_vm_paths_get(ctx, name, &p);
	if (r < 0)
		return r;
	if (gp_vm_status(&p, &rs, &pid, NULL) < 0 || rs == GP_VM_STOPPED) {
		gp_why_set(why, "VM %s is not running; start it with gpupass vm start %s", name, name);
		return -ESRCH;
	}
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	r = load_cards(ctx, st, name, cs, false, why);
	if (r < 0)
		goto out;
	r = gp_qmp_connect(p.qmp, 5000, &q);
	if (r == 0)
		r = gp_qmp_execute(q, "query-pci", NULL, 10000, &ret, err, sizeof(err));
	if (r == 0)
		r = gp_qmp_parse_pci(ret, &devs, &ndevs);
	if (r < 0) {
		gp_why_set(why, "VM %s: cannot query the guest's PCI devices over QMP: %s", name,
			   r == -EREMOTEIO ? err : strerror(-r));
		goto out;
	}
	out->ok = true;
	for (size_t c = 0; c < cs->n; c++) {
		for (size_t f = 0; f < cs->card[c].nfn && out->n < GP_ARRAY_SIZE(out->dev); f++) {
			struct gp_verify_dev *d = &out->dev[out->n++];

			snprintf(d->host, sizeof(d->host), "%s", cs->card[c].fn[f].address);
			gp_vm_dev_id(c, f, d->qdev_id, sizeof(d->qdev_id));
			d->vendor_id = cs->card[c].fn[f].vendor_id;
			d->device_id = cs->card[c].fn[f].device_id;
			d->in_lspci = -1;
			for (size_t i = 0; i < ndevs; i++) {
				if (strcmp(devs[i].qdev_id, d->qdev_id) != 0)
					continue;
				d->in_qmp = devs[i].vendor_id == d->vendor_id &&
					    devs[i].device_id == d->device_id;
				snprintf(d->guest_addr, sizeof(d->guest_addr), "%02x:%02x.%d",
					 (unsigned)devs[i].bus, (unsigned)devs[i].slot,
					 devs[i].function);
			}
			out->ok &= d->in_qmp;
		}
	}
	/* A DDA VM with nothing assigned proves nothing. */
	if (cfg.passthrough == GP_PT_DDA && out->n == 0)
		out->ok = false;
	if (agent_timeout_ms > 0 && gp_qmp_agent_exec(p.qga, agent_timeout_ms, "lspci", "-nn", &out->lspci) == 0) {
		out->agent = true;
		for (size_t i = 0; i < out->n; i++) {
			struct gp_verify_dev *d = &out->dev[i];
			char ids[16];

			snprintf(ids, sizeof(ids), "[%04x:%04x]", d->vendor_id, d->device_id);
			d->in_lspci = strstr(out->lspci, ids) != NULL;
			out->ok &= d->in_lspci == 1;
		}
	}
	r = 0;
out:
	free(devs);
	json_object_put(ret);
	gp_qmp_close(q);
	free(cs);
	return r;
}

/* A running VM holds its GPUs; a stopped one only claims them. Checked
 * with the group locked (vm start takes the same locks), whatever way the
 * GPU was named. */
static int holder_stopped(void *data, struct gp_state *st, const struct gp_state_gpu *rec,
			  struct gp_why *why)
{
	struct gp_ctx *ctx = data;
	char vm[GP_NAME_LEN];

	if (gp_state_gpu_owner(st, rec->address, vm, sizeof(vm)) == 0 && vm_running(ctx, vm)) {
		gp_why_set(why, "GPU %s is held by the running VM %s; stop it first (gpupass vm "
			   "stop %s), then mount", rec->address, vm, vm);
		return -EBUSY;
	}
	return 0;
}

int gp_deploy_mount(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		    const struct gp_deploy_opts *opts, char *addr_out, char *vm_out, bool *did,
		    struct gp_why *why)
{
	struct gp_bind_opts bo = { .kops = opts ? opts->kops : NULL, .allow_held = true,
				   .check_locked = holder_stopped, .check_data = ctx };
	char addr[GP_ADDR_LEN] = "", vm[GP_NAME_LEN] = "";

	if (vm_out)
		vm_out[0] = '\0';
	{
		int r = gp_bind_mount(ctx, st, query, &bo, addr, did, why);

		if (r < 0)
			return r;
	}
	if (addr_out)
		snprintf(addr_out, GP_ADDR_LEN, "%s", addr);
	if (vm_out && gp_state_gpu_owner(st, addr, vm, sizeof(vm)) == 0)
		snprintf(vm_out, GP_NAME_LEN, "%s", vm);
	return 0;
}

int gp_deploy_reconcile(struct gp_ctx *ctx, struct gp_state *st,
			const struct gp_deploy_opts *opts, struct gp_strv *report)
{
	struct gp_bind_opts bo = { .kops = opts ? opts->kops : NULL };
	struct gp_strv vms = { 0 };
	int r = gp_bind_reconcile(ctx, st, &bo, report);

	if (gp_state_vm_list(st, &vms) == 0) {
		for (size_t i = 0; i < vms.n; i++) {
			struct gp_vm_paths p;
			enum gp_vm_run_state s;
			bool died = false;
			pid_t pid;

			if (gp_vm_paths_get(ctx, vms.v[i], &p) < 0 ||
			    gp_vm_status(&p, &s, &pid, &died) < 0)
				continue;
			if (died && report)
				(void)gp_strv_push_printf(report, "VM %s: QEMU exited without gpupass "
							  "stopping it (guest powered off, or "
							  "QEMU died); see gpupass vm log %s",
							  vms.v[i], vms.v[i]);
			if (s == GP_VM_STOPPED)
				(void)vfio_hand(ctx, st, vms.v[i], NULL, report, NULL);
		}
	}
	gp_strv_clear(&vms);
	return r;
}

/* The entry points that check "is the VM running?" run under its lock. */

int gp_deploy_vm_set(struct gp_ctx *ctx, struct gp_state *st, const struct gp_vm_config *cfg,
		     const struct gp_deploy_opts *opts, struct gp_why *why)
{
	struct gp_bind_lock *l = NULL;
	int r = gp_vm_name_valid(cfg->name) ? lock_vm(ctx, cfg->name, &l, why) : 0;

	if (r == 0)
		r = vm_set_locked(ctx, st, cfg, opts, why);
	gp_bind_lock_release(l);
	return r;
}

int gp_deploy_vm_delete(struct gp_ctx *ctx, struct gp_state *st, const char *name,
			const struct gp_deploy_opts *opts, struct gp_why *why)
{
	struct gp_bind_lock *l = NULL;
	int r = gp_vm_name_valid(name) ? lock_vm(ctx, name, &l, why) : 0;

	if (r == 0)
		r = vm_delete_locked(ctx, st, name, opts, why);
	gp_bind_lock_release(l);
	return r;
}

int gp_deploy_assign(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		     const char *vm, const struct gp_deploy_opts *opts, char *addr_out,
		     struct gp_why *why)
{
	struct gp_bind_lock *l = NULL;
	int r = gp_vm_name_valid(vm) ? lock_vm(ctx, vm, &l, why) : 0;

	if (r == 0)
		r = assign_locked(ctx, st, query, vm, opts, addr_out, why);
	gp_bind_lock_release(l);
	return r;
}

int gp_deploy_vm_start(struct gp_ctx *ctx, struct gp_state *st, const char *name,
		       const struct gp_deploy_opts *opts, bool *already, struct gp_why *why)
{
	struct gp_bind_lock *l = NULL;
	int r = gp_vm_name_valid(name) ? lock_vm(ctx, name, &l, why) : 0;

	if (r == 0)
		r = vm_start_locked(ctx, st, name, opts, already, why);
	gp_bind_lock_release(l);
	return r;
}
