/* SPDX-License-Identifier: Apache-2.0 */
/* The survey: each problem code fires on its fixture and not on the healthy
 * host; readiness, host facts, JSON contract, bad input, and no writes. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fakesys.h"
#include "host/context.h"
#include "host/quirks.h"
#include "host/survey.h"

struct fx {
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_survey *survey;
};

static struct fx *run(const char *name)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(gp_fake_build(name, NULL, &fx->fake), 0);
	assert_int_equal(gp_ctx_new(gp_fake_root(fx->fake), NULL, &fx->ctx), 0);
	gp_ctx_set_log(fx->ctx, NULL, NULL, GP_LOG_ERR);
	assert_int_equal(gp_survey_run(fx->ctx, NULL, &fx->survey), 0);
	return fx;
}

static void done(struct fx *fx)
{
	gp_survey_free(fx->survey);
	gp_ctx_free(fx->ctx);
	gp_fake_free(fx->fake, true);
	free(fx);
}

static const struct gp_survey_gpu *gpu_at(const struct fx *fx, const char *addr)
{
	const struct gp_survey_gpu *g = NULL;

	assert_int_equal(gp_survey_find(fx->survey, addr, &g, NULL), 0);
	return g;
}

static const struct gp_problem *find_problem(const struct gp_survey_gpu *g, enum gp_method m,
					     enum gp_problem_code c)
{
	for (size_t i = 0; i < g->methods[m].n_problems; i++)
		if (g->methods[m].problems[i].code == c)
			return &g->methods[m].problems[i];
	return NULL;
}

/* Every code, the fixture made for it, the GPU and method it fires on, and
 * whether the method is still ready (only severity error blocks). */
static const struct {
	enum gp_problem_code code;
	const char *fixture;
	const char *gpu;
	enum gp_method method;
	const char *name;
	enum gp_severity sev;
	bool ready;
	const char *in_message; /* a fact the message must name */
} cases[] = {
	{ GP_PROB_IOMMU_DISABLED, "iommu-off", "0000:01:00.0", GP_METHOD_DDA, "iommu-disabled",
	  GP_SEV_ERROR, false, "IOMMU is off" },
	{ GP_PROB_NO_IOMMU_GROUP, "no-iommu-group", "0000:3b:00.0", GP_METHOD_DDA,
	  "no-iommu-group", GP_SEV_ERROR, false, "0000:3b:00.0" },
	{ GP_PROB_GROUP_SHARED, "group-nic", "0000:03:00.0", GP_METHOD_DDA, "group-shared",
	  GP_SEV_ERROR, false, "0000:04:00.0 (network controller" },
	{ GP_PROB_GROUP_COMPANION, "workstation", "0000:01:00.0", GP_METHOD_DDA,
	  "group-companion", GP_SEV_INFO, true, "0000:01:00.1 (audio device" },
	{ GP_PROB_RMRR, "rmrr", "0000:3b:00.0", GP_METHOD_DDA, "rmrr", GP_SEV_ERROR, false,
	  "0x3e2e0000-0x3e2fffff" },
	{ GP_PROB_NO_ACS, "no-acs", "0000:3b:00.0", GP_METHOD_DDA, "no-acs", GP_SEV_WARNING,
	  true, "0000:3a:00.0" },
	{ GP_PROB_NO_RESET, "no-reset-no-msi", "0000:00:02.0", GP_METHOD_DDA, "no-reset",
	  GP_SEV_WARNING, true, "no reset method" },
	{ GP_PROB_RESET_QUIRK, "reset-quirk", "0000:3b:00.0", GP_METHOD_DDA, "reset-quirk",
	  GP_SEV_WARNING, true, "Vega 10" },
	{ GP_PROB_NO_MSI, "no-reset-no-msi", "0000:00:02.0", GP_METHOD_DDA, "no-msi",
	  GP_SEV_WARNING, true, "neither MSI nor MSI-X" },
	{ GP_PROB_BOOT_VGA, "workstation", "0000:01:00.0", GP_METHOD_DDA, "boot-vga",
	  GP_SEV_WARNING, true, "boot VGA" },
	{ GP_PROB_IN_USE, "in-use", "0000:3b:00.0", GP_METHOD_DDA, "in-use", GP_SEV_WARNING,
	  true, "1234 (Xorg) /dev/dri/card1" },
	{ GP_PROB_VFIO_NOT_LOADED, "vfio-not-loaded", "0000:3b:00.0", GP_METHOD_DDA,
	  "vfio-not-loaded", GP_SEV_INFO, true, "6.1.0-18-amd64" },
	{ GP_PROB_VFIO_MISSING, "vfio-missing", "0000:3b:00.0", GP_METHOD_DDA, "vfio-missing",
	  GP_SEV_ERROR, false, "/lib/modules/6.1.0-18-amd64" },
	{ GP_PROB_LARGE_BAR, "big-bar", "0000:3b:00.0", GP_METHOD_DDA, "large-bar", GP_SEV_INFO,
	  true, "more than QEMU's default 32 GiB" },
	{ GP_PROB_ALREADY_DISMOUNTED, "already-dismounted", "0000:3b:00.0", GP_METHOD_DDA,
	  "already-dismounted", GP_SEV_INFO, true, "vfio-pci" },
	{ GP_PROB_SYSFS_UNREADABLE, "broken-config", "0000:3b:00.0", GP_METHOD_DDA,
	  "sysfs-unreadable", GP_SEV_ERROR, false,
	  "/sys/bus/pci/devices/0000:3b:00.0/config is 12 bytes" },
	{ GP_PROB_NO_HOST_DRIVER, "no-host-driver", "0000:3b:00.0", GP_METHOD_PV,
	  "no-host-driver", GP_SEV_ERROR, false, "no driver" },
};

static void test_codes_fire(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx *fx = run(cases[i].fixture);
		const struct gp_survey_gpu *g = gpu_at(fx, cases[i].gpu);
		const struct gp_problem *p = find_problem(g, cases[i].method, cases[i].code);

		print_message("# %s on %s\n", cases[i].name, cases[i].fixture);
		if (!p) {
			fail_msg("%s does not fire on %s", cases[i].name, cases[i].fixture);
			return; /* fail_msg does not return */
		}
		assert_string_equal(gp_problem_code_name(p->code), cases[i].name);
		assert_int_equal(p->severity, cases[i].sev);
		assert_int_equal(gp_problem_code_severity(p->code), cases[i].sev);
		assert_non_null(strstr(p->message, cases[i].in_message));
		assert_true(strlen(p->fix) > 20);
		assert_int_equal(g->methods[cases[i].method].ready, cases[i].ready);
		assert_true(gp_survey_gpu_has(g, cases[i].method, cases[i].code));
		done(fx);
	}
}

/* The healthy server: no problem of any code, both methods ready. */
static void test_healthy(void **state)
{
	struct fx *fx = run("server-t4");
	const struct gp_survey_gpu *g;
	const struct gp_survey_host *h = gp_survey_host(fx->survey);

	(void)state;
	assert_int_equal(gp_survey_gpu_count(fx->survey), 1);
	g = gp_survey_gpu(fx->survey, 0);
	assert_string_equal(g->dev->address, "0000:3b:00.0");
	for (int c = 0; c < GP_PROB__COUNT; c++) {
		assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, (enum gp_problem_code)c));
		assert_false(gp_survey_gpu_has(g, GP_METHOD_PV, (enum gp_problem_code)c));
	}
	assert_true(g->methods[GP_METHOD_DDA].ready);
	assert_true(g->methods[GP_METHOD_PV].ready);
	assert_null(gp_survey_gpu_top_problem(g));
	assert_true(h->iommu_enabled);
	assert_int_equal(h->iommu_groups, 4);
	assert_int_equal(h->vfio_pci, GP_VFIO_LOADED);
	assert_string_equal(h->kernel, "6.1.0-18-amd64");
	assert_int_equal(h->pci_devices, 4);
	/* Every check passed, and the detail view has them all. */
	assert_true(g->n_checks >= 12);
	for (size_t i = 0; i < g->n_checks; i++)
		assert_int_equal(g->checks[i].status, GP_CHECK_PASS);
	done(fx);
}

/* Codes must not fire where their condition does not hold, beyond the
 * healthy host: the companion audio is not "shared", a relaxable RMRR is
 * not "rmrr", another GPU's holder is not "in-use" here. */
static void test_no_false_alarms(void **state)
{
	struct fx *fx;
	const struct gp_survey_gpu *g;

	(void)state;
	fx = run("workstation");
	g = gpu_at(fx, "0000:01:00.0");
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_GROUP_SHARED));
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_NO_ACS));
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_IN_USE));
	assert_true(g->methods[GP_METHOD_DDA].ready);
	/* Sorted: the warning before the info. */
	assert_int_equal(g->methods[GP_METHOD_DDA].problems[0].code, GP_PROB_BOOT_VGA);
	assert_int_equal(gp_survey_gpu_top_problem(g)->code, GP_PROB_BOOT_VGA);
	done(fx);

	fx = run("sriov-igpu");
	g = gpu_at(fx, "0000:00:02.0");
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_RMRR));
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_NO_ACS));
	done(fx);

	fx = run("in-use");
	g = gpu_at(fx, "0000:3b:00.0");
	assert_int_equal(g->holders.n, 2);
	assert_string_equal(g->holders.v[0], "1234 (Xorg) /dev/dri/card1");
	assert_string_equal(g->holders.v[1], "1234 (Xorg) /dev/dri/renderD129");
	g = gpu_at(fx, "0000:00:02.0");
	assert_int_equal(g->holders.n, 1);
	assert_string_equal(g->holders.v[0], "2345 (weston) /dev/dri/card0");
	done(fx);

	/* With the IOMMU off, ACS is not judged (the kernel leaves it off). */
	fx = run("iommu-off");
	g = gpu_at(fx, "0000:01:00.0");
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_NO_ACS));
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_NO_IOMMU_GROUP));
	assert_false(gp_survey_host(fx->survey)->iommu_enabled);
	assert_int_equal(gp_survey_host(fx->survey)->iommu_groups, 0);
	done(fx);

	fx = run("already-dismounted");
	g = gpu_at(fx, "0000:3b:00.0");
	assert_true(g->methods[GP_METHOD_DDA].ready);
	assert_false(g->methods[GP_METHOD_PV].ready);
	done(fx);
}

/* NVIDIA nodes: only /dev/nvidiaN with this GPU's minor counts; the shared
 * control nodes do not. */
static void test_in_use_nvidia(void **state)
{
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_survey *s;
	const struct gp_survey_gpu *g;

	(void)state;
	assert_int_equal(gp_fake_build("server-t4", NULL, &fake), 0);
	assert_int_equal(gp_fake_printf(fake, "proc/driver/nvidia/gpus/0000:3b:00.0/information",
					"Model: \t\t Tesla T4\nIRQ:   \t\t 140\n"
					"Device Minor: \t 1\nBus Location: \t 0000:3b:00.0\n"), 0);
	assert_int_equal(gp_fake_holder(fake, 10, "other-job", 5, "/dev/nvidia0"), 0);
	assert_int_equal(gp_fake_holder(fake, 11, "python3", 6, "/dev/nvidia1"), 0);
	assert_int_equal(gp_fake_holder(fake, 12, "nvidia-smi", 3, "/dev/nvidiactl"), 0);
	assert_int_equal(gp_ctx_new(gp_fake_root(fake), NULL, &ctx), 0);
	assert_int_equal(gp_survey_run(ctx, NULL, &s), 0);
	g = gp_survey_gpu(s, 0);
	assert_int_equal(g->holders.n, 1);
	assert_string_equal(g->holders.v[0], "11 (python3) /dev/nvidia1");
	assert_true(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_IN_USE));
	gp_survey_free(s);
	gp_ctx_free(ctx);
	gp_fake_free(fake, true);
}

static struct gp_survey *survey_of(struct gp_fake *fake, struct gp_ctx **ctx)
{
	struct gp_survey *s = NULL;

	assert_int_equal(gp_ctx_new(gp_fake_root(fake), NULL, ctx), 0);
	gp_ctx_set_log(*ctx, NULL, NULL, GP_LOG_ERR);
	assert_int_equal(gp_survey_run(*ctx, NULL, &s), 0);
	return s;
}

static const struct gp_check *check_named(const struct gp_survey_gpu *g, const char *name)
{
	for (size_t i = 0; i < g->n_checks; i++)
		if (strcmp(g->checks[i].name, name) == 0)
			return &g->checks[i];
	fail_msg("no check named %s", name);
	return NULL;
}

/* What a non-root reader sees: 64 bytes of config space. Capabilities are
 * unknown then, which must not read as "no MSI" or "no ACS". */
static void test_non_root_view(void **state)
{
	static const char *const devs[] = { "0000:3a:00.0", "0000:3b:00.0" };
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_survey *s;
	const struct gp_survey_gpu *g;
	const struct gp_check *c;

	(void)state;
	assert_int_equal(gp_fake_build("server-t4", NULL, &fake), 0);
	for (size_t i = 0; i < 2; i++) {
		char rel[512], p[600];

		snprintf(rel, sizeof(rel), "%s/config", gp_fake_dev_dir(fake, devs[i]));
		snprintf(p, sizeof(p), "%s/%s", gp_fake_root(fake), rel);
		assert_int_equal(truncate(p, 64), 0);
	}
	s = survey_of(fake, &ctx);
	g = gp_survey_gpu(s, 0);
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_NO_MSI));
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_NO_ACS));
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_SYSFS_UNREADABLE));
	assert_true(g->methods[GP_METHOD_DDA].ready);
	c = check_named(g, "interrupts");
	assert_int_equal(c->status, GP_CHECK_INFO);
	assert_non_null(strstr(c->detail, "root"));
	c = check_named(g, "ACS");
	assert_int_equal(c->status, GP_CHECK_INFO);
	assert_non_null(strstr(c->detail, "0000:3a:00.0"));
	/* Identity still comes through the 64-byte header. */
	assert_int_equal(g->dev->subsys_device_id, 0x12a2);
	gp_survey_free(s);
	gp_ctx_free(ctx);
	gp_fake_free(fake, true);
}

/* Odd but possible host states. */
static void test_host_edges(void **state)
{
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_survey *s;
	const struct gp_survey_gpu *g;
	const struct gp_problem *p;

	(void)state;
	/* vfio-pci built out of tree (updates/), found through modules.dep;
	 * a garbled reserved_regions line; a group member that is not a PCI
	 * device the scan knows. */
	assert_int_equal(gp_fake_build("server-t4", NULL, &fake), 0);
	assert_int_equal(gp_fake_set_kernel(fake, "6.1.0-18-amd64", GP_FAKE_VFIO_MISSING), 0);
	assert_int_equal(gp_fake_printf(fake, "lib/modules/6.1.0-18-amd64/modules.dep",
					"kernel/drivers/net/e1000e/e1000e.ko:\n"
					"updates/dkms/vfio-pci.ko: kernel/drivers/vfio/vfio.ko\n"), 0);
	assert_int_equal(gp_fake_printf(fake, "sys/kernel/iommu_groups/30/reserved_regions",
					"0x00000000fee00000 0x00000000feefffff msi\nnonsense\n"), 0);
	assert_int_equal(gp_fake_symlink(fake, "../../../../devices/platform/foo",
					 "sys/kernel/iommu_groups/30/devices/0000:3b:00.1"), 0);
	s = survey_of(fake, &ctx);
	assert_int_equal(gp_survey_host(s)->vfio_pci, GP_VFIO_AVAILABLE);
	g = gp_survey_gpu(s, 0);
	p = find_problem(g, GP_METHOD_DDA, GP_PROB_SYSFS_UNREADABLE);
	if (!p) {
		fail_msg("garbled reserved_regions not reported");
		return; /* fail_msg does not return */
	}
	assert_non_null(strstr(p->message, "/sys/kernel/iommu_groups/30/reserved_regions"));
	p = find_problem(g, GP_METHOD_DDA, GP_PROB_GROUP_SHARED);
	if (!p) {
		fail_msg("unknown group member not reported");
		return; /* fail_msg does not return */
	}
	assert_non_null(strstr(p->message, "0000:3b:00.1 (not in /sys/bus/pci/devices)"));
	gp_survey_free(s);
	gp_ctx_free(ctx);
	gp_fake_free(fake, true);

	/* No kernel release in the fake root and no reserved_regions file. */
	assert_int_equal(gp_fake_build("server-t4", NULL, &fake), 0);
	assert_int_equal(gp_fake_unlink(fake, "proc/sys/kernel/osrelease"), 0);
	assert_int_equal(gp_fake_unlink(fake, "sys/kernel/iommu_groups/30/reserved_regions"), 0);
	s = survey_of(fake, &ctx);
	assert_string_equal(gp_survey_host(s)->kernel, "unknown");
	g = gp_survey_gpu(s, 0);
	assert_int_equal(check_named(g, "reserved regions")->status, GP_CHECK_INFO);
	assert_false(gp_survey_gpu_has(g, GP_METHOD_DDA, GP_PROB_RMRR));
	assert_true(g->methods[GP_METHOD_DDA].ready);
	gp_survey_free(s);
	gp_ctx_free(ctx);
	gp_fake_free(fake, true);
}

static void test_iommu_fix_text(void **state)
{
	struct fx *fx = run("iommu-off");
	const struct gp_problem *p =
		find_problem(gpu_at(fx, "0000:01:00.0"), GP_METHOD_DDA, GP_PROB_IOMMU_DISABLED);

	(void)state;
	if (!p) {
		fail_msg("no iommu-disabled");
		return; /* fail_msg does not return */
	}
	assert_non_null(strstr(p->fix, "intel_iommu=on"));
	assert_non_null(strstr(p->fix, "amd_iommu=on"));
	assert_non_null(strstr(p->fix, "VT-d"));
	assert_non_null(strstr(p->fix, "AMD-Vi"));
	done(fx);
}

/* Each bad input: the broken GPU gets sysfs-unreadable naming the file, the
 * other GPU is surveyed as usual. */
static void test_bad_input(void **state)
{
	static const struct {
		const char *fixture, *file;
	} bad[] = {
		{ "broken-config", "0000:3b:00.0/config" },
		{ "broken-config-missing", "0000:3b:00.0/config" },
		{ "broken-class", "0000:3b:00.0/class" },
		{ "broken-iommu-link", "0000:3b:00.0/iommu_group" },
		{ "broken-resource", "0000:3b:00.0/resource" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fx *fx = run(bad[i].fixture);
		const struct gp_survey_gpu *t4 = gpu_at(fx, "0000:3b:00.0");
		const struct gp_survey_gpu *vga = gpu_at(fx, "0000:00:02.0");
		const struct gp_problem *p;

		print_message("# %s\n", bad[i].fixture);
		assert_int_equal(gp_survey_gpu_count(fx->survey), 2);
		for (int m = 0; m < GP_METHOD__COUNT; m++) {
			p = find_problem(t4, (enum gp_method)m, GP_PROB_SYSFS_UNREADABLE);
			if (!p) {
				fail_msg("no sysfs-unreadable on %s", bad[i].fixture);
				return; /* fail_msg does not return */
			}
			assert_non_null(strstr(p->message, bad[i].file));
			assert_false(t4->methods[m].ready);
		}
		assert_false(gp_survey_gpu_has(vga, GP_METHOD_DDA, GP_PROB_SYSFS_UNREADABLE));
		assert_true(gp_survey_gpu_has(vga, GP_METHOD_DDA, GP_PROB_NO_RESET));
		assert_true(vga->methods[GP_METHOD_DDA].ready);
		done(fx);
	}
}

static void test_find(void **state)
{
	struct fx *fx = run("two-nvidia");
	const struct gp_survey_gpu *g = NULL;
	struct gp_strv cand = { 0 };

	(void)state;
	assert_int_equal(gp_survey_find(fx->survey, "a100", &g, &cand), 0);
	assert_string_equal(g->dev->address, "0000:5e:00.0");
	assert_int_equal(gp_survey_find(fx->survey, "NVIDIA", &g, &cand), -ENOTUNIQ);
	assert_int_equal(cand.n, 2);
	gp_strv_clear(&cand);
	assert_int_equal(gp_survey_find(fx->survey, "0000:00:00.0", &g, &cand), -ENOENT);
	done(fx);
}

static void test_no_gpu(void **state)
{
	struct fx *fx = run("no-gpu");
	struct json_object *j, *gpus;

	(void)state;
	assert_int_equal(gp_survey_gpu_count(fx->survey), 0);
	assert_null(gp_survey_gpu(fx->survey, 0));
	assert_int_equal(gp_survey_host(fx->survey)->pci_devices, 2);
	assert_int_equal(gp_survey_to_json(fx->survey, &j), 0);
	assert_true(json_object_object_get_ex(j, "gpus", &gpus));
	assert_int_equal(json_object_array_length(gpus), 0);
	json_object_put(j);
	done(fx);
}

static struct json_object *jget(struct json_object *o, const char *path)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		struct json_object *n = NULL;
		bool found;

		if (json_object_is_type(o, json_type_array)) {
			n = json_object_array_get_idx(o, (size_t)atoi(k));
			found = n != NULL;
		} else {
			found = json_object_object_get_ex(o, k, &n);
		}
		if (!found)
			fail_msg("no %s in JSON (at %s)", path, k);
		o = n; /* NULL is JSON null */
	}
	return o;
}

static void test_json(void **state)
{
	struct fx *fx = run("big-bar");
	struct json_object *j, *g;

	(void)state;
	assert_int_equal(gp_survey_to_json(fx->survey, &j), 0);
	assert_string_equal(json_object_get_string(jget(j, "schema")), "gpupass.survey/1");
	assert_true(json_object_get_boolean(jget(j, "host.iommu.enabled")));
	assert_int_equal(json_object_get_int(jget(j, "host.iommu.groups")), 4);
	assert_string_equal(json_object_get_string(jget(j, "host.vfio_pci")), "loaded");
	assert_string_equal(json_object_get_string(jget(j, "host.kernel")), "6.1.0-18-amd64");
	g = jget(j, "gpus.0");
	assert_string_equal(json_object_get_string(jget(g, "address")), "0000:3b:00.0");
	assert_string_equal(json_object_get_string(jget(g, "location_path")),
			    "PCIROOT(3A)#PCI(0000)#PCI(0000)");
	assert_string_equal(json_object_get_string(jget(g, "vendor_id")), "10de");
	assert_string_equal(json_object_get_string(jget(g, "device_id")), "20b5");
	assert_string_equal(json_object_get_string(jget(g, "subsystem_vendor_id")), "10de");
	assert_string_equal(json_object_get_string(jget(g, "subsystem_device_id")), "1533");
	assert_string_equal(json_object_get_string(jget(g, "class")), "030200");
	assert_string_equal(json_object_get_string(jget(g, "vendor")), "NVIDIA Corporation");
	assert_non_null(strstr(json_object_get_string(jget(g, "name")), "A100"));
	assert_string_equal(json_object_get_string(jget(g, "driver")), "nvidia");
	assert_int_equal(json_object_get_int(jget(g, "numa_node")), 0);
	assert_false(json_object_get_boolean(jget(g, "boot_vga")));
	assert_int_equal(json_object_get_int(jget(g, "iommu_group")), 30);
	assert_string_equal(json_object_get_string(jget(g, "group_members.0")), "0000:3b:00.0");
	assert_string_equal(json_object_get_string(jget(g, "reset_methods.1")), "bus");
	assert_true(json_object_get_boolean(jget(g, "msi")));
	assert_true(json_object_get_boolean(jget(g, "msix")));
	assert_int_equal(json_object_array_length(jget(g, "bars")), 3);
	assert_int_equal(json_object_get_int(jget(g, "bars.1.index")), 1);
	assert_int_equal(json_object_get_int64(jget(g, "bars.1.size")), 128ll << 30);
	assert_true(json_object_get_boolean(jget(g, "bars.1.is_64bit")));
	assert_true(json_object_get_boolean(jget(g, "bars.1.prefetchable")));
	assert_false(json_object_get_boolean(jget(g, "bars.0.is_64bit")));
	assert_int_equal(json_object_get_int64(jget(g, "mmio.low_bytes")), 16ll << 20);
	assert_int_equal(json_object_get_int64(jget(g, "mmio.high_bytes")),
			 (128ll << 30) + (32ll << 20));
	assert_int_equal(json_object_get_int(jget(g, "sriov.total_vfs")), 0);
	assert_int_equal(json_object_array_length(jget(g, "mdev_types")), 0);
	assert_true(json_object_get_boolean(jget(g, "methods.dda.ready")));
	assert_string_equal(json_object_get_string(jget(g, "methods.dda.problems.0.code")),
			    "large-bar");
	assert_string_equal(json_object_get_string(jget(g, "methods.dda.problems.0.severity")),
			    "info");
	assert_non_null(json_object_get_string(jget(g, "methods.dda.problems.0.fix")));
	assert_true(json_object_get_boolean(jget(g, "methods.pv.ready")));
	assert_int_equal(json_object_array_length(jget(g, "methods.pv.problems")), 0);
	json_object_put(j);
	done(fx);

	/* Nulls where the contract says so; SR-IOV and mdev filled in. */
	fx = run("sriov-igpu");
	assert_int_equal(gp_survey_to_json(fx->survey, &j), 0);
	g = jget(j, "gpus.0");
	assert_int_equal(json_object_get_int(jget(g, "sriov.total_vfs")), 7);
	assert_int_equal(json_object_get_int(jget(g, "sriov.num_vfs")), 0);
	assert_string_equal(json_object_get_string(jget(g, "mdev_types.0.id")), "i915-GVTg_V5_4");
	assert_string_equal(json_object_get_string(jget(g, "mdev_types.0.name")), "GVTg_V5_4");
	assert_int_equal(json_object_get_int(jget(g, "mdev_types.0.available")), 2);
	assert_true(json_object_get_boolean(jget(g, "boot_vga")));
	assert_int_equal(json_object_get_int(jget(g, "numa_node")), -1);
	json_object_put(j);
	done(fx);

	fx = run("no-host-driver");
	assert_int_equal(gp_survey_to_json(fx->survey, &j), 0);
	assert_null(jget(j, "gpus.0.driver"));
	json_object_put(j);
	done(fx);
	fx = run("no-iommu-group");
	assert_int_equal(gp_survey_to_json(fx->survey, &j), 0);
	g = jget(j, "gpus.0");
	{
		struct json_object *v = (struct json_object *)1;

		assert_true(json_object_object_get_ex(g, "iommu_group", &v));
		assert_null(v);
	}
	json_object_put(j);
	done(fx);
}

/* The survey only reads: sizes and mtimes of every file are unchanged. */
static unsigned long long tree_sum;

static int sum_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	(void)flag;
	for (const char *c = p; *c; c++)
		tree_sum = tree_sum * 31 + (unsigned char)*c;
	tree_sum = tree_sum * 31 + (unsigned long long)st->st_size;
	tree_sum = tree_sum * 31 + (unsigned long long)st->st_mtim.tv_nsec;
	tree_sum = tree_sum * 31 + (unsigned long long)st->st_mtim.tv_sec;
	return 0;
}

static void test_read_only(void **state)
{
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_survey *s;
	unsigned long long before;

	(void)state;
	assert_int_equal(gp_fake_build("in-use", NULL, &fake), 0);
	tree_sum = 0;
	assert_int_equal(nftw(gp_fake_root(fake), sum_one, 16, FTW_PHYS), 0);
	before = tree_sum;
	assert_int_equal(gp_ctx_new(gp_fake_root(fake), NULL, &ctx), 0);
	gp_ctx_set_log(ctx, NULL, NULL, GP_LOG_ERR);
	assert_int_equal(gp_survey_run(ctx, NULL, &s), 0);
	gp_survey_free(s);
	gp_ctx_free(ctx);
	tree_sum = 0;
	assert_int_equal(nftw(gp_fake_root(fake), sum_one, 16, FTW_PHYS), 0);
	assert_true(tree_sum == before);
	gp_fake_free(fake, true);
}

/* The PV hook may add problems; readiness follows them. */
static int pv_hook(void *data, struct gp_ctx *ctx, const struct gp_pci_dev *dev,
		   struct gp_survey_gpu *gpu)
{
	int *calls = data;

	(void)ctx;
	(*calls)++;
	assert_ptr_equal(gpu->dev, dev);
	return gp_survey_gpu_add_problem(gpu, GP_METHOD_PV, GP_PROB_NO_HOST_DRIVER, -1,
					 "no OpenCL platform exposes it", "install the ICD");
}

static void test_pv_hook(void **state)
{
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_survey *s;
	int calls = 0;
	struct gp_survey_opts opts = { .pv_hook = pv_hook, .pv_hook_data = &calls };

	(void)state;
	assert_int_equal(gp_fake_build("two-nvidia", NULL, &fake), 0);
	assert_int_equal(gp_ctx_new(gp_fake_root(fake), NULL, &ctx), 0);
	assert_int_equal(gp_survey_run(ctx, &opts, &s), 0);
	assert_int_equal(calls, 2);
	assert_false(gp_survey_gpu(s, 0)->methods[GP_METHOD_PV].ready);
	assert_true(gp_survey_gpu(s, 0)->methods[GP_METHOD_DDA].ready);
	gp_survey_free(s);
	gp_ctx_free(ctx);
	gp_fake_free(fake, true);
}

static void test_names(void **state)
{
	(void)state;
	for (int c = 0; c < GP_PROB__COUNT; c++)
		assert_non_null(gp_problem_code_name((enum gp_problem_code)c));
	assert_null(gp_problem_code_name(GP_PROB__COUNT));
	assert_string_equal(gp_severity_name(GP_SEV_WARNING), "warning");
	assert_string_equal(gp_method_name(GP_METHOD_PV), "pv");
	assert_string_equal(gp_vfio_state_name(GP_VFIO_AVAILABLE), "available");
	gp_survey_free(NULL);
}

static void test_quirks(void **state)
{
	static const struct {
		uint16_t dev;
		const char *family;
	} amd[] = { { 0x687f, "AMD Vega 10" }, { 0x66af, "AMD Vega 20" },
		    { 0x731f, "AMD Navi 10" }, { 0x67df, "AMD Polaris 10" } };

	(void)state;
	for (size_t i = 0; i < sizeof(amd) / sizeof(amd[0]); i++) {
		const struct gp_quirk *q = gp_quirk_find(0x1002, amd[i].dev);

		if (!q) {
			fail_msg("no quirk for 1002:%04x", amd[i].dev);
			return; /* fail_msg does not return */
		}
		assert_string_equal(q->family, amd[i].family);
		assert_true(q->flags & GP_QUIRK_RESET_UNRELIABLE);
	}
	assert_null(gp_quirk_find(0x1002, 0x73bf)); /* Navi 21 resets fine */
	assert_null(gp_quirk_find(0x10de, 0x687f)); /* same id, other vendor */
}

/* The benchmark's host is a valid tree: every device and GPU found, each
 * GPU ready with its audio companion. */
static void test_many(void **state)
{
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_survey *s;

	(void)state;
	assert_int_equal(gp_fake_new(NULL, &fake), 0);
	assert_int_equal(gp_fake_build_many(fake, 64, 4), 0);
	assert_int_equal(gp_ctx_new(gp_fake_root(fake), NULL, &ctx), 0);
	assert_int_equal(gp_survey_run(ctx, NULL, &s), 0);
	assert_int_equal(gp_survey_host(s)->pci_devices, 64);
	assert_int_equal(gp_survey_gpu_count(s), 4);
	for (size_t i = 0; i < 4; i++) {
		const struct gp_survey_gpu *g = gp_survey_gpu(s, i);

		assert_true(g->methods[GP_METHOD_DDA].ready);
		assert_int_equal(g->methods[GP_METHOD_DDA].n_problems, 1);
		assert_int_equal(g->methods[GP_METHOD_DDA].problems[0].code,
				 GP_PROB_GROUP_COMPANION);
	}
	gp_survey_free(s);
	gp_ctx_free(ctx);
	gp_fake_free(fake, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes_fire),
		cmocka_unit_test(test_healthy),
		cmocka_unit_test(test_no_false_alarms),
		cmocka_unit_test(test_in_use_nvidia),
		cmocka_unit_test(test_non_root_view),
		cmocka_unit_test(test_host_edges),
		cmocka_unit_test(test_iommu_fix_text),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_no_gpu),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_pv_hook),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_quirks),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
