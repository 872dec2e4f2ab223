/* SPDX-License-Identifier: Apache-2.0 */
#include "bind.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define VFIO_DRIVER "vfio-pci"

/* --- kernel ops --- */

static int real_load_module(void *data, struct gp_ctx *ctx, const char *name)
{
	pid_t pid;
	int status;

	(void)data;
	/* With a fake root there is no kernel behind the tree to load into. */
	if (!gp_sysfs_is_real_root(ctx->sys))
		return -ENOTSUP;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
		}
		execlp("modprobe", "modprobe", "--", name, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return -ENOENT;
}

static const struct gp_kernel_ops real_kops = {
	.load_module = real_load_module,
};

const struct gp_kernel_ops *gp_kernel_ops_default(void)
{
	return &real_kops;
}

static const struct gp_kernel_ops *kops_of(const struct gp_bind_opts *opts)
{
	return opts && opts->kops ? opts->kops : &real_kops;
}

/* --- locks --- */

struct gp_bind_lock {
	size_t n;
	int fds[GP_STATE_MAX_FN];
};

int gp_bind_lock_take(struct gp_ctx *ctx, const struct gp_strv *addrs, bool wait,
		      struct gp_bind_lock **out)
{
	struct gp_bind_lock *lock;
	char *dir;
	int r = 0;

	if (addrs->n > GP_STATE_MAX_FN)
		return -E2BIG;
	lock = calloc(1, sizeof(*lock));
	if (!lock)
		return -ENOMEM;
	if (mkdir(ctx->state_dir, 0700) < 0 && errno != EEXIST) {
		free(lock);
		return -errno;
	}
	dir = gp_strdup_printf("%s/locks", ctx->state_dir);
	if (!dir) {
		free(lock);
		return -ENOMEM;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto err_release;
	}
	/* @addrs is sorted (group members are), so two processes lock in the
	 * same order and waiting cannot deadlock. */
	for (size_t i = 0; i < addrs->n; i++) {
		char *path = gp_strdup_printf("%s/%s.lock", dir, addrs->v[i]);
		char pid[24];
		int fd, n;

		if (!path) {
			r = -ENOMEM;
			goto err_release;
		}
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		free(path);
		if (fd < 0) {
			r = -errno;
			goto err_release;
		}
		lock->fds[lock->n++] = fd;
		/* flock: released by the kernel when the process dies, so a
		 * kill -9 never leaves a stale lock behind. */
		while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
			if (errno == EINTR)
				continue;
			r = errno == EWOULDBLOCK ? -EBUSY : -errno;
			goto err_release;
		}
		/* Who holds it, for the message of one that does not get it:
		 * one write of a fixed width over the last holder's, so a
		 * reader never finds the file empty once it was written. */
		n = snprintf(pid, sizeof(pid), "%20ld\n", (long)getpid());
		if (pwrite(fd, pid, (size_t)n, 0) != n)
			gp_warn(&ctx->log, "cannot write the lock holder into %s.lock", addrs->v[i]);
	}
	free(dir);
	*out = lock;
	return 0;

err_release:
	free(dir);
	gp_bind_lock_release(lock);
	return r;
}

/* The pid written into @addr's lock file by its holder, or 0. */
static long lock_holder(struct gp_ctx *ctx, const char *addr)
{
	char *path = gp_strdup_printf("%s/locks/%s.lock", ctx->state_dir, addr);
	char buf[32] = "";
	long pid = 0;
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;

	free(path);
	/* A lock file just created is empty until its holder writes: a
	 * while (50 ms), not forever. */
	for (int tries = 0; fd >= 0 && pid <= 0 && tries < 10; tries++) {
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

		if (n > 0) {
			buf[n] = '\0';
			pid = strtol(buf, NULL, 10);
		}
		if (pid <= 0)
			nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	if (fd >= 0)
		close(fd);
	return pid > 0 ? pid : 0;
}

void gp_bind_lock_release(struct gp_bind_lock *lock)
{
	if (!lock)
		return;
	for (size_t i = 0; i < lock->n; i++)
		close(lock->fds[i]);
	free(lock);
}

/* --- sysfs actions on one function --- */

int gp_bind_driver_of(struct gp_ctx *ctx, const char *addr, char *buf, size_t len)
{
	char p[PATH_MAX];
	int r = gp_sysfs_link_name(ctx->sys,
		gp_sysfs_path(p, sizeof(p), "/sys/bus/pci/devices/%s/driver", addr), buf, len);

	if (r == -ENOENT) {
		buf[0] = '\0';
		return 0;
	}
	return r;
}

static bool on_driver(struct gp_ctx *ctx, const char *addr, const char *drv)
{
	char cur[GP_DRIVER_LEN];

	return gp_bind_driver_of(ctx, addr, cur, sizeof(cur)) == 0 && strcmp(cur, drv) == 0;
}

static int write_path(struct gp_ctx *ctx, const char *path, const char *val)
{
	int r = gp_sysfs_write(ctx->sys, path, val);

	gp_dbg(&ctx->log, "write '%s' > %s: %s", strcmp(val, "\n") ? val : "\\n", path,
	       r < 0 ? strerror(-r) : "ok");
	return r;
}

static int dev_attr(struct gp_ctx *ctx, const char *addr, const char *attr, const char *val)
{
	char p[PATH_MAX];

	return write_path(ctx, gp_sysfs_path(p, sizeof(p), "/sys/bus/pci/devices/%s/%s",
					     addr, attr), val);
}

static int drv_attr(struct gp_ctx *ctx, const char *drv, const char *attr, const char *addr)
{
	char p[PATH_MAX];

	return write_path(ctx, gp_sysfs_path(p, sizeof(p), "/sys/bus/pci/drivers/%s/%s",
					     drv, attr), addr);
}

static int unbind_from(struct gp_ctx *ctx, const char *addr, const char *drv)
{
	return drv_attr(ctx, drv, "unbind", addr);
}

static int probe(struct gp_ctx *ctx, const char *addr)
{
	/* drivers_probe returns an error when no driver takes the device;
	 * what bound (if anything) is read back by the caller. */
	return write_path(ctx, "/sys/bus/pci/drivers_probe", addr);
}

/* One function onto vfio-pci. */
static int bind_vfio(struct gp_ctx *ctx, const char *addr)
{
	char cur[GP_DRIVER_LEN];
	int r;

	r = dev_attr(ctx, addr, "driver_override", VFIO_DRIVER);
	if (r < 0)
		return r;
	r = gp_bind_driver_of(ctx, addr, cur, sizeof(cur));
	if (r < 0)
		return r;
	if (strcmp(cur, VFIO_DRIVER) == 0)
		return 0;
	if (cur[0]) {
		r = unbind_from(ctx, addr, cur);
		if (r < 0)
			return r;
	}
	(void)probe(ctx, addr);
	if (!on_driver(ctx, addr, VFIO_DRIVER))
		return -EIO;
	return 0;
}

/* One function back to @orig ("" = leave it without a driver). */
static int bind_original(struct gp_ctx *ctx, const char *addr, const char *orig)
{
	char cur[GP_DRIVER_LEN];
	int r;

	/* A lone newline clears driver_override (sysfs-bus-pci ABI). */
	r = dev_attr(ctx, addr, "driver_override", "\n");
	if (r < 0 && r != -ENOENT)
		return r;
	r = gp_bind_driver_of(ctx, addr, cur, sizeof(cur));
	if (r < 0)
		return r;
	if (orig[0] && strcmp(cur, orig) == 0)
		return 0;
	if (strcmp(cur, VFIO_DRIVER) == 0) {
		r = unbind_from(ctx, addr, cur);
		if (r < 0)
			return r;
		cur[0] = '\0';
	}
	if (!orig[0])
		return 0;
	if (!cur[0])
		(void)probe(ctx, addr);
	/* Unknown original: whatever driver the kernel matches is right. */
	if (strcmp(orig, GP_DRIVER_UNKNOWN) == 0)
		return 0;
	if (on_driver(ctx, addr, orig))
		return 0;
	/* Another driver may have won the probe, or none: bind explicitly. */
	if (gp_bind_driver_of(ctx, addr, cur, sizeof(cur)) == 0 && !cur[0])
		(void)drv_attr(ctx, orig, "bind", addr);
	return on_driver(ctx, addr, orig) ? 0 : -EIO;
}

bool gp_bind_gpu_on_vfio(struct gp_ctx *ctx, const struct gp_state_gpu *gpu)
{
	for (size_t i = 0; i < gpu->nfn; i++) {
		if (!on_driver(ctx, gpu->fn[i].address, VFIO_DRIVER))
			return false;
	}
	return gpu->nfn > 0;
}

static bool vfio_present(struct gp_ctx *ctx)
{
	return gp_sysfs_is_dir(ctx->sys, "/sys/bus/pci/drivers/" VFIO_DRIVER);
}

/* --- policy --- */

bool gp_bind_needs_force(enum gp_problem_code code)
{
	switch (code) {
	case GP_PROB_BOOT_VGA:
	case GP_PROB_IN_USE:
	case GP_PROB_NO_RESET:
	case GP_PROB_RESET_QUIRK:
		return true;
	default:
		return false;
	}
}

int gp_bind_check(const struct gp_survey_gpu *gpu, bool force, struct gp_why *why)
{
	const struct gp_method_result *dda = &gpu->methods[GP_METHOD_DDA];
	const char *addr = gpu->dev->address;

	/* Errors first: none of them is ever forced (a shared group would
	 * take a device the host needs). */
	for (size_t i = 0; i < dda->n_problems; i++) {
		const struct gp_problem *p = &dda->problems[i];

		if (p->severity != GP_SEV_ERROR)
			continue;
		/* vfio-pci not loaded is fixed by loading it; missing is not. */
		gp_why_set(why, "cannot dismount %s: %s [%s]; %s", addr, p->message,
			   gp_problem_code_name(p->code), p->fix);
		return p->code == GP_PROB_VFIO_MISSING ? -ENODEV : -EPERM;
	}
	if (force)
		return 0;
	for (size_t i = 0; i < dda->n_problems; i++) {
		const struct gp_problem *p = &dda->problems[i];

		if (!gp_bind_needs_force(p->code))
			continue;
		gp_why_set(why, "not dismounting %s: %s [%s]; %s — or pass --force to take it anyway",
			   addr, p->message, gp_problem_code_name(p->code), p->fix);
		return -EACCES;
	}
	return 0;
}

/* --- dismount --- */

/* The endpoints of the GPU's group (bridges stay with their drivers: VFIO
 * accepts a group whose bridges are on pcieport). Refuses a member that is
 * not a function of the GPU's card even if the survey did not. */
static int group_endpoints(const struct gp_survey *survey, const struct gp_survey_gpu *gpu,
			   struct gp_strv *out, struct gp_why *why)
{
	const struct gp_pci_scan *scan = gp_survey_scan(survey);
	const struct gp_pci_dev *dev = gpu->dev;
	int r;

	if (dev->iommu_group < 0 || dev->group_members.n == 0) {
		gp_why_set(why, "cannot dismount %s: it has no IOMMU group; enable the IOMMU "
			   "(intel_iommu=on or amd_iommu=on, and VT-d/AMD-Vi in the firmware)",
			   dev->address);
		return -EPERM;
	}
	for (size_t i = 0; i < dev->group_members.n; i++) {
		const char *m = dev->group_members.v[i];
		const struct gp_pci_dev *md = gp_pci_scan_find(scan, m);

		if (md && md->is_bridge)
			continue;
		if (!md || !gp_pci_same_slot(md, dev)) {
			gp_why_set(why, "cannot dismount %s: IOMMU group %d also holds %s, which is "
				   "not part of this GPU [group-shared]; move the GPU to a slot "
				   "with its own group (never forced)", dev->address,
				   dev->iommu_group, m);
			return -EPERM;
		}
		r = gp_strv_push(out, m);
		if (r < 0)
			return r;
	}
	if (out->n > GP_STATE_MAX_FN)
		return -E2BIG;
	return 0;
}

/* The group as the kernel has it now, with our lock held, against what
 * the survey saw before the lock: a device that joined the group since
 * (hot-plug, a bridge rescan) must not slip past the group-shared check. */
static int group_unchanged(struct gp_ctx *ctx, const struct gp_pci_dev *dev, struct gp_why *why)
{
	struct gp_strv now = { 0 };
	char p[PATH_MAX];
	int r = gp_sysfs_list(ctx->sys, gp_sysfs_path(p, sizeof(p),
				"/sys/kernel/iommu_groups/%d/devices", dev->iommu_group), &now);

	if (r < 0) {
		gp_why_set(why, "cannot dismount %s: cannot read its IOMMU group %d: %s",
			   dev->address, dev->iommu_group, strerror(-r));
		return r;
	}
	for (size_t i = 0; r == 0 && i < now.n; i++) {
		if (!gp_strv_contains(&dev->group_members, now.v[i])) {
			gp_why_set(why, "cannot dismount %s: %s joined its IOMMU group %d while "
				   "gpupass was looking at it; run the command again", dev->address,
				   now.v[i], dev->iommu_group);
			r = -EAGAIN;
		}
	}
	gp_strv_clear(&now);
	return r;
}

static void fill_record(struct gp_ctx *ctx, const struct gp_survey *survey,
			const struct gp_survey_gpu *gpu, const struct gp_strv *eps,
			const struct gp_state_gpu *old, const char *for_vm,
			struct gp_state_gpu *rec)
{
	const struct gp_pci_scan *scan = gp_survey_scan(survey);

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->address, sizeof(rec->address), "%s", gpu->dev->address);
	rec->iommu_group = gpu->dev->iommu_group;
	rec->state = GP_GPU_DISMOUNTING;
	if (for_vm)
		snprintf(rec->auto_for_vm, sizeof(rec->auto_for_vm), "%s", for_vm);
	for (size_t i = 0; i < eps->n; i++) {
		struct gp_state_fn *f = &rec->fn[rec->nfn++];
		const struct gp_pci_dev *md = gp_pci_scan_find(scan, eps->v[i]);
		const char *prev = NULL;
		char cur[GP_DRIVER_LEN] = "";

		snprintf(f->address, sizeof(f->address), "%s", eps->v[i]);
		if (md) {
			f->vendor_id = md->vendor_id;
			f->device_id = md->device_id;
		}
		(void)gp_bind_driver_of(ctx, eps->v[i], cur, sizeof(cur));
		for (size_t j = 0; old && j < old->nfn; j++) {
			if (strcmp(old->fn[j].address, f->address) == 0)
				prev = old->fn[j].original_driver;
		}
		/* Already on vfio-pci: keep what an earlier record knew, else
		 * the original driver is unknown (bound by hand). Without a
		 * driver but on record (a give-back that failed): its driver
		 * is still the recorded one, not "none". */
		if (strcmp(cur, VFIO_DRIVER) == 0) {
			f->on_vfio = true;
			snprintf(cur, sizeof(cur), "%s", prev ? prev : GP_DRIVER_UNKNOWN);
		} else if (!cur[0] && prev) {
			snprintf(cur, sizeof(cur), "%s", prev);
		}
		snprintf(f->original_driver, sizeof(f->original_driver), "%s", cur);
	}
}

/* Puts every function of @rec back; returns the first error. */
static int restore_all(struct gp_ctx *ctx, const struct gp_state_gpu *rec, struct gp_why *why)
{
	int first = 0;

	for (size_t i = 0; i < rec->nfn; i++) {
		const struct gp_state_fn *f = &rec->fn[i];
		int r = bind_original(ctx, f->address, f->original_driver);

		if (r < 0) {
			gp_warn(&ctx->log, "%s: did not go back to driver %s: %s", f->address,
				f->original_driver[0] ? f->original_driver : "(none)", strerror(-r));
			if (!first) {
				first = r;
				gp_why_set(why, "%s did not go back to its driver %s: %s; load that "
					   "driver's module (modprobe %s) and run gpupass mount %s again",
					   f->address, f->original_driver, strerror(-r),
					   f->original_driver, rec->address);
			}
		}
	}
	return first;
}

int gp_bind_dismount_gpu(struct gp_ctx *ctx, struct gp_state *st,
			 const struct gp_survey *survey, const struct gp_survey_gpu *gpu,
			 const struct gp_bind_opts *opts, bool *did, struct gp_why *why)
{
	static const struct gp_bind_opts defaults;
	const struct gp_kernel_ops *kops = kops_of(opts);
	const char *addr = gpu->dev->address;
	struct gp_state_gpu old, rec;
	struct gp_strv eps = { 0 };
	struct gp_bind_lock *lock = NULL;
	bool have_old;
	int r;

	if (!opts)
		opts = &defaults;
	if (did)
		*did = false;
	/* Errors (never forced) first, with the survey's own words: they do
	 * not depend on what another process is doing. */
	r = gp_bind_check(gpu, true, why);
	if (r < 0)
		goto out;
	r = group_endpoints(survey, gpu, &eps, why);
	if (r < 0)
		goto out;
	r = gp_bind_lock_take(ctx, &eps, opts->lock_wait, &lock);
	if (r == -EBUSY) {
		long holder = 0;

		for (size_t i = 0; !holder && i < eps.n; i++)
			holder = lock_holder(ctx, eps.v[i]);
		if (holder)
			gp_why_set(why, "%s is being dismounted or mounted by another gpupass (pid %ld) "
				   "right now; wait for it and try again", addr, holder);
		else
			gp_why_set(why, "%s is being dismounted or mounted by another gpupass right "
				   "now; wait for it and try again", addr);
		goto out;
	}
	if (r < 0) {
		gp_why_set(why, "cannot lock %s under %s/locks: %s", addr, ctx->state_dir,
			   strerror(-r));
		goto out;
	}
	r = group_unchanged(ctx, gpu->dev, why);
	if (r < 0)
		goto out;
	have_old = gp_state_gpu_get(st, addr, &old) == 0;
	/* Idempotent: recorded and every endpoint already on vfio-pci. */
	if (have_old && old.state == GP_GPU_DISMOUNTED && gp_bind_gpu_on_vfio(ctx, &old)) {
		r = 0;
		goto out;
	}
	r = gp_bind_check(gpu, opts->force, why);
	if (r < 0)
		goto out;
	if (!vfio_present(ctx)) {
		int lr = kops->load_module ? kops->load_module(kops->data, ctx, VFIO_DRIVER)
					   : -ENOTSUP;

		if (lr < 0 || !vfio_present(ctx)) {
			gp_why_set(why, "cannot dismount %s: the vfio-pci driver is not available "
				   "(loading it failed: %s); install the kernel's vfio-pci module "
				   "and run modprobe vfio-pci", addr,
				   lr < 0 ? strerror(-lr) : "no driver appeared");
			r = -ENODEV;
			goto out;
		}
	}
	fill_record(ctx, survey, gpu, &eps, have_old ? &old : NULL, opts->for_vm, &rec);
	/* The intent goes to disk before the kernel is touched. */
	r = gp_state_gpu_put(st, &rec);
	if (r < 0) {
		gp_why_set(why, "cannot record the dismount of %s in the state database: %s",
			   addr, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < rec.nfn; i++) {
		struct gp_state_fn *f = &rec.fn[i];

		r = bind_vfio(ctx, f->address);
		if (r < 0) {
			struct gp_why back = { "" };
			int br = r;

			if (restore_all(ctx, &rec, &back) == 0) {
				gp_why_set(why, "cannot dismount %s: %s did not bind to vfio-pci "
					   "(%s); its group was given back to the host drivers; "
					   "see dmesg", addr, f->address, strerror(-br));
				(void)gp_state_gpu_delete(st, rec.address);
			} else {
				/* Half-bound: keep the record (as an unfinished
				 * mount) so that mount, or the next reconcile,
				 * can finish giving it back. */
				(void)gp_state_gpu_set_state(st, rec.address, GP_GPU_MOUNTING);
				gp_why_set(why, "cannot dismount %s: %s did not bind to vfio-pci "
					   "(%s), and giving the group back failed too: %s", addr,
					   f->address, strerror(-br), back.msg);
			}
			r = -EIO;
			goto out;
		}
		f->on_vfio = true;
		(void)gp_state_fn_set_vfio(st, f->address, true);
		gp_info(&ctx->log, "%s: bound to vfio-pci (was %s)", f->address,
			f->original_driver[0] ? f->original_driver : "unbound");
	}
	{
		char p[64];

		if (!gp_sysfs_exists(ctx->sys, gp_sysfs_path(p, sizeof(p), "/dev/vfio/%d",
							     rec.iommu_group)))
			gp_warn(&ctx->log, "%s: /dev/vfio/%d did not appear", addr, rec.iommu_group);
	}
	r = gp_state_gpu_set_state(st, rec.address, GP_GPU_DISMOUNTED);
	if (r < 0) {
		gp_why_set(why, "%s is on vfio-pci but the state database could not be "
			   "updated: %s", addr, strerror(-r));
		goto out;
	}
	if (did)
		*did = true;
out:
	gp_bind_lock_release(lock);
	gp_strv_clear(&eps);
	return r;
}

static int find_gpu(struct gp_ctx *ctx, const char *query, struct gp_survey **survey_out,
		    const struct gp_survey_gpu **gpu_out, struct gp_why *why)
{
	struct gp_strv cands = { 0 };
	struct gp_survey *survey;
	int r = gp_survey_run(ctx, NULL, &survey);

	if (r < 0) {
		gp_why_set(why, "cannot list the PCI devices under %s: %s",
			   gp_sysfs_root(ctx->sys), strerror(-r));
		return r;
	}
	r = gp_survey_find(survey, query, gpu_out, &cands);
	if (r == -ENOENT || r == -EINVAL) {
		gp_why_set(why, "no GPU matches '%s'; run gpupass survey to list the GPUs "
			   "(by address, location path or name)", query);
		r = -ENOENT;
	} else if (r == -ENOTUNIQ) {
		char list[512] = "";
		size_t off = 0;

		for (size_t i = 0; i < cands.n && off < sizeof(list); i++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
						i ? ", " : "", cands.v[i]);
		gp_why_set(why, "'%s' matches %zu GPUs (%s); name one by its address", query,
			   cands.n, list);
	}
	gp_strv_clear(&cands);
	if (r < 0) {
		gp_survey_free(survey);
		return r;
	}
	*survey_out = survey;
	return 0;
}

int gp_bind_dismount(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		     const struct gp_bind_opts *opts, char *addr_out, bool *did,
		     struct gp_why *why)
{
	const struct gp_survey_gpu *gpu;
	struct gp_survey *survey;
	int r = find_gpu(ctx, query, &survey, &gpu, why);

	if (r < 0)
		return r;
	if (addr_out)
		snprintf(addr_out, GP_ADDR_LEN, "%s", gpu->dev->address);
	r = gp_bind_dismount_gpu(ctx, st, survey, gpu, opts, did, why);
	gp_survey_free(survey);
	return r;
}

/* --- mount --- */

int gp_bind_lock_gpu(struct gp_ctx *ctx, const struct gp_state_gpu *rec, bool wait,
		     struct gp_bind_lock **out)
{
	struct gp_strv addrs = { 0 };
	int r = 0;

	for (size_t i = 0; r == 0 && i < rec->nfn; i++)
		r = gp_strv_push(&addrs, rec->fn[i].address);
	if (r == 0) {
		gp_strv_sort(&addrs);
		r = gp_bind_lock_take(ctx, &addrs, wait, out);
	}
	gp_strv_clear(&addrs);
	return r;
}

int gp_bind_mount_addr(struct gp_ctx *ctx, struct gp_state *st, const char *addr,
		       const struct gp_bind_opts *opts, bool *did, struct gp_why *why)
{
	struct gp_state_gpu rec;
	struct gp_bind_lock *lock = NULL;
	char vm[GP_NAME_LEN];
	int r;

	if (did)
		*did = false;
	r = gp_state_gpu_get(st, addr, &rec);
	if (r == -ENOENT)
		return 0; /* not dismounted by gpupass: nothing to give back */
	if (r < 0) {
		gp_why_set(why, "cannot read the state of %s: %s", addr, strerror(-r));
		return r;
	}
	if (!(opts && opts->allow_held) && gp_state_gpu_owner(st, rec.address, vm, sizeof(vm)) == 0) {
		gp_why_set(why, "GPU %s is held by VM %s; run gpupass unassign %s (with the VM "
			   "stopped) or gpupass vm delete %s first", rec.address, vm,
			   rec.address, vm);
		return -EBUSY;
	}
	r = gp_bind_lock_gpu(ctx, &rec, opts && opts->lock_wait, &lock);
	if (r < 0) {
		gp_why_set(why, "%s is being dismounted, mounted or started in a VM by another "
			   "gpupass right now; wait for it and try again", rec.address);
		return r;
	}
	/* Re-read under the lock: another gpupass may just have mounted it. */
	r = gp_state_gpu_get(st, rec.address, &rec);
	if (r == -ENOENT) {
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	if (opts && opts->check_locked) {
		r = opts->check_locked(opts->check_data, st, &rec, why);
		if (r < 0)
			goto out;
	}
	r = gp_state_gpu_set_state(st, rec.address, GP_GPU_MOUNTING);
	if (r < 0)
		goto out;
	r = restore_all(ctx, &rec, why);
	if (r < 0) {
		r = -EIO;
		goto out;
	}
	r = gp_state_gpu_delete(st, rec.address);
	if (r == 0 && did)
		*did = true;
out:
	gp_bind_lock_release(lock);
	return r;
}

int gp_bind_mount(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		  const struct gp_bind_opts *opts, char *addr_out, bool *did,
		  struct gp_why *why)
{
	const struct gp_survey_gpu *gpu;
	struct gp_survey *survey;
	struct gp_state_gpu rec;
	int r;

	/* A recorded address needs no survey (the device may even be gone). */
	if (gp_state_gpu_get(st, query, &rec) == 0) {
		if (addr_out)
			snprintf(addr_out, GP_ADDR_LEN, "%s", rec.address);
		return gp_bind_mount_addr(ctx, st, rec.address, opts, did, why);
	}
	r = find_gpu(ctx, query, &survey, &gpu, why);
	if (r < 0)
		return r;
	if (addr_out)
		snprintf(addr_out, GP_ADDR_LEN, "%s", gpu->dev->address);
	r = gp_bind_mount_addr(ctx, st, gpu->dev->address, opts, did, why);
	gp_survey_free(survey);
	return r;
}

/* --- reconcile --- */

static int report(struct gp_strv *rep, struct gp_ctx *ctx, const char *line)
{
	gp_info(&ctx->log, "%s", line);
	return rep ? gp_strv_push(rep, line) : 0;
}

static bool any_fn_present(struct gp_ctx *ctx, const struct gp_state_gpu *rec)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < rec->nfn; i++) {
		if (gp_sysfs_exists(ctx->sys, gp_sysfs_path(p, sizeof(p), "/sys/bus/pci/devices/%s",
							    rec->fn[i].address)))
			return true;
	}
	return false;
}

static bool any_fn_on_vfio(struct gp_ctx *ctx, const struct gp_state_gpu *rec)
{
	for (size_t i = 0; i < rec->nfn; i++) {
		if (on_driver(ctx, rec->fn[i].address, VFIO_DRIVER))
			return true;
	}
	return false;
}

static int reconcile_one(struct gp_ctx *ctx, struct gp_state *st, const char *addr,
			 struct gp_strv *rep)
{
	struct gp_state_gpu rec;
	struct gp_bind_lock *lock = NULL;
	struct gp_why why = { "" };
	char line[1280], vm[GP_NAME_LEN];
	bool owned;
	int r;

	r = gp_state_gpu_get(st, addr, &rec);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	/* Another gpupass is working on it: its record is in flight. */
	if (gp_bind_lock_gpu(ctx, &rec, false, &lock) < 0)
		return 0;
	/* Re-read under the lock: the other process may just have finished. */
	r = gp_state_gpu_get(st, addr, &rec);
	if (r < 0) {
		r = r == -ENOENT ? 0 : r;
		goto out;
	}
	owned = gp_state_gpu_owner(st, rec.address, vm, sizeof(vm)) == 0;
	switch (rec.state) {
	case GP_GPU_DISMOUNTING:
		/* A VM's claim (an assignment) outlives a mount, as with
		 * `mount` while its VM is stopped: vm start then asks for
		 * the dismount again. So the claim is kept here too. */
		r = restore_all(ctx, &rec, &why);
		if (r == 0) {
			r = gp_state_gpu_delete(st, rec.address);
			snprintf(line, sizeof(line), "%s: a dismount was interrupted (gpupass killed?); "
				 "its group was given back to the host drivers; run gpupass "
				 "dismount %s again if you want it", rec.address, rec.address);
		} else {
			(void)gp_state_gpu_set_state(st, rec.address, GP_GPU_MOUNTING);
			snprintf(line, sizeof(line), "%s: a dismount was interrupted and could not "
				 "be undone: %s", rec.address, why.msg);
		}
		(void)report(rep, ctx, line);
		break;
	case GP_GPU_MOUNTING:
		r = restore_all(ctx, &rec, &why);
		if (r == 0) {
			r = gp_state_gpu_delete(st, rec.address);
			snprintf(line, sizeof(line), "%s: finished an interrupted mount; it is back "
				 "on its host drivers", rec.address);
		} else {
			snprintf(line, sizeof(line), "%s: an interrupted mount is still not done: %s",
				 rec.address, why.msg);
		}
		(void)report(rep, ctx, line);
		break;
	case GP_GPU_DISMOUNTED:
	default:
		if (gp_bind_gpu_on_vfio(ctx, &rec))
			break;
		if (!any_fn_present(ctx, &rec)) {
			snprintf(line, sizeof(line), "%s: dismounted GPU is gone from the host "
				 "(removed or hot-unplugged)%s%s", rec.address,
				 owned ? "; still assigned to VM " : "", owned ? vm : "");
			(void)report(rep, ctx, line);
			break;
		}
		if (any_fn_on_vfio(ctx, &rec)) {
			/* Half on vfio-pci (a function rebound by hand): keep
			 * the original drivers on record for mount. */
			snprintf(line, sizeof(line), "%s: only part of its group is still on "
				 "vfio-pci (rebound outside gpupass); run gpupass mount %s to give "
				 "it all back%s%s", rec.address, rec.address,
				 owned ? ", then gpupass vm start " : "", owned ? vm : "");
			(void)report(rep, ctx, line);
			break;
		}
		/* Wholly back on the host (a reboot, or by hand): the record
		 * follows the kernel. A VM's claim stays, as after `mount`, and
		 * its vm start takes the GPU again. */
		r = gp_state_gpu_delete(st, rec.address);
		if (owned)
			snprintf(line, sizeof(line), "%s: is back on its host drivers (host "
				 "rebooted, or rebound outside gpupass); VM %s keeps its claim: "
				 "gpupass vm start %s takes it again", rec.address, vm, vm);
		else
			snprintf(line, sizeof(line), "%s: was given back to the host outside "
				 "gpupass; forgot its dismount", rec.address);
		(void)report(rep, ctx, line);
		break;
	}
out:
	gp_bind_lock_release(lock);
	return r;
}

int gp_bind_reconcile(struct gp_ctx *ctx, struct gp_state *st,
		      const struct gp_bind_opts *opts, struct gp_strv *rep)
{
	struct gp_strv addrs = { 0 };
	int first = 0, r;

	(void)opts;
	r = gp_state_gpu_list(st, &addrs);
	if (r < 0)
		return r;
	for (size_t i = 0; i < addrs.n; i++) {
		r = reconcile_one(ctx, st, addrs.v[i], rep);
		if (r < 0 && !first)
			first = r;
	}
	gp_strv_clear(&addrs);
	return first;
}
