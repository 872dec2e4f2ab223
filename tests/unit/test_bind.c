/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dismount and mount against fake trees whose kernel is modelled by the
 * sysfs write hook (kmodel.c): whole-group binding, refusals that change
 * nothing, --force rules, a crash between two binds, two dismounts at once.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakesys.h"
#include "host/bind.h"
#include "host/context.h"
#include "host/state.h"
#include "host/survey.h"
#include "kmodel.h"

struct fx {
	struct gp_fake *fake;
	struct kmodel km;
	struct gp_kernel_ops kops;
	char state_dir[64];
	char db[128];
	struct gp_ctx *ctx;
	struct gp_state *st;
	char *tree0, *db0; /* snapshots before the operation */
};

static int fx_open(struct fx *fx)
{
	if (gp_ctx_new(gp_fake_root(fx->fake), fx->state_dir, &fx->ctx) < 0)
		return -1;
	gp_sysfs_set_write_hook(fx->ctx->sys, kmodel_hook, &fx->km);
	return gp_state_open(fx->ctx, &fx->st) < 0 ? -1 : 0;
}

static struct fx *fx_new(const char *tree, bool vfio_loaded)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(gp_fake_build(tree, NULL, &fx->fake), 0);
	assert_int_equal(kmodel_init(&fx->km, fx->fake, vfio_loaded), 0);
	fx->kops.load_module = kmodel_load;
	fx->kops.data = &fx->km;
	strcpy(fx->state_dir, "/tmp/gp-bind-state-XXXXXX");
	assert_non_null(mkdtemp(fx->state_dir));
	snprintf(fx->db, sizeof(fx->db), "%s/%s", fx->state_dir, GP_STATE_DB_NAME);
	assert_int_equal(fx_open(fx), 0);
	return fx;
}

static void snapshot(struct fx *fx)
{
	free(fx->tree0);
	free(fx->db0);
	fx->tree0 = tree_snapshot(gp_fake_root(fx->fake));
	fx->db0 = db_snapshot(fx->db);
}

static void assert_unchanged(struct fx *fx)
{
	char *t = tree_snapshot(gp_fake_root(fx->fake)), *d = db_snapshot(fx->db);

	assert_string_equal(t, fx->tree0);
	assert_string_equal(d, fx->db0);
	free(t);
	free(d);
}

static void fx_free(struct fx *fx)
{
	char cmd[128];

	gp_state_close(fx->st);
	gp_ctx_free(fx->ctx);
	kmodel_clear(&fx->km);
	gp_fake_free(fx->fake, true);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->state_dir);
	assert_int_equal(system(cmd), 0);
	free(fx->tree0);
	free(fx->db0);
	free(fx);
}

static void assert_driver(struct fx *fx, const char *addr, const char *want)
{
	char drv[64];

	kmodel_driver(&fx->km, addr, drv, sizeof(drv));
	assert_string_equal(drv, want);
}

/* The workstation's GPU and its HDMI audio are back on their host drivers
 * and gpupass has no record of them. */
static void assert_workstation_on_host(struct fx *fx)
{
	struct gp_state_gpu rec;

	assert_driver(fx, "0000:01:00.0", "nouveau");
	assert_driver(fx, "0000:01:00.1", "snd_hda_intel");
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), -ENOENT);
}

static bool exists(struct fx *fx, const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", gp_fake_root(fx->fake), rel);
	return access(p, F_OK) == 0;
}

static int dismount(struct fx *fx, const char *q, bool force, bool *did, struct gp_why *why)
{
	struct gp_bind_opts o = { .force = force, .kops = &fx->kops };

	return gp_bind_dismount(fx->ctx, fx->st, q, &o, NULL, did, why);
}

/* The workstation GPU is the boot VGA: a warning that needs --force. */
static void test_warning_needs_force(void **state)
{
	struct fx *fx = fx_new("workstation", true);
	struct gp_why why = { "" };
	bool did = true;

	(void)state;
	snapshot(fx);
	assert_int_equal(dismount(fx, "0000:01:00.0", false, &did, &why), -EACCES);
	assert_false(did);
	assert_non_null(strstr(why.msg, "0000:01:00.0"));
	assert_non_null(strstr(why.msg, "boot-vga"));
	assert_non_null(strstr(why.msg, "--force"));
	assert_int_equal(fx->km.writes.n, 0);
	assert_unchanged(fx);
	fx_free(fx);
}

/* With --force the whole group moves: the GPU and its HDMI audio. */
static void test_whole_group_and_mount(void **state)
{
	struct fx *fx = fx_new("workstation", true);
	struct gp_state_gpu rec;
	struct gp_why why = { "" };
	char addr[GP_ADDR_LEN];
	bool did = false;

	(void)state;
	assert_int_equal(dismount(fx, "0000:01:00.0", true, &did, &why), 0);
	assert_true(did);
	assert_driver(fx, "0000:01:00.0", "vfio-pci");
	assert_driver(fx, "0000:01:00.1", "vfio-pci");
	assert_driver(fx, "0000:00:01.0", "pcieport"); /* the root port stays */
	assert_true(exists(fx, "dev/vfio/1"));
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.1", &rec), 0);
	assert_string_equal(rec.address, "0000:01:00.0");
	assert_int_equal(rec.state, GP_GPU_DISMOUNTED);
	assert_int_equal(rec.iommu_group, 1);
	assert_int_equal(rec.nfn, 2);
	assert_string_equal(rec.fn[0].original_driver, "nouveau");
	assert_string_equal(rec.fn[1].original_driver, "snd_hda_intel");
	assert_int_equal(rec.fn[1].vendor_id, 0x10de);
	assert_int_equal(rec.fn[1].device_id, 0x10f8);

	/* Idempotent: nothing written the second time. */
	gp_strv_clear(&fx->km.writes);
	assert_int_equal(dismount(fx, "0000:01:00.0", true, &did, &why), 0);
	assert_false(did);
	assert_int_equal(fx->km.writes.n, 0);

	/* Back to the original drivers, driver_override cleared. */
	assert_int_equal(gp_bind_mount(fx->ctx, fx->st, "0000:01:00.0", NULL, addr, &did, &why), 0);
	assert_true(did);
	assert_string_equal(addr, "0000:01:00.0");
	assert_driver(fx, "0000:01:00.0", "nouveau");
	assert_driver(fx, "0000:01:00.1", "snd_hda_intel");
	assert_false(exists(fx, "dev/vfio/1"));
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), -ENOENT);
	{
		char *t = tree_snapshot(gp_fake_root(fx->fake));

		assert_null(strstr(t, "driver_override = vfio-pci"));
		free(t);
	}
	/* Mount again: nothing to do. */
	assert_int_equal(gp_bind_mount(fx->ctx, fx->st, "0000:01:00.0", NULL, NULL, &did, &why), 0);
	assert_false(did);
	fx_free(fx);
}

/* A group shared with a NIC is never taken, --force or not. */
static void test_shared_group_refused(void **state)
{
	struct fx *fx = fx_new("group-nic", true);
	struct gp_why why = { "" };
	bool did;

	(void)state;
	snapshot(fx);
	assert_int_equal(dismount(fx, "0000:03:00.0", true, &did, &why), -EPERM);
	assert_non_null(strstr(why.msg, "0000:03:00.0"));
	assert_non_null(strstr(why.msg, "0000:04:00.0"));
	assert_non_null(strstr(why.msg, "group-shared"));
	assert_int_equal(fx->km.writes.n, 0);
	assert_unchanged(fx);
	fx_free(fx);
}

/* The warnings that need --force, each on the tree made for it. */
static void test_force_rules(void **state)
{
	static const struct {
		const char *tree, *gpu, *code;
	} cases[] = {
		{ "in-use", "0000:3b:00.0", "in-use" },
		{ "no-reset-no-msi", "0000:00:02.0", "no-reset" },
		{ "reset-quirk", NULL, "reset-quirk" },
	};

	(void)state;
	assert_true(gp_bind_needs_force(GP_PROB_BOOT_VGA));
	assert_true(gp_bind_needs_force(GP_PROB_NO_RESET));
	assert_true(gp_bind_needs_force(GP_PROB_IN_USE));
	assert_false(gp_bind_needs_force(GP_PROB_GROUP_SHARED));
	assert_false(gp_bind_needs_force(GP_PROB_GROUP_COMPANION));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx *fx = fx_new(cases[i].tree, true);
		struct gp_survey *sv;
		const struct gp_survey_gpu *g;
		struct gp_why why = { "" };
		bool did;

		assert_int_equal(gp_survey_run(fx->ctx, NULL, &sv), 0);
		g = cases[i].gpu ? NULL : gp_survey_gpu(sv, 0);
		if (cases[i].gpu)
			assert_int_equal(gp_survey_find(sv, cases[i].gpu, &g, NULL), 0);
		snapshot(fx);
		assert_int_equal(gp_bind_dismount_gpu(fx->ctx, fx->st, sv, g,
				 &(struct gp_bind_opts){ .kops = &fx->kops }, &did, &why), -EACCES);
		assert_non_null(strstr(why.msg, cases[i].code));
		assert_non_null(strstr(why.msg, g->dev->address));
		assert_unchanged(fx);
		assert_int_equal(gp_bind_dismount_gpu(fx->ctx, fx->st, sv, g,
				 &(struct gp_bind_opts){ .kops = &fx->kops, .force = true }, &did, &why), 0);
		assert_true(did);
		assert_driver(fx, g->dev->address, "vfio-pci");
		gp_survey_free(sv);
		fx_free(fx);
	}
}

static void test_bad_queries(void **state)
{
	struct fx *fx = fx_new("two-nvidia", true);
	struct gp_why why = { "" };
	bool did;

	(void)state;
	snapshot(fx);
	assert_int_equal(dismount(fx, "0000:99:00.0", false, &did, &why), -ENOENT);
	assert_non_null(strstr(why.msg, "0000:99:00.0"));
	assert_int_equal(dismount(fx, "Radeon", false, &did, &why), -ENOENT);
	assert_int_equal(dismount(fx, "NVIDIA", false, &did, &why), -ENOTUNIQ);
	assert_non_null(strstr(why.msg, "0000:3b:00.0"));
	assert_non_null(strstr(why.msg, "0000:5e:00.0"));
	/* A bridge is not a GPU. */
	assert_int_equal(dismount(fx, "0000:3a:00.0", false, &did, &why), -ENOENT);
	assert_int_equal(gp_bind_mount(fx->ctx, fx->st, "nothing-like-this", NULL, NULL, &did, &why),
			 -ENOENT);
	assert_int_equal(fx->km.writes.n, 0);
	assert_unchanged(fx);
	/* A unique name substring works. */
	assert_int_equal(dismount(fx, "A100", false, &did, &why), 0);
	assert_true(did);
	assert_driver(fx, "0000:5e:00.0", "vfio-pci");
	assert_driver(fx, "0000:3b:00.0", "nvidia");
	fx_free(fx);
}

static void test_vfio_missing(void **state)
{
	struct gp_why why = { "" };
	struct fx *fx;
	bool did;

	(void)state;
	/* Not installed at all: refused by the survey's vfio-missing. */
	fx = fx_new("vfio-missing", false);
	snapshot(fx);
	assert_int_equal(dismount(fx, "0000:3b:00.0", false, &did, &why), -ENODEV);
	assert_non_null(strstr(why.msg, "0000:3b:00.0"));
	assert_non_null(strstr(why.msg, "vfio"));
	assert_int_equal(fx->km.loads, 0);
	assert_unchanged(fx);
	fx_free(fx);

	/* Available but loading fails: refused, nothing changed. */
	fx = fx_new("vfio-not-loaded", false);
	snapshot(fx);
	assert_int_equal(dismount(fx, "0000:3b:00.0", false, &did, &why), -ENODEV);
	assert_int_equal(fx->km.loads, 1);
	assert_non_null(strstr(why.msg, "modprobe vfio-pci"));
	assert_unchanged(fx);

	/* Loading works: the dismount goes on. */
	fx->km.load_ok = true;
	assert_int_equal(dismount(fx, "0000:3b:00.0", false, &did, &why), 0);
	assert_true(did);
	assert_int_equal(fx->km.loads, 2);
	assert_driver(fx, "0000:3b:00.0", "vfio-pci");
	fx_free(fx);
}

/* The kernel refuses the second function: the first goes back, no record. */
static void test_bind_failure_rolls_back(void **state)
{
	struct fx *fx = fx_new("workstation", true);
	struct gp_why why = { "" };
	bool did;

	(void)state;
	strcpy(fx->km.fail_vfio, "0000:01:00.1");
	assert_int_equal(dismount(fx, "0000:01:00.0", true, &did, &why), -EIO);
	assert_false(did);
	assert_non_null(strstr(why.msg, "0000:01:00.1"));
	assert_workstation_on_host(fx);
	fx_free(fx);
}

/* kill -9 between the two binds of a group, then the next run repairs. */
static void test_crash_then_reconcile(void **state)
{
	struct fx *fx = fx_new("workstation", true);
	struct gp_state_gpu rec;
	struct gp_strv report = { 0 };
	int status;
	pid_t pid;

	(void)state;
	/* The child must open its own database handle. */
	gp_state_close(fx->st);
	fx->st = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gp_state *st;
		struct gp_why why;
		bool did;

		fx->km.crash_at_vfio_bind = 1;
		if (gp_state_open(fx->ctx, &st) < 0)
			_exit(1);
		gp_bind_dismount(fx->ctx, st, "0000:01:00.0",
				 &(struct gp_bind_opts){ .force = true, .kops = &fx->kops },
				 NULL, &did, &why);
		_exit(0); /* not reached: the model exits 9 at the first bind */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 9);
	assert_int_equal(gp_state_open(fx->ctx, &fx->st), 0);

	/* Half done: one function on vfio-pci, the record says dismounting. */
	assert_driver(fx, "0000:01:00.0", "vfio-pci");
	assert_driver(fx, "0000:01:00.1", "snd_hda_intel");
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), 0);
	assert_int_equal(rec.state, GP_GPU_DISMOUNTING);

	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, &report), 0);
	assert_int_equal(report.n, 1);
	assert_non_null(strstr(report.v[0], "0000:01:00.0"));
	assert_non_null(strstr(report.v[0], "interrupted"));
	assert_driver(fx, "0000:01:00.0", "nouveau");
	assert_driver(fx, "0000:01:00.1", "snd_hda_intel");
	assert_false(exists(fx, "dev/vfio/1"));
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), -ENOENT);
	gp_strv_clear(&report);

	/* Nothing left to repair. */
	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, &report), 0);
	assert_int_equal(report.n, 0);
	fx_free(fx);
}

/* kill -9 in the middle of a mount: the next run finishes it. */
static void test_crash_in_mount(void **state)
{
	struct fx *fx = fx_new("workstation", true);
	struct gp_state_gpu rec;
	struct gp_strv report = { 0 };
	struct gp_why why;
	int status;
	bool did;
	pid_t pid;

	(void)state;
	assert_int_equal(dismount(fx, "0000:01:00.0", true, &did, &why), 0);
	gp_state_close(fx->st);
	fx->st = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gp_state *st;

		fx->km.binds = 0;
		fx->km.crash_at_bind = 1; /* right after the GPU is back on nouveau */
		if (gp_state_open(fx->ctx, &st) < 0)
			_exit(1);
		gp_bind_mount(fx->ctx, st, "0000:01:00.0", NULL, NULL, &did, &why);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 9);
	assert_int_equal(gp_state_open(fx->ctx, &fx->st), 0);
	assert_driver(fx, "0000:01:00.0", "nouveau");
	assert_driver(fx, "0000:01:00.1", "vfio-pci");
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), 0);
	assert_int_equal(rec.state, GP_GPU_MOUNTING);

	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, &report), 0);
	assert_int_equal(report.n, 1);
	assert_non_null(strstr(report.v[0], "finished an interrupted mount"));
	assert_workstation_on_host(fx);
	gp_strv_clear(&report);
	fx_free(fx);
}

/* A GPU given back by hand behind gpupass's back is forgotten. */
static void test_reconcile_rebound_outside(void **state)
{
	struct fx *fx = fx_new("server-t4", true);
	struct gp_state_gpu rec;
	struct gp_strv report = { 0 };
	struct gp_why why;
	bool did;
	char rel[256];

	(void)state;
	assert_int_equal(dismount(fx, "0000:3b:00.0", false, &did, &why), 0);
	/* echo 0000:3b:00.0 > .../vfio-pci/unbind; echo ... > nvidia/bind */
	snprintf(rel, sizeof(rel), "%s/driver", gp_fake_dev_dir(fx->fake, "0000:3b:00.0"));
	assert_int_equal(gp_fake_unlink(fx->fake, rel), 0);
	assert_int_equal(gp_fake_unlink(fx->fake, "sys/bus/pci/drivers/vfio-pci/0000:3b:00.0"), 0);
	assert_int_equal(kmodel_bind(&fx->km, "0000:3b:00.0", "nvidia"), 0);
	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, &report), 0);
	assert_int_equal(report.n, 1);
	assert_non_null(strstr(report.v[0], "outside gpupass"));
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:3b:00.0", &rec), -ENOENT);
	gp_strv_clear(&report);
	fx_free(fx);
}

/* After a host reboot (a persistent state directory) the kernel has the
 * GPUs on their host drivers again: the records follow the kernel once,
 * the VM's claim stays (vm start takes the GPU again), and the next
 * reconcile has nothing to say. A group only half back is kept for mount. */
static void test_reconcile_after_reboot(void **state)
{
	struct fx *fx = fx_new("workstation", true);
	struct gp_state_gpu rec;
	struct gp_vm_config cfg;
	struct gp_strv report = { 0 };
	struct gp_why why;
	char vm[GP_NAME_LEN];
	bool did;

	(void)state;
	assert_int_equal(dismount(fx, "0000:01:00.0", true, &did, &why), 0);
	gp_vm_config_init(&cfg, "vm1");
	assert_int_equal(gp_state_vm_add(fx->st, &cfg), 0);
	assert_int_equal(gp_state_assign(fx->st, "0000:01:00.0", "vm1"), 0);
	/* Only the audio function back on its driver: kept, mount says how. */
	assert_int_equal(kmodel_hook(&fx->km, fx->ctx->sys, "/sys/bus/pci/drivers/vfio-pci/unbind",
				     "0000:01:00.1"), 0);
	assert_int_equal(kmodel_bind(&fx->km, "0000:01:00.1", "snd_hda_intel"), 0);
	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, &report), 0);
	assert_int_equal(report.n, 1);
	assert_non_null(strstr(report.v[0], "gpupass mount 0000:01:00.0"));
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), 0);
	gp_strv_clear(&report);
	/* The whole group back (as after a reboot). */
	assert_int_equal(kmodel_hook(&fx->km, fx->ctx->sys, "/sys/bus/pci/drivers/vfio-pci/unbind",
				     "0000:01:00.0"), 0);
	assert_int_equal(kmodel_bind(&fx->km, "0000:01:00.0", "nouveau"), 0);
	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, &report), 0);
	assert_int_equal(report.n, 1);
	assert_non_null(strstr(report.v[0], "vm start vm1"));
	assert_workstation_on_host(fx);
	assert_int_equal(gp_state_gpu_owner(fx->st, "0000:01:00.0", vm, sizeof(vm)), 0);
	assert_string_equal(vm, "vm1");
	gp_strv_clear(&report);
	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, &report), 0);
	assert_int_equal(report.n, 0);
	fx_free(fx);
}

/* Mount refused while a VM holds the GPU. */
static void test_mount_refused_when_held(void **state)
{
	struct fx *fx = fx_new("server-t4", true);
	struct gp_vm_config cfg;
	struct gp_why why = { "" };
	bool did;

	(void)state;
	assert_int_equal(dismount(fx, "0000:3b:00.0", false, &did, &why), 0);
	gp_vm_config_init(&cfg, "vm1");
	assert_int_equal(gp_state_vm_add(fx->st, &cfg), 0);
	assert_int_equal(gp_state_assign(fx->st, "0000:3b:00.0", "vm1"), 0);
	snapshot(fx);
	assert_int_equal(gp_bind_mount(fx->ctx, fx->st, "0000:3b:00.0", NULL, NULL, &did, &why),
			 -EBUSY);
	assert_non_null(strstr(why.msg, "0000:3b:00.0"));
	assert_non_null(strstr(why.msg, "vm1"));
	assert_unchanged(fx);
	fx_free(fx);
}

/* A GPU someone bound to vfio-pci by hand: recorded with an unknown
 * original driver; mount lets the kernel pick the driver. */
static void test_dismounted_by_hand(void **state)
{
	struct fx *fx = fx_new("already-dismounted", true);
	struct gp_state_gpu rec;
	struct gp_why why = { "" };
	bool did = true;

	(void)state;
	assert_driver(fx, "0000:3b:00.0", "vfio-pci");
	assert_int_equal(dismount(fx, "0000:3b:00.0", false, &did, &why), 0);
	assert_true(did); /* recorded now */
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:3b:00.0", &rec), 0);
	assert_string_equal(rec.fn[0].original_driver, GP_DRIVER_UNKNOWN);
	assert_true(rec.fn[0].on_vfio);
	/* The driver the kernel would match. */
	assert_int_equal(gp_strv_push(&fx->km.natural, "0000:3b:00.0=nvidia"), 0);
	assert_int_equal(gp_fake_mkdir(fx->fake, "sys/bus/pci/drivers/nvidia"), 0);
	assert_int_equal(gp_bind_mount(fx->ctx, fx->st, "0000:3b:00.0", NULL, NULL, &did, &why), 0);
	assert_true(did);
	assert_driver(fx, "0000:3b:00.0", "nvidia");
	fx_free(fx);
}

struct racer {
	struct fx *fx; /* shared tree and state dir */
	struct gp_ctx *ctx;
	struct gp_state *st;
	struct kmodel km;
	struct gp_kernel_ops kops;
	int r;
	bool did;
	struct gp_why why;
	pthread_barrier_t *barrier;
};

/* A half-done give-back of the workstation GPU: one line naming the
 * function and @word (the driver or its fix) and how to finish; the
 * record stays as an unfinished mount with its original drivers. */
static void assert_left_for_mount(struct fx *fx, const struct gp_why *why, const char *word)
{
	struct gp_state_gpu rec;

	assert_non_null(strstr(why->msg, "0000:01:00.1"));
	assert_non_null(strstr(why->msg, word));
	assert_non_null(strstr(why->msg, "gpupass mount 0000:01:00.0"));
	assert_null(strchr(why->msg, '\n'));
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), 0);
	assert_int_equal(rec.state, GP_GPU_MOUNTING);
	assert_string_equal(rec.fn[0].original_driver, "nouveau");
	assert_string_equal(rec.fn[1].original_driver, "snd_hda_intel");
}

/* The kernel refuses vfio-pci for the audio function AND the GPU's own
 * driver refuses it back: the record stays (as an unfinished mount), the
 * message says how to finish, and mount finishes once the driver works. */
static void test_rollback_failure_keeps_record(void **state)
{
	struct fx *fx = fx_new("workstation", true);
	struct gp_state_gpu rec;
	struct gp_strv report = { 0 };
	struct gp_why why = { "" };
	bool did;

	(void)state;
	strcpy(fx->km.fail_vfio, "0000:01:00.1");
	strcpy(fx->km.fail_driver, "nouveau");
	assert_int_equal(dismount(fx, "0000:01:00.0", true, &did, &why), -EIO);
	assert_false(did);
	assert_driver(fx, "0000:01:00.0", "");
	assert_left_for_mount(fx, &why, "nouveau");

	/* Still broken: reconcile reports it and keeps the record. */
	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, &report), -EIO);
	assert_int_equal(report.n, 1);
	assert_non_null(strstr(report.v[0], "still not done"));
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), 0);
	gp_strv_clear(&report);

	/* Dismounting again meanwhile keeps the drivers it came from, not
	 * "none" for the function left without a driver. */
	fx->km.fail_vfio[0] = '\0';
	assert_int_equal(dismount(fx, "0000:01:00.0", true, &did, &why), 0);
	assert_driver(fx, "0000:01:00.0", "vfio-pci");
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &rec), 0);
	assert_string_equal(rec.fn[0].original_driver, "nouveau");
	assert_string_equal(rec.fn[1].original_driver, "snd_hda_intel");

	/* The driver works again: mount finishes the job. */
	fx->km.fail_driver[0] = '\0';
	assert_int_equal(gp_bind_mount(fx->ctx, fx->st, "0000:01:00.0", NULL, NULL, &did, &why), 0);
	assert_true(did);
	assert_workstation_on_host(fx);
	fx_free(fx);
}

/* mount when the original driver does not take the device back: -EIO,
 * one line naming the device, the driver and the fix; the record and the
 * VM's claim stay so that mount can be run again. */
static void test_mount_driver_does_not_rebind(void **state)
{
	struct fx *fx = fx_new("workstation", true);
	struct gp_vm_config cfg;
	struct gp_why why = { "" };
	char vm[GP_NAME_LEN];
	bool did;

	(void)state;
	assert_int_equal(dismount(fx, "0000:01:00.0", true, &did, &why), 0);
	gp_vm_config_init(&cfg, "vm1");
	assert_int_equal(gp_state_vm_add(fx->st, &cfg), 0);
	assert_int_equal(gp_state_assign(fx->st, "0000:01:00.0", "vm1"), 0);
	strcpy(fx->km.fail_driver, "snd_hda_intel");
	assert_int_equal(gp_bind_mount(fx->ctx, fx->st, "0000:01:00.0",
				       &(struct gp_bind_opts){ .allow_held = true }, NULL, &did,
				       &why), -EIO);
	assert_false(did);
	assert_driver(fx, "0000:01:00.0", "nouveau");
	assert_left_for_mount(fx, &why, "modprobe snd_hda_intel");
	/* The next command's reconcile keeps the VM's claim. */
	assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, NULL), -EIO);
	assert_int_equal(gp_state_gpu_owner(fx->st, "0000:01:00.0", vm, sizeof(vm)), 0);
	assert_string_equal(vm, "vm1");
	fx->km.fail_driver[0] = '\0';
	assert_int_equal(gp_bind_mount(fx->ctx, fx->st, "0000:01:00.0",
				       &(struct gp_bind_opts){ .allow_held = true }, NULL, &did,
				       &why), 0);
	assert_driver(fx, "0000:01:00.1", "snd_hda_intel");
	assert_int_equal(gp_state_gpu_owner(fx->st, "0000:01:00.0", vm, sizeof(vm)), 0);
	fx_free(fx);
}

/* A device joins the GPU's IOMMU group between the survey and the lock
 * (hot-plug): the dismount must not go on with the old picture. */
static void test_group_changed_under_lock(void **state)
{
	struct fx *fx = fx_new("server-t4", true);
	struct gp_survey *sv;
	const struct gp_survey_gpu *g;
	struct gp_why why = { "" };
	char rel[128];
	bool did = true;

	(void)state;
	assert_int_equal(gp_survey_run(fx->ctx, NULL, &sv), 0);
	assert_int_equal(gp_survey_find(sv, "0000:3b:00.0", &g, NULL), 0);
	snprintf(rel, sizeof(rel), "sys/kernel/iommu_groups/%d/devices/0000:3b:00.5",
		 g->dev->iommu_group);
	assert_int_equal(gp_fake_symlink(fx->fake, "/sys/devices/pci0000:3a/0000:3b:00.5", rel), 0);
	snapshot(fx);
	assert_int_equal(gp_bind_dismount_gpu(fx->ctx, fx->st, sv, g,
					      &(struct gp_bind_opts){ .kops = &fx->kops },
					      &did, &why), -EAGAIN);
	assert_false(did);
	assert_non_null(strstr(why.msg, "0000:3b:00.5"));
	assert_non_null(strstr(why.msg, "0000:3b:00.0"));
	assert_int_equal(fx->km.writes.n, 0);
	assert_unchanged(fx);
	gp_survey_free(sv);
	fx_free(fx);
}

static void db_exec(struct fx *fx, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* A damaged or edited database: addresses and driver names that would
 * lead sysfs writes or lock files elsewhere are refused, nothing is
 * written, and a healthy record next to them still works. */
static void test_damaged_records(void **state)
{
	static const char *const bad[] = {
		"UPDATE function SET original_driver = '../../../../tmp/x' "
		"WHERE address = '0000:3b:00.0'",
		"UPDATE function SET address = '0000:3b:00.0/../../../../tmp' "
		"WHERE address = '0000:3b:00.0'",
		"UPDATE function SET original_driver = '..' WHERE address = '0000:3b:00.0'",
		"PRAGMA foreign_keys = OFF; UPDATE gpu SET address = '../x' "
		"WHERE address = '0000:3b:00.0'; UPDATE function SET gpu = '../x'",
		"PRAGMA ignore_check_constraints = ON; UPDATE gpu SET state = 7",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fx *fx = fx_new("server-t4", true);
		struct gp_state_gpu rec;
		struct gp_why why = { "" };
		struct gp_strv addrs = { 0 };
		bool did;

		assert_int_equal(dismount(fx, "0000:3b:00.0", false, &did, &why), 0);
		gp_strv_clear(&fx->km.writes);
		db_exec(fx, bad[i]);
		snapshot(fx);
		assert_int_equal(gp_state_gpu_list(fx->st, &addrs), 0);
		assert_int_equal(addrs.n, 1);
		assert_int_equal(gp_state_gpu_get(fx->st, addrs.v[0], &rec), -EBADMSG);
		assert_int_equal(gp_bind_reconcile(fx->ctx, fx->st, NULL, NULL), -EBADMSG);
		assert_true(gp_bind_mount(fx->ctx, fx->st, addrs.v[0], NULL, NULL, &did, &why) < 0);
		assert_int_equal(fx->km.writes.n, 0);
		assert_unchanged(fx);
		gp_strv_clear(&addrs);
		fx_free(fx);
	}
}

static void *race(void *arg)
{
	struct racer *rc = arg;
	struct gp_bind_opts o = { .kops = &rc->kops };

	pthread_barrier_wait(rc->barrier);
	rc->r = gp_bind_dismount(rc->ctx, rc->st, "0000:3b:00.0", &o, NULL, &rc->did, &rc->why);
	return NULL;
}

/* Two dismounts of one GPU at once: exactly one does it. */
static void test_concurrent_dismounts(void **state)
{
	struct fx *fx = fx_new("server-t4", true);
	struct racer rc[2];
	pthread_barrier_t barrier;
	pthread_t th[2];
	int wins = 0, busy = 0;

	(void)state;
	pthread_barrier_init(&barrier, NULL, 2);
	for (int i = 0; i < 2; i++) {
		memset(&rc[i], 0, sizeof(rc[i]));
		rc[i].fx = fx;
		rc[i].barrier = &barrier;
		assert_int_equal(kmodel_init(&rc[i].km, fx->fake, false), 0);
		rc[i].km.sleep_first_ms = 300; /* hold the locks while the other tries */
		rc[i].kops.load_module = kmodel_load;
		rc[i].kops.data = &rc[i].km;
		assert_int_equal(gp_ctx_new(gp_fake_root(fx->fake), fx->state_dir, &rc[i].ctx), 0);
		gp_sysfs_set_write_hook(rc[i].ctx->sys, kmodel_hook, &rc[i].km);
		assert_int_equal(gp_state_open(rc[i].ctx, &rc[i].st), 0);
	}
	/* The natural drivers were recorded before the race started. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race, &rc[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++) {
		if (rc[i].r == 0 && rc[i].did)
			wins++;
		else if (rc[i].r == -EBUSY) {
			char want[64];

			/* The loser says who holds it (both are this process). */
			snprintf(want, sizeof(want), "another gpupass (pid %ld)", (long)getpid());
			if (!strstr(rc[i].why.msg, want))
				fail_msg("the loser's message names no holder: %s", rc[i].why.msg);
			busy++;
		}
		gp_state_close(rc[i].st);
		gp_ctx_free(rc[i].ctx);
		kmodel_clear(&rc[i].km);
	}
	assert_int_equal(wins, 1);
	assert_int_equal(busy, 1);
	assert_driver(fx, "0000:3b:00.0", "vfio-pci");
	pthread_barrier_destroy(&barrier);
	fx_free(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_warning_needs_force),
		cmocka_unit_test(test_whole_group_and_mount),
		cmocka_unit_test(test_shared_group_refused),
		cmocka_unit_test(test_force_rules),
		cmocka_unit_test(test_bad_queries),
		cmocka_unit_test(test_vfio_missing),
		cmocka_unit_test(test_bind_failure_rolls_back),
		cmocka_unit_test(test_crash_then_reconcile),
		cmocka_unit_test(test_crash_in_mount),
		cmocka_unit_test(test_reconcile_rebound_outside),
		cmocka_unit_test(test_reconcile_after_reboot),
		cmocka_unit_test(test_mount_refused_when_held),
		cmocka_unit_test(test_dismounted_by_hand),
		cmocka_unit_test(test_concurrent_dismounts),
		cmocka_unit_test(test_rollback_failure_keeps_record),
		cmocka_unit_test(test_mount_driver_does_not_rebind),
		cmocka_unit_test(test_group_changed_under_lock),
		cmocka_unit_test(test_damaged_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
