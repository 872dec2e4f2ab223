/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OpenCL probe and the survey's PV check, through the real ocl-icd
 * loader. Run as `test-clprobe MODE`:
 *   fake   OCL_ICD_VENDORS = a new directory holding only the fake GPU ICD
 *          ($FAKEGPU_ICD, an .icd file); FAKEGPU_PCI set per case (the fake
 *          re-reads it at every call, the loader reads its vendors once)
 *   empty  OCL_ICD_VENDORS = an empty directory: no platform at all
 *   pocl   OCL_ICD_VENDORS = /etc/OpenCL/vendors/pocl.icd: a CPU platform only
 * The decoders of raw driver answers are tested in every mode.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fakesys.h"
#include "host/clprobe.h"
#include "host/context.h"
#include "host/survey.h"

#define POCL_ICD "/etc/OpenCL/vendors/pocl.icd"

static char vendors_dir[PATH_MAX];

/* ---------- decoders (no loader) ---------- */

static void test_ext_has(void **state)
{
	(void)state;
	assert_true(gp_cl_ext_has("cl_khr_fp64 cl_khr_pci_bus_info", "cl_khr_pci_bus_info"));
	assert_true(gp_cl_ext_has("cl_khr_pci_bus_info", "cl_khr_pci_bus_info"));
	assert_true(gp_cl_ext_has("  cl_a\tcl_khr_pci_bus_info\n", "cl_khr_pci_bus_info"));
	/* Only whole words. */
	assert_false(gp_cl_ext_has("cl_khr_pci_bus_info_ext cl_x", "cl_khr_pci_bus_info"));
	assert_false(gp_cl_ext_has("xcl_khr_pci_bus_info", "cl_khr_pci_bus_info"));
	assert_false(gp_cl_ext_has("cl_khr_pci_bus_inf", "cl_khr_pci_bus_info"));
	assert_false(gp_cl_ext_has("", "cl_khr_pci_bus_info"));
	assert_false(gp_cl_ext_has("   ", "cl_khr_pci_bus_info"));
	assert_false(gp_cl_ext_has(NULL, "cl_khr_pci_bus_info"));
	assert_false(gp_cl_ext_has("cl_a cl_b", ""));
}

static void test_decode_khr(void **state)
{
	uint32_t v[4] = { 1, 0x3b, 0, 0 };
	struct gp_pci_addr a;
	char buf[GP_PCI_ADDR_LEN];

	(void)state;
	assert_int_equal(gp_cl_pci_from_khr(v, sizeof(v), &a), 0);
	assert_string_equal(gp_pci_addr_format(&a, buf, sizeof(buf)), "0001:3b:00.0");
	v[2] = 31;
	v[3] = 7;
	assert_int_equal(gp_cl_pci_from_khr(v, sizeof(v), &a), 0);
	assert_int_equal(a.dev, 31);
	assert_int_equal(a.func, 7);
	/* A short or long answer, and fields beyond what PCI allows. */
	assert_int_equal(gp_cl_pci_from_khr(v, 12, &a), -EINVAL);
	assert_int_equal(gp_cl_pci_from_khr(v, 0, &a), -EINVAL);
	v[1] = 256;
	assert_int_equal(gp_cl_pci_from_khr(v, sizeof(v), &a), -EINVAL);
	v[1] = 0x3b;
	v[2] = 32;
	assert_int_equal(gp_cl_pci_from_khr(v, sizeof(v), &a), -EINVAL);
	v[2] = 0;
	v[3] = 8;
	assert_int_equal(gp_cl_pci_from_khr(v, sizeof(v), &a), -EINVAL);
	v[3] = 0xffffffffu;
	assert_int_equal(gp_cl_pci_from_khr(v, sizeof(v), &a), -EINVAL);
}

static void test_decode_nv_amd(void **state)
{
	struct gp_pci_addr a;
	uint8_t topo[24] = { 0 };

	(void)state;
	/* Slot id is devfn: device 3, function 1 -> 0x19. */
	assert_int_equal(gp_cl_pci_from_nv(0x5e, 0x19, &a), 0);
	assert_int_equal(a.bus, 0x5e);
	assert_int_equal(a.dev, 3);
	assert_int_equal(a.func, 1);
	assert_int_equal(gp_cl_pci_from_nv(0x100, 0, &a), -EINVAL);
	assert_int_equal(gp_cl_pci_from_nv(0, 0x100, &a), -EINVAL);

	/* cl_device_topology_amd: type 1 (PCIe), then bus/device/function at
	 * bytes 21..23; a bus above 127 is a negative cl_char. */
	topo[0] = 1;
	topo[21] = 0xc1;
	topo[22] = 0;
	topo[23] = 1;
	assert_int_equal(gp_cl_pci_from_amd(topo, sizeof(topo), &a), 0);
	assert_int_equal(a.bus, 0xc1);
	assert_int_equal(a.dev, 0);
	assert_int_equal(a.func, 1);
	assert_int_equal(gp_cl_pci_from_amd(topo, 20, &a), -EINVAL);
	topo[22] = 40;
	assert_int_equal(gp_cl_pci_from_amd(topo, sizeof(topo), &a), -EINVAL);
	topo[22] = 0;
	topo[0] = 2;
	assert_int_equal(gp_cl_pci_from_amd(topo, sizeof(topo), &a), -EINVAL);
}

static void test_device_at(void **state)
{
	struct gp_cl_device d = { .type = GP_CL_TYPE_GPU, .pci_source = GP_CL_PCI_KHR,
				  .pci_domain_known = true,
				  .pci = { .domain = 1, .bus = 0x3b } };
	struct gp_pci_addr a0 = { .domain = 0, .bus = 0x3b }, a1 = { .domain = 1, .bus = 0x3b };
	struct gp_pci_addr other = { .domain = 1, .bus = 0x3b, .func = 1 };
	char buf[GP_PCI_ADDR_LEN];

	(void)state;
	assert_true(gp_cl_device_at(&d, &a1));
	assert_false(gp_cl_device_at(&d, &a0));
	assert_false(gp_cl_device_at(&d, &other));
	assert_string_equal(gp_cl_device_pci_format(&d, buf, sizeof(buf)), "0001:3b:00.0");
	/* Without a domain (AMD topology, old NVIDIA drivers): any domain. */
	d.pci_domain_known = false;
	assert_true(gp_cl_device_at(&d, &a0));
	assert_true(gp_cl_device_at(&d, &a1));
	assert_string_equal(gp_cl_device_pci_format(&d, buf, sizeof(buf)), "3b:00.0");
	d.pci_source = GP_CL_PCI_NONE;
	assert_false(gp_cl_device_at(&d, &a0));
	assert_string_equal(gp_cl_device_pci_format(&d, buf, sizeof(buf)), "");

	assert_true(gp_cl_device_can_drive_gpu(&d));
	d.type = GP_CL_TYPE_ACCELERATOR;
	assert_true(gp_cl_device_can_drive_gpu(&d));
	d.type = GP_CL_TYPE_CPU;
	assert_false(gp_cl_device_can_drive_gpu(&d));
	assert_string_equal(gp_cl_device_type_name(GP_CL_TYPE_CPU), "cpu");
	assert_string_equal(gp_cl_device_type_name(GP_CL_TYPE_GPU), "gpu");
	assert_string_equal(gp_cl_device_type_name(0), "other");
	assert_string_equal(gp_cl_pci_source_name(GP_CL_PCI_AMD), "cl_amd_device_attribute_query");
	assert_string_equal(gp_cl_pci_source_name(GP_CL_PCI_NONE), "none");
}

/* ---------- through the loader ---------- */

static struct gp_ctx *null_ctx(void)
{
	struct gp_ctx *ctx;

	assert_int_equal(gp_ctx_new(NULL, NULL, &ctx), 0);
	gp_ctx_set_log(ctx, NULL, NULL, GP_LOG_ERR);
	return ctx;
}

static struct gp_clprobe *probe_with(struct gp_ctx *ctx, const char *fake_pci)
{
	struct gp_clprobe *p;

	if (fake_pci)
		setenv("FAKEGPU_PCI", fake_pci, 1);
	else
		unsetenv("FAKEGPU_PCI");
	assert_int_equal(gp_clprobe_new(ctx, &p), 0);
	assert_false(gp_clprobe_has_run(p));
	assert_int_equal(gp_clprobe_run(p), 0);
	assert_true(gp_clprobe_has_run(p));
	assert_int_equal(gp_clprobe_run(p), 0); /* once only */
	return p;
}

static const struct gp_cl_device *dev_named(const struct gp_clprobe *p, const char *name)
{
	for (size_t i = 0; i < gp_clprobe_device_count(p); i++)
		if (strcmp(gp_clprobe_device(p, i)->name, name) == 0)
			return gp_clprobe_device(p, i);
	fail_msg("no OpenCL device named %s", name);
	abort(); /* fail_msg does not return; tells the compiler too */
}

/* Every way a driver reports (or fails to report) its PCI location. */
static void test_probe_locations(void **state)
{
	struct gp_ctx *ctx = null_ctx();
	struct gp_clprobe *p;
	const struct gp_cl_device *d;
	char buf[GP_PCI_ADDR_LEN];

	(void)state;
	p = probe_with(ctx, "0001:3b:00.0,nv:0000:5e:00.1,nvold:3b:00.0,amd:c1:00.0,none,cpu,"
		       "badsize:3b:00.0,badbus:3b:00.0");
	assert_int_equal(gp_clprobe_platform_count(p), 1);
	assert_string_equal(gp_clprobe_platform(p, 0)->name, "FakeGPU OpenCL");
	assert_string_equal(gp_clprobe_platform(p, 0)->vendor, "gpupass tests");
	assert_string_equal(gp_clprobe_platform(p, 0)->version, "OpenCL 1.2 FakeGPU");
	assert_int_equal(gp_clprobe_platform(p, 0)->n_devices, 8);
	assert_int_equal(gp_clprobe_device_count(p), 8);
	assert_int_equal(gp_clprobe_skipped(p)->n, 0);

	d = dev_named(p, "FakeGPU 0");
	assert_int_equal(d->pci_source, GP_CL_PCI_KHR);
	assert_true(d->pci_domain_known);
	assert_string_equal(gp_cl_device_pci_format(d, buf, sizeof(buf)), "0001:3b:00.0");
	assert_int_equal(d->type, GP_CL_TYPE_GPU);
	d = dev_named(p, "FakeGPU 1");
	assert_int_equal(d->pci_source, GP_CL_PCI_NV);
	assert_true(d->pci_domain_known);
	assert_string_equal(gp_cl_device_pci_format(d, buf, sizeof(buf)), "0000:5e:00.1");
	d = dev_named(p, "FakeGPU 2");
	assert_int_equal(d->pci_source, GP_CL_PCI_NV);
	assert_false(d->pci_domain_known);
	assert_string_equal(gp_cl_device_pci_format(d, buf, sizeof(buf)), "3b:00.0");
	d = dev_named(p, "FakeGPU 3");
	assert_int_equal(d->pci_source, GP_CL_PCI_AMD);
	assert_false(d->pci_domain_known);
	assert_string_equal(gp_cl_device_pci_format(d, buf, sizeof(buf)), "c1:00.0");
	d = dev_named(p, "FakeGPU 4");
	assert_int_equal(d->pci_source, GP_CL_PCI_NONE);
	d = dev_named(p, "FakeCPU 5");
	assert_int_equal(d->type, GP_CL_TYPE_CPU);
	assert_int_equal(d->pci_source, GP_CL_PCI_NONE);
	assert_false(gp_cl_device_can_drive_gpu(d));
	/* A broken driver's answers are not believed. */
	assert_int_equal(dev_named(p, "FakeGPU 6")->pci_source, GP_CL_PCI_NONE);
	assert_int_equal(dev_named(p, "FakeGPU 7")->pci_source, GP_CL_PCI_NONE);
	gp_clprobe_free(p);

	/* A platform with no device. */
	p = probe_with(ctx, NULL);
	assert_int_equal(gp_clprobe_platform_count(p), 1);
	assert_int_equal(gp_clprobe_device_count(p), 0);
	gp_clprobe_free(p);
	gp_ctx_free(ctx);
}

/* gpupass's own PV platform is never used: by name or by ICD suffix. */
static void test_probe_skips_gpupass(void **state)
{
	struct gp_ctx *ctx = null_ctx();
	struct gp_clprobe *p;

	(void)state;
	setenv("FAKEGPU_PLATFORM", "gpupass PV (remote: FakeGPU OpenCL)", 1);
	p = probe_with(ctx, "0000:3b:00.0");
	assert_int_equal(gp_clprobe_platform_count(p), 0);
	assert_int_equal(gp_clprobe_device_count(p), 0);
	assert_int_equal(gp_clprobe_skipped(p)->n, 1);
	assert_string_equal(gp_clprobe_skipped(p)->v[0], "gpupass PV (remote: FakeGPU OpenCL)");
	gp_clprobe_free(p);
	unsetenv("FAKEGPU_PLATFORM");

	setenv("FAKEGPU_SUFFIX", "GPPV", 1);
	p = probe_with(ctx, "0000:3b:00.0");
	assert_int_equal(gp_clprobe_platform_count(p), 0);
	assert_int_equal(gp_clprobe_skipped(p)->n, 1);
	gp_clprobe_free(p);
	unsetenv("FAKEGPU_SUFFIX");

	/* "gpupass" elsewhere in a name is someone else's platform. */
	setenv("FAKEGPU_PLATFORM", "Not gpupass", 1);
	p = probe_with(ctx, "0000:3b:00.0");
	assert_int_equal(gp_clprobe_platform_count(p), 1);
	gp_clprobe_free(p);
	unsetenv("FAKEGPU_PLATFORM");
	gp_ctx_free(ctx);
}

struct sfx {
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_clprobe *probe;
	struct gp_survey *survey;
};

static struct sfx *survey_with(const char *fixture, const char *fake_pci)
{
	struct sfx *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	if (fake_pci)
		setenv("FAKEGPU_PCI", fake_pci, 1);
	else
		unsetenv("FAKEGPU_PCI");
	assert_int_equal(gp_fake_build(fixture, NULL, &s->fake), 0);
	assert_int_equal(gp_ctx_new(gp_fake_root(s->fake), NULL, &s->ctx), 0);
	gp_ctx_set_log(s->ctx, NULL, NULL, GP_LOG_ERR);
	assert_int_equal(gp_clprobe_new(s->ctx, &s->probe), 0);
	assert_int_equal(gp_clprobe_survey(s->ctx, s->probe, &s->survey), 0);
	return s;
}

static void survey_done(struct sfx *s)
{
	gp_survey_free(s->survey);
	gp_clprobe_free(s->probe);
	gp_ctx_free(s->ctx);
	gp_fake_free(s->fake, true);
	free(s);
}

static const struct gp_survey_gpu *gpu_at(const struct sfx *s, const char *addr)
{
	const struct gp_survey_gpu *g = NULL;

	assert_int_equal(gp_survey_find(s->survey, addr, &g, NULL), 0);
	return g;
}

static const struct gp_problem *pv_problem(const struct gp_survey_gpu *g, enum gp_problem_code c)
{
	for (size_t i = 0; i < g->methods[GP_METHOD_PV].n_problems; i++)
		if (g->methods[GP_METHOD_PV].problems[i].code == c)
			return &g->methods[GP_METHOD_PV].problems[i];
	return NULL;
}

/* The PV problem with @c, which must be there. */
static const struct gp_problem *need_pv(const struct gp_survey_gpu *g, enum gp_problem_code c)
{
	const struct gp_problem *p = pv_problem(g, c);

	if (!p) {
		fail_msg("%s: no PV problem %s", g->dev->address, gp_problem_code_name(c));
		abort();
	}
	return p;
}

static const struct gp_check *opencl_check(const struct gp_survey_gpu *g)
{
	for (size_t i = 0; i < g->n_checks; i++)
		if (strcmp(g->checks[i].name, "OpenCL") == 0)
			return &g->checks[i];
	fail_msg("no OpenCL check");
	abort();
}

/* The GPU's "opencl" key as JSON text. */
static char *gpu_opencl_json(const struct gp_survey_gpu *g)
{
	struct json_object *j, *v;
	char *s;

	assert_int_equal(gp_survey_gpu_to_json(g, &j), 0);
	assert_true(json_object_object_get_ex(j, "opencl", &v));
	s = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	json_object_put(j);
	return s;
}

static bool no_opencl_problem(const struct gp_survey_gpu *g)
{
	return !pv_problem(g, GP_PROB_NO_OPENCL_PLATFORM) &&
	       !pv_problem(g, GP_PROB_NO_OPENCL_DEVICE) &&
	       !pv_problem(g, GP_PROB_OPENCL_NO_PCI_INFO);
}

static void test_survey_ready(void **state)
{
	struct sfx *s = survey_with("server-t4", "0000:3b:00.0");
	const struct gp_survey_gpu *g = gpu_at(s, "0000:3b:00.0");
	struct json_object *doc, *host, *oc;
	char *text;

	(void)state;
	assert_true(g->methods[GP_METHOD_PV].ready);
	assert_true(no_opencl_problem(g));
	assert_int_equal(opencl_check(g)->status, GP_CHECK_PASS);
	assert_string_equal(opencl_check(g)->detail,
			    "FakeGPU OpenCL: FakeGPU 0 (cl_khr_pci_bus_info)");
	text = gpu_opencl_json(g);
	assert_string_equal(text, "[{\"platform\":\"FakeGPU OpenCL\",\"device\":\"FakeGPU 0\"}]");
	free(text);
	/* host.opencl lists what the loader has, with each location. */
	assert_int_equal(gp_survey_to_json(s->survey, &doc), 0);
	assert_true(json_object_object_get_ex(doc, "host", &host));
	assert_true(json_object_object_get_ex(host, "opencl", &oc));
	assert_string_equal(json_object_to_json_string_ext(oc, JSON_C_TO_STRING_PLAIN),
			    "{\"probed\":true,\"platforms\":[{\"name\":\"FakeGPU OpenCL\","
			    "\"vendor\":\"gpupass tests\",\"version\":\"OpenCL 1.2 FakeGPU\","
			    "\"devices\":[{\"name\":\"FakeGPU 0\",\"type\":\"gpu\","
			    "\"pci\":\"0000:3b:00.0\",\"pci_source\":\"cl_khr_pci_bus_info\"}]}],"
			    "\"skipped_platforms\":[],\"pv_only\":[]}");
	json_object_put(doc);
	survey_done(s);

	/* Vendor extensions match too; a domain-less location matches any domain. */
	s = survey_with("two-nvidia", "nvold:3b:00.0,amd:5e:00.0");
	assert_true(gpu_at(s, "0000:3b:00.0")->methods[GP_METHOD_PV].ready);
	assert_true(gpu_at(s, "0000:5e:00.0")->methods[GP_METHOD_PV].ready);
	assert_string_equal(opencl_check(gpu_at(s, "0000:5e:00.0"))->detail,
			    "FakeGPU OpenCL: FakeGPU 1 (cl_amd_device_attribute_query)");
	survey_done(s);
}

static void test_survey_no_device(void **state)
{
	struct sfx *s;
	const struct gp_survey_gpu *g;
	const struct gp_problem *pr;
	char *text;

	(void)state;
	/* Another GPU's address, and the right one in another domain. */
	s = survey_with("two-nvidia", "0000:5e:00.0,0001:3b:00.0,cpu");
	g = gpu_at(s, "0000:3b:00.0");
	assert_false(g->methods[GP_METHOD_PV].ready);
	assert_true(g->methods[GP_METHOD_DDA].ready);
	pr = need_pv(g, GP_PROB_NO_OPENCL_DEVICE);
	assert_int_equal(pr->severity, GP_SEV_ERROR);
	assert_non_null(strstr(pr->message, "0000:3b:00.0"));
	assert_non_null(strstr(pr->message, "FakeGPU OpenCL: FakeGPU 0 (gpu, at 0000:5e:00.0)"));
	assert_non_null(strstr(pr->message, "FakeGPU 1 (gpu, at 0001:3b:00.0)"));
	assert_non_null(strstr(pr->message, "FakeCPU 2 (cpu, never a GPU)"));
	assert_non_null(strstr(pr->fix, "nvidia-opencl-icd"));
	assert_non_null(strstr(pr->fix, "clinfo -l"));
	assert_int_equal(opencl_check(g)->status, GP_CHECK_FAIL);
	assert_false(pv_problem(g, GP_PROB_OPENCL_NO_PCI_INFO));
	text = gpu_opencl_json(g);
	assert_string_equal(text, "[]");
	free(text);
	/* The other GPU is the one at 5e. */
	assert_true(gpu_at(s, "0000:5e:00.0")->methods[GP_METHOD_PV].ready);
	assert_int_equal(gp_survey_gpu_top_problem(g)->code, GP_PROB_NO_OPENCL_DEVICE);
	survey_done(s);

	/* A platform with no device at all. */
	s = survey_with("server-t4", NULL);
	pr = need_pv(gpu_at(s, "0000:3b:00.0"), GP_PROB_NO_OPENCL_DEVICE);
	assert_non_null(strstr(pr->message, "none"));
	survey_done(s);

	/* Only a CPU device: never a GPU, even one that claims the address. */
	s = survey_with("server-t4", "cpu:0000:3b:00.0");
	g = gpu_at(s, "0000:3b:00.0");
	assert_int_equal(gp_clprobe_device(s->probe, 0)->pci_source, GP_CL_PCI_KHR);
	assert_false(g->methods[GP_METHOD_PV].ready);
	pr = need_pv(g, GP_PROB_NO_OPENCL_DEVICE);
	assert_non_null(strstr(pr->message, "FakeCPU 0 (cpu, never a GPU)"));
	text = gpu_opencl_json(g);
	assert_string_equal(text, "[]");
	free(text);
	survey_done(s);
}

static void test_survey_no_pci_info(void **state)
{
	struct sfx *s;
	const struct gp_survey_gpu *g;
	const struct gp_problem *pr;

	(void)state;
	s = survey_with("two-nvidia", "none,0000:5e:00.0,badsize:3b:00.0");
	g = gpu_at(s, "0000:3b:00.0");
	assert_false(g->methods[GP_METHOD_PV].ready);
	pr = need_pv(g, GP_PROB_OPENCL_NO_PCI_INFO);
	assert_int_equal(pr->severity, GP_SEV_ERROR);
	assert_non_null(strstr(pr->message, "FakeGPU 0 (gpu, no PCI location)"));
	assert_non_null(strstr(pr->message, "FakeGPU 2 (gpu, no PCI location)"));
	assert_null(strstr(pr->message, "FakeGPU 1"));
	assert_non_null(strstr(pr->message, "2 GPU devices"));
	assert_non_null(strstr(pr->fix, "cl_khr_pci_bus_info"));
	assert_false(pv_problem(g, GP_PROB_NO_OPENCL_DEVICE));
	/* The GPU that is matched is not blamed for the others. */
	g = gpu_at(s, "0000:5e:00.0");
	assert_true(g->methods[GP_METHOD_PV].ready);
	assert_true(no_opencl_problem(g));
	survey_done(s);
}

static void test_survey_gpupass_only(void **state)
{
	struct sfx *s;
	const struct gp_problem *pr;

	(void)state;
	setenv("FAKEGPU_PLATFORM", "gpupass PV (remote: FakeGPU OpenCL)", 1);
	s = survey_with("server-t4", "0000:3b:00.0");
	unsetenv("FAKEGPU_PLATFORM");
	pr = need_pv(gpu_at(s, "0000:3b:00.0"), GP_PROB_NO_OPENCL_PLATFORM);
	assert_non_null(strstr(pr->message, "gpupass's own PV platform"));
	assert_false(gpu_at(s, "0000:3b:00.0")->methods[GP_METHOD_PV].ready);
	survey_done(s);
}

/* The OpenCL check is only for a GPU on a host driver; the probe itself
 * runs in any case, to list the devices that are not GPUs ("PV only"). */
static void test_survey_lazy(void **state)
{
	struct sfx *s;
	const struct gp_survey_gpu *g;
	char *text;

	(void)state;
	s = survey_with("no-gpu", "0000:3b:00.0");
	assert_true(gp_clprobe_has_run(s->probe));
	survey_done(s);

	s = survey_with("no-host-driver", "0000:3b:00.0");
	assert_true(gp_clprobe_has_run(s->probe));
	g = gpu_at(s, "0000:3b:00.0");
	assert_non_null(pv_problem(g, GP_PROB_NO_HOST_DRIVER));
	assert_true(no_opencl_problem(g));
	assert_int_equal(opencl_check(g)->status, GP_CHECK_INFO);
	text = gpu_opencl_json(g);
	assert_string_equal(text, "[]");
	free(text);
	survey_done(s);

	s = survey_with("already-dismounted", "0000:3b:00.0");
	assert_true(gp_clprobe_has_run(s->probe));
	assert_int_equal(opencl_check(gpu_at(s, "0000:3b:00.0"))->status, GP_CHECK_INFO);
	survey_done(s);
}

/* Hook-added JSON keys: each key once; they follow the built-in keys. */
static int double_hook(void *data, struct gp_ctx *ctx, const struct gp_pci_dev *dev,
		       struct gp_survey_gpu *gpu)
{
	int r = gp_clprobe_pv_hook(data, ctx, dev, gpu);

	if (r == 0) {
		assert_int_equal(gp_survey_gpu_add_json(gpu, "opencl", json_object_new_array()),
				 -EEXIST);
		assert_int_equal(gp_survey_gpu_add_json(gpu, "zz_test", json_object_new_int(7)), 0);
		/* Accepted, but never replaces a built-in key. */
		assert_int_equal(gp_survey_gpu_add_json(gpu, "address", json_object_new_int(1)), 0);
	}
	return r;
}

static void test_extra_json(void **state)
{
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_clprobe *probe;
	struct gp_survey *s;
	struct gp_survey_opts opts = { .pv_hook = double_hook };
	struct json_object *doc, *gpus, *host, *v;
	const char *last = NULL;

	(void)state;
	setenv("FAKEGPU_PCI", "0000:3b:00.0", 1);
	assert_int_equal(gp_fake_build("server-t4", NULL, &fake), 0);
	assert_int_equal(gp_ctx_new(gp_fake_root(fake), NULL, &ctx), 0);
	gp_ctx_set_log(ctx, NULL, NULL, GP_LOG_ERR);
	assert_int_equal(gp_clprobe_new(ctx, &probe), 0);
	opts.pv_hook_data = probe;
	assert_int_equal(gp_survey_run(ctx, &opts, &s), 0);
	assert_int_equal(gp_survey_add_host_json(s, "zz_host", json_object_new_int(1)), 0);
	assert_int_equal(gp_survey_add_host_json(s, "zz_host", NULL), -EEXIST);
	assert_int_equal(gp_survey_to_json(s, &doc), 0);
	assert_true(json_object_object_get_ex(doc, "gpus", &gpus));
	json_object_object_foreach(json_object_array_get_idx(gpus, 0), k, val) {
		(void)val;
		last = k;
	}
	assert_non_null(last);
	assert_string_equal(last, "zz_test");
	assert_true(json_object_object_get_ex(json_object_array_get_idx(gpus, 0), "address", &v));
	assert_string_equal(json_object_get_string(v), "0000:3b:00.0");
	assert_true(json_object_object_get_ex(doc, "host", &host));
	assert_true(json_object_object_get_ex(host, "zz_host", &v));
	assert_int_equal(json_object_get_int(v), 1);
	/* The built-in host keys are still there. */
	assert_true(json_object_object_get_ex(host, "vfio_pci", &v));
	json_object_put(doc);
	gp_survey_free(s);
	gp_clprobe_free(probe);
	gp_ctx_free(ctx);
	gp_fake_free(fake, true);
}

/* ---------- the other vendors set-ups ---------- */

static void test_empty_vendors(void **state)
{
	struct gp_ctx *ctx = null_ctx();
	struct gp_clprobe *p = probe_with(ctx, "0000:3b:00.0");
	struct sfx *s;
	const struct gp_problem *pr;

	(void)state;
	assert_int_equal(gp_clprobe_platform_count(p), 0);
	assert_int_equal(gp_clprobe_device_count(p), 0);
	gp_clprobe_free(p);
	gp_ctx_free(ctx);

	s = survey_with("server-t4", "0000:3b:00.0");
	pr = need_pv(gpu_at(s, "0000:3b:00.0"), GP_PROB_NO_OPENCL_PLATFORM);
	assert_int_equal(pr->severity, GP_SEV_ERROR);
	assert_non_null(strstr(pr->message, "0000:3b:00.0"));
	assert_null(strstr(pr->message, "gpupass's own"));
	assert_non_null(strstr(pr->fix, "nvidia-opencl-icd"));
	assert_false(gpu_at(s, "0000:3b:00.0")->methods[GP_METHOD_PV].ready);
	survey_done(s);

	/* The fix names the package of the GPU's vendor. */
	s = survey_with("reset-quirk", NULL);
	pr = need_pv(gpu_at(s, "0000:3b:00.0"), GP_PROB_NO_OPENCL_PLATFORM);
	assert_non_null(strstr(pr->fix, "mesa-opencl-icd"));
	survey_done(s);
	s = survey_with("sriov-igpu", NULL);
	pr = need_pv(gpu_at(s, "0000:00:02.0"), GP_PROB_NO_OPENCL_PLATFORM);
	assert_non_null(strstr(pr->fix, "intel-opencl-icd"));
	survey_done(s);
}

static void test_pocl_only(void **state)
{
	struct sfx *s = survey_with("server-t4", NULL);
	const struct gp_survey_gpu *g = gpu_at(s, "0000:3b:00.0");
	const struct gp_problem *pr = need_pv(g, GP_PROB_NO_OPENCL_DEVICE);
	const struct gp_cl_device *d;

	(void)state;
	assert_true(gp_clprobe_platform_count(s->probe) >= 1);
	assert_string_equal(gp_clprobe_platform(s->probe, 0)->name, "Portable Computing Language");
	d = gp_clprobe_device(s->probe, 0);
	if (!d)
		fail_msg("PoCL lists no device");
	assert_int_equal(d->type & GP_CL_TYPE_CPU, GP_CL_TYPE_CPU);
	assert_false(gp_cl_device_can_drive_gpu(d));
	assert_non_null(strstr(pr->message, "Portable Computing Language: "));
	assert_non_null(strstr(pr->message, d->name));
	assert_non_null(strstr(pr->message, "(cpu, never a GPU)"));
	assert_false(g->methods[GP_METHOD_PV].ready);
	survey_done(s);
}

int main(int argc, char **argv)
{
	/* One group per process (one TAP plan); the decoders run in "fake". */
	const struct CMUnitTest fake[] = {
		cmocka_unit_test(test_ext_has),
		cmocka_unit_test(test_decode_khr),
		cmocka_unit_test(test_decode_nv_amd),
		cmocka_unit_test(test_device_at),
		cmocka_unit_test(test_probe_locations),
		cmocka_unit_test(test_probe_skips_gpupass),
		cmocka_unit_test(test_survey_ready),
		cmocka_unit_test(test_survey_no_device),
		cmocka_unit_test(test_survey_no_pci_info),
		cmocka_unit_test(test_survey_gpupass_only),
		cmocka_unit_test(test_survey_lazy),
		cmocka_unit_test(test_extra_json),
	};
	const struct CMUnitTest empty[] = {
		cmocka_unit_test(test_empty_vendors),
	};
	const struct CMUnitTest pocl[] = {
		cmocka_unit_test(test_pocl_only),
	};
	const char *mode = argc > 1 ? argv[1] : "fake";
	char path[PATH_MAX + 32];
	int r;

	/* The loader reads its vendors at the first OpenCL call: set them now. */
	snprintf(vendors_dir, sizeof(vendors_dir), "/tmp/gp-vendors-XXXXXX");
	if (!mkdtemp(vendors_dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (strcmp(mode, "fake") == 0) {
		const char *icd = getenv("FAKEGPU_ICD");
		FILE *in, *out;
		char line[PATH_MAX];

		if (!icd || !(in = fopen(icd, "r"))) {
			fprintf(stderr, "test-clprobe fake: FAKEGPU_ICD must name fakegpu.icd\n");
			return 1;
		}
		snprintf(path, sizeof(path), "%s/fakegpu.icd", vendors_dir);
		out = fopen(path, "w");
		if (!out || !fgets(line, sizeof(line), in) || fputs(line, out) < 0) {
			fprintf(stderr, "test-clprobe: cannot copy %s\n", icd);
			return 1;
		}
		fclose(in);
		fclose(out);
		setenv("OCL_ICD_VENDORS", vendors_dir, 1);
	} else if (strcmp(mode, "empty") == 0) {
		setenv("OCL_ICD_VENDORS", vendors_dir, 1);
	} else if (strcmp(mode, "pocl") == 0) {
		if (access(POCL_ICD, R_OK) != 0) {
			printf("1..0 # SKIP no PoCL (%s)\n", POCL_ICD);
			rmdir(vendors_dir);
			return 77;
		}
		setenv("OCL_ICD_VENDORS", POCL_ICD, 1);
	} else {
		fprintf(stderr, "usage: test-clprobe fake|empty|pocl\n");
		return 2;
	}
	unsetenv("FAKEGPU_PLATFORM");
	unsetenv("FAKEGPU_SUFFIX");

	if (strcmp(mode, "fake") == 0)
		r = cmocka_run_group_tests_name("fake GPU ICD", fake, NULL, NULL);
	else if (strcmp(mode, "empty") == 0)
		r = cmocka_run_group_tests_name("empty vendors", empty, NULL, NULL);
	else
		r = cmocka_run_group_tests_name("PoCL only", pocl, NULL, NULL);
	snprintf(path, sizeof(path), "%s/fakegpu.icd", vendors_dir);
	unlink(path);
	rmdir(vendors_dir);
	return r ? 1 : 0;
}
