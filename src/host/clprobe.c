/* SPDX-License-Identifier: Apache-2.0 */
#include "clprobe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <CL/cl_ext.h>

#include "common/log.h"
#include "common/util.h"

/* cl_nv_device_attribute_query (NVIDIA, "cl_nv_device_attribute_query.txt"):
 * the headers define only the older tokens. The slot id is the PCI devfn,
 * device << 3 | function; the domain query exists in newer drivers only. */
#define GP_CL_DEVICE_PCI_BUS_ID_NV 0x4008
#define GP_CL_DEVICE_PCI_SLOT_ID_NV 0x4009
#define GP_CL_DEVICE_PCI_DOMAIN_ID_NV 0x400A

_Static_assert(sizeof(cl_device_pci_bus_info_khr) == 16,
	       "cl_khr_pci_bus_info: four cl_uint fields");
_Static_assert(sizeof(cl_device_topology_amd) == 24,
	       "cl_amd_device_attribute_query: 24-byte topology union");

/* Platforms and devices beyond these are not looked at: no host has more,
 * and a broken loader answering a huge count must not make us allocate it. */
#define MAX_PLATFORMS 64
#define MAX_DEVICES 256

struct gp_clprobe {
	struct gp_ctx *ctx;
	bool ran;
	double ms;
	struct gp_cl_platform *plats;
	size_t nplats;
	struct gp_cl_device *devs;
	size_t ndevs;
	struct gp_strv skipped;
};

const char *gp_cl_pci_source_name(enum gp_cl_pci_source src)
{
	switch (src) {
	case GP_CL_PCI_KHR:
		return "cl_khr_pci_bus_info";
	case GP_CL_PCI_NV:
		return "cl_nv_device_attribute_query";
	case GP_CL_PCI_AMD:
		return "cl_amd_device_attribute_query";
	case GP_CL_PCI_NONE:
		break;
	}
	return "none";
}

const char *gp_cl_device_type_name(uint64_t type)
{
	if (type & GP_CL_TYPE_GPU)
		return "gpu";
	if (type & GP_CL_TYPE_ACCELERATOR)
		return "accelerator";
	if (type & GP_CL_TYPE_CUSTOM)
		return "custom";
	if (type & GP_CL_TYPE_CPU)
		return "cpu";
	return "other";
}

bool gp_cl_device_can_drive_gpu(const struct gp_cl_device *dev)
{
	return (dev->type & (GP_CL_TYPE_GPU | GP_CL_TYPE_ACCELERATOR | GP_CL_TYPE_CUSTOM)) != 0;
}

bool gp_cl_device_at(const struct gp_cl_device *dev, const struct gp_pci_addr *a)
{
	if (dev->pci_source == GP_CL_PCI_NONE)
		return false;
	if (dev->pci_domain_known && dev->pci.domain != a->domain)
		return false;
	return dev->pci.bus == a->bus && dev->pci.dev == a->dev && dev->pci.func == a->func;
}

const char *gp_cl_device_pci_format(const struct gp_cl_device *dev, char *buf, size_t len)
{
	if (dev->pci_source == GP_CL_PCI_NONE)
		snprintf(buf, len, "%s", "");
	else if (dev->pci_domain_known)
		gp_pci_addr_format(&dev->pci, buf, len);
	else
		snprintf(buf, len, "%02x:%02x.%x", dev->pci.bus, dev->pci.dev, dev->pci.func);
	return buf;
}

bool gp_cl_ext_has(const char *list, const char *name)
{
	size_t n = strlen(name);

	if (!list || !n)
		return false;
	/* Words are separated by spaces (OpenCL 3.0 §4.2, CL_DEVICE_EXTENSIONS);
	 * drivers also use tabs or newlines here and there. */
	for (const char *p = list; *p;) {
		size_t w;

		p += strspn(p, " \t\r\n");
		w = strcspn(p, " \t\r\n");
		if (w == n && memcmp(p, name, n) == 0)
			return true;
		p += w;
	}
	return false;
}

static int set_addr(uint32_t domain, uint32_t bus, uint32_t dev, uint32_t fn,
		    struct gp_pci_addr *out)
{
	/* PCI Local Bus 3.0 §3.2.2.3.1: 8-bit bus, 5-bit device, 3-bit function. */
	if (bus > 0xff || dev > 0x1f || fn > 7)
		return -EINVAL;
	out->domain = domain;
	out->bus = (uint8_t)bus;
	out->dev = (uint8_t)dev;
	out->func = (uint8_t)fn;
	return 0;
}

int gp_cl_pci_from_khr(const void *buf, size_t len, struct gp_pci_addr *out)
{
	cl_device_pci_bus_info_khr info;

	if (len != sizeof(info))
		return -EINVAL;
	memcpy(&info, buf, sizeof(info));
	return set_addr(info.pci_domain, info.pci_bus, info.pci_device, info.pci_function, out);
}

int gp_cl_pci_from_nv(uint32_t bus, uint32_t slot, struct gp_pci_addr *out)
{
	if (slot > 0xff)
		return -EINVAL;
	return set_addr(0, bus, slot >> 3, slot & 7, out);
}

int gp_cl_pci_from_amd(const void *buf, size_t len, struct gp_pci_addr *out)
{
	cl_device_topology_amd t;

	if (len != sizeof(t))
		return -EINVAL;
	memcpy(&t, buf, sizeof(t));
	if (t.raw.type != CL_DEVICE_TOPOLOGY_TYPE_PCIE_AMD)
		return -EINVAL;
	/* The fields are cl_char: a bus above 127 reads negative. */
	return set_addr(0, (uint8_t)t.pcie.bus, (uint8_t)t.pcie.device, (uint8_t)t.pcie.function,
			out);
}

/* ---------- asking the loader ---------- */

typedef cl_int (*info_fn)(void *obj, cl_uint param, size_t size, void *val, size_t *ret);

static cl_int platform_info(void *obj, cl_uint param, size_t size, void *val, size_t *ret)
{
	return clGetPlatformInfo(obj, param, size, val, ret);
}

static cl_int device_info(void *obj, cl_uint param, size_t size, void *val, size_t *ret)
{
	return clGetDeviceInfo(obj, param, size, val, ret);
}

/* A string query: size first, then the value, always NUL-terminated
 * whatever the driver wrote. NULL when the query fails or memory runs out
 * (*oom set). Strings above 64 KiB are refused. */
static char *info_str(info_fn fn, void *obj, cl_uint param, bool *oom)
{
	size_t len = 0;
	char *s;

	if (fn(obj, param, 0, NULL, &len) != CL_SUCCESS || len == 0 || len > 65536)
		return NULL;
	s = calloc(1, len + 1);
	if (!s) {
		*oom = true;
		return NULL;
	}
	if (fn(obj, param, len, s, NULL) != CL_SUCCESS) {
		free(s);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

/* A fixed-size query; returns the size the driver reported in *got
 * (which may differ from @size: the decoders check). */
static cl_int info_fixed(info_fn fn, void *obj, cl_uint param, void *val, size_t size,
			 size_t *got)
{
	size_t len = 0;
	cl_int err;

	memset(val, 0, size);
	err = fn(obj, param, 0, NULL, &len);
	if (err != CL_SUCCESS)
		return err;
	*got = len;
	if (len != size)
		return CL_INVALID_VALUE;
	return fn(obj, param, size, val, NULL);
}

static bool is_gpupass(const char *name, const char *suffix)
{
	/* Names as gpupass's guest ICD reports them (src/icd). */
	return (name && strncmp(name, "gpupass", 7) == 0) || (suffix && strcmp(suffix, "GPPV") == 0);
}

static void read_location(struct gp_clprobe *p, cl_device_id id, struct gp_cl_device *d)
{
	struct gp_log *log = &p->ctx->log;
	bool oom = false;
	char *ext = info_str(device_info, id, CL_DEVICE_EXTENSIONS, &oom);
	size_t got = 0;

	if (gp_cl_ext_has(ext, "cl_khr_pci_bus_info")) {
		cl_device_pci_bus_info_khr info;

		if (info_fixed(device_info, id, CL_DEVICE_PCI_BUS_INFO_KHR, &info, sizeof(info),
			       &got) == CL_SUCCESS &&
		    gp_cl_pci_from_khr(&info, got, &d->pci) == 0) {
			d->pci_source = GP_CL_PCI_KHR;
			d->pci_domain_known = true;
			goto out;
		}
		gp_warn(log, "OpenCL device '%s' lists cl_khr_pci_bus_info but its "
			"CL_DEVICE_PCI_BUS_INFO_KHR is unusable (%zu bytes)", d->name, got);
	}
	if (gp_cl_ext_has(ext, "cl_nv_device_attribute_query")) {
		cl_uint bus = 0, slot = 0, dom = 0;

		if (info_fixed(device_info, id, GP_CL_DEVICE_PCI_BUS_ID_NV, &bus, sizeof(bus),
			       &got) == CL_SUCCESS &&
		    info_fixed(device_info, id, GP_CL_DEVICE_PCI_SLOT_ID_NV, &slot, sizeof(slot),
			       &got) == CL_SUCCESS &&
		    gp_cl_pci_from_nv(bus, slot, &d->pci) == 0) {
			d->pci_source = GP_CL_PCI_NV;
			/* Older drivers answer CL_INVALID_VALUE: domain unknown. */
			if (info_fixed(device_info, id, GP_CL_DEVICE_PCI_DOMAIN_ID_NV, &dom,
				       sizeof(dom), &got) == CL_SUCCESS) {
				d->pci.domain = dom;
				d->pci_domain_known = true;
			}
			goto out;
		}
		gp_warn(log, "OpenCL device '%s' lists cl_nv_device_attribute_query but its PCI "
			"bus/slot ids are unusable", d->name);
	}
	if (gp_cl_ext_has(ext, "cl_amd_device_attribute_query")) {
		cl_device_topology_amd t;

		if (info_fixed(device_info, id, CL_DEVICE_TOPOLOGY_AMD, &t, sizeof(t), &got) ==
		    CL_SUCCESS && gp_cl_pci_from_amd(&t, got, &d->pci) == 0) {
			d->pci_source = GP_CL_PCI_AMD;
			goto out;
		}
		gp_warn(log, "OpenCL device '%s' lists cl_amd_device_attribute_query but its "
			"CL_DEVICE_TOPOLOGY_AMD is unusable", d->name);
	}
out:
	free(ext);
}

static int add_device(struct gp_clprobe *p, size_t plat, cl_device_id id)
{
	struct gp_cl_device *d;
	cl_device_type type = 0;
	size_t got = 0;
	bool oom = false;

	d = realloc(p->devs, (p->ndevs + 1) * sizeof(*d));
	if (!d)
		return -ENOMEM;
	p->devs = d;
	d = &p->devs[p->ndevs];
	memset(d, 0, sizeof(*d));
	d->platform = plat;
	d->name = info_str(device_info, id, CL_DEVICE_NAME, &oom);
	if (!d->name && !oom)
		d->name = strdup("?");
	if (!d->name)
		return -ENOMEM;
	if (info_fixed(device_info, id, CL_DEVICE_TYPE, &type, sizeof(type), &got) == CL_SUCCESS)
		d->type = type;
	p->ndevs++;
	read_location(p, id, d);
	return 0;
}

static int add_platform(struct gp_clprobe *p, cl_platform_id id)
{
	struct gp_log *log = &p->ctx->log;
	struct gp_cl_platform *pl;
	cl_device_id devs[MAX_DEVICES];
	cl_uint nd = 0;
	cl_int err;
	bool oom = false;
	char *name = info_str(platform_info, id, CL_PLATFORM_NAME, &oom);
	char *suffix = info_str(platform_info, id, CL_PLATFORM_ICD_SUFFIX_KHR, &oom);
	int r = -ENOMEM;

	if (oom)
		goto out;
	if (is_gpupass(name, suffix)) {
		gp_info(log, "OpenCL: skipping platform '%s': it is gpupass's own PV platform",
			name ? name : "?");
		r = gp_strv_push(&p->skipped, name ? name : "gpupass");
		goto out;
	}
	pl = realloc(p->plats, (p->nplats + 1) * sizeof(*pl));
	if (!pl)
		goto out;
	p->plats = pl;
	pl = &p->plats[p->nplats];
	memset(pl, 0, sizeof(*pl));
	pl->name = name ? name : strdup("?");
	name = NULL;
	pl->vendor = info_str(platform_info, id, CL_PLATFORM_VENDOR, &oom);
	pl->version = info_str(platform_info, id, CL_PLATFORM_VERSION, &oom);
	if (!pl->vendor && !oom)
		pl->vendor = strdup("");
	if (!pl->version && !oom)
		pl->version = strdup("");
	p->nplats++; /* counted now so that gp_clprobe_free frees its strings */
	if (!pl->name || !pl->vendor || !pl->version)
		goto out;
	err = clGetDeviceIDs(id, CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd);
	if (err != CL_SUCCESS) {
		/* CL_DEVICE_NOT_FOUND is a platform without devices. */
		if (err != CL_DEVICE_NOT_FOUND)
			gp_warn(log, "OpenCL platform '%s': clGetDeviceIDs failed (%d)", pl->name,
				(int)err);
		nd = 0;
	}
	if (nd > MAX_DEVICES)
		nd = MAX_DEVICES;
	for (cl_uint i = 0; i < nd; i++) {
		r = add_device(p, p->nplats - 1, devs[i]);
		if (r < 0)
			goto out;
		p->plats[p->nplats - 1].n_devices++;
	}
	r = 0;
out:
	free(name);
	free(suffix);
	return r;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int gp_clprobe_new(struct gp_ctx *ctx, struct gp_clprobe **out)
{
	struct gp_clprobe *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->ctx = ctx;
	*out = p;
	return 0;
}

void gp_clprobe_free(struct gp_clprobe *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nplats; i++) {
		free(p->plats[i].name);
		free(p->plats[i].vendor);
		free(p->plats[i].version);
	}
	free(p->plats);
	for (size_t i = 0; i < p->ndevs; i++)
		free(p->devs[i].name);
	free(p->devs);
	gp_strv_clear(&p->skipped);
	free(p);
}

int gp_clprobe_run(struct gp_clprobe *p)
{
	cl_platform_id ids[MAX_PLATFORMS];
	cl_uint n = 0;
	cl_int err;
	double t0;
	int r = 0;

	if (p->ran)
		return 0;
	p->ran = true;
	t0 = now_ms();
	/* ocl-icd loads every ICD of /etc/OpenCL/vendors (or OCL_ICD_VENDORS)
	 * here, once per process. */
	err = clGetPlatformIDs(MAX_PLATFORMS, ids, &n);
	if (err == CL_PLATFORM_NOT_FOUND_KHR) {
		n = 0;
	} else if (err != CL_SUCCESS) {
		gp_warn(&p->ctx->log, "OpenCL: clGetPlatformIDs failed (%d)", (int)err);
		n = 0;
	}
	if (n > MAX_PLATFORMS)
		n = MAX_PLATFORMS;
	for (cl_uint i = 0; i < n && r == 0; i++)
		r = add_platform(p, ids[i]);
	p->ms = now_ms() - t0;
	gp_info(&p->ctx->log, "OpenCL: %zu platform%s, %zu device%s (%zu gpupass platform%s "
		"skipped) in %.1f ms", p->nplats, p->nplats == 1 ? "" : "s", p->ndevs,
		p->ndevs == 1 ? "" : "s", p->skipped.n, p->skipped.n == 1 ? "" : "s", p->ms);
	return r;
}

bool gp_clprobe_has_run(const struct gp_clprobe *p)
{
	return p->ran;
}

double gp_clprobe_run_ms(const struct gp_clprobe *p)
{
	return p->ms;
}

size_t gp_clprobe_platform_count(const struct gp_clprobe *p)
{
	return p->nplats;
}

const struct gp_cl_platform *gp_clprobe_platform(const struct gp_clprobe *p, size_t i)
{
	return i < p->nplats ? &p->plats[i] : NULL;
}

size_t gp_clprobe_device_count(const struct gp_clprobe *p)
{
	return p->ndevs;
}

const struct gp_cl_device *gp_clprobe_device(const struct gp_clprobe *p, size_t i)
{
	return i < p->ndevs ? &p->devs[i] : NULL;
}

const struct gp_strv *gp_clprobe_skipped(const struct gp_clprobe *p)
{
	return &p->skipped;
}

/* ---------- JSON ---------- */

/* Adds @v to @o; failures set *oom (checked once at the end). */
static void jadd(struct json_object *o, const char *k, struct json_object *v, bool *oom)
{
	if (!o || json_object_object_add(o, k, v) < 0) {
		json_object_put(v);
		*oom = true;
	}
}

static void jpush(struct json_object *a, struct json_object *v, bool *oom)
{
	if (!a || !v || json_object_array_add(a, v) < 0) {
		json_object_put(v);
		*oom = true;
	}
}

int gp_clprobe_to_json(const struct gp_clprobe *p, struct json_object **out)
{
	struct json_object *root = json_object_new_object(), *plats = json_object_new_array();
	struct json_object *skipped = json_object_new_array();
	bool oom = !root || !plats || !skipped;

	for (size_t i = 0; !oom && i < p->nplats; i++) {
		struct json_object *po = json_object_new_object(), *devs = json_object_new_array();

		jadd(po, "name", json_object_new_string(p->plats[i].name), &oom);
		jadd(po, "vendor", json_object_new_string(p->plats[i].vendor), &oom);
		jadd(po, "version", json_object_new_string(p->plats[i].version), &oom);
		for (size_t j = 0; devs && j < p->ndevs; j++) {
			const struct gp_cl_device *d = &p->devs[j];
			struct json_object *dobj;
			char addr[GP_PCI_ADDR_LEN];
			bool has = d->pci_source != GP_CL_PCI_NONE;

			if (d->platform != i)
				continue;
			dobj = json_object_new_object();
			jadd(dobj, "name", json_object_new_string(d->name), &oom);
			jadd(dobj, "type", json_object_new_string(gp_cl_device_type_name(d->type)),
			     &oom);
			jadd(dobj, "pci", has ? json_object_new_string(
				     gp_cl_device_pci_format(d, addr, sizeof(addr))) : NULL, &oom);
			jadd(dobj, "pci_source", has ? json_object_new_string(
				     gp_cl_pci_source_name(d->pci_source)) : NULL, &oom);
			jpush(devs, dobj, &oom);
		}
		if (!devs)
			oom = true;
		jadd(po, "devices", devs, &oom);
		jpush(plats, po, &oom);
	}
	for (size_t i = 0; !oom && i < p->skipped.n; i++)
		jpush(skipped, json_object_new_string(p->skipped.v[i]), &oom);
	jadd(root, "probed", json_object_new_boolean(p->ran), &oom);
	if (root) {
		jadd(root, "platforms", plats, &oom);
		plats = NULL;
		jadd(root, "skipped_platforms", skipped, &oom);
		skipped = NULL;
	}
	if (oom) {
		json_object_put(plats);
		json_object_put(skipped);
		json_object_put(root);
		return -ENOMEM;
	}
	*out = root;
	return 0;
}

/* ---------- the survey's PV check ---------- */

/* Which ICD package drives this GPU, for the fixes. */
static const char *icd_hint(const struct gp_pci_dev *dev)
{
	switch (dev->vendor_id) {
	case 0x10de:
		return "for NVIDIA, nvidia-opencl-icd (with the NVIDIA driver)";
	case 0x1002:
		return "for AMD, mesa-opencl-icd (Rusticl/Clover) or AMD's ROCm OpenCL runtime";
	case 0x8086:
		return "for Intel, intel-opencl-icd";
	default:
		return "nvidia-opencl-icd (NVIDIA), mesa-opencl-icd (AMD, Intel and others "
		       "through Mesa) or intel-opencl-icd (Intel)";
	}
}

/* "Platform: device (gpu, 0000:3b:00.0), ..." for the devices that @want
 * selects; NULL on -ENOMEM. */
static char *list_devices(const struct gp_clprobe *p,
			  bool (*want)(const struct gp_cl_device *d), size_t *count)
{
	char *s = strdup(""), *t;

	*count = 0;
	for (size_t i = 0; s && i < p->ndevs; i++) {
		const struct gp_cl_device *d = &p->devs[i];
		char addr[GP_PCI_ADDR_LEN];

		if (want && !want(d))
			continue;
		if (!gp_cl_device_can_drive_gpu(d))
			addr[0] = '\0'; /* where a CPU sits does not matter */
		else
			gp_cl_device_pci_format(d, addr, sizeof(addr));
		t = gp_strdup_printf("%s%s%s: %s (%s%s%s)", s, *count ? "; " : "",
				     p->plats[d->platform].name, d->name,
				     gp_cl_device_type_name(d->type),
				     !gp_cl_device_can_drive_gpu(d) ? ", never a GPU" :
				     d->pci_source != GP_CL_PCI_NONE ? ", at " : ", no PCI location",
				     addr);
		free(s);
		s = t;
		(*count)++;
	}
	return s;
}

static bool unlocated_gpu(const struct gp_cl_device *d)
{
	return gp_cl_device_can_drive_gpu(d) && d->pci_source == GP_CL_PCI_NONE;
}

static int checkf(struct gp_survey_gpu *gpu, enum gp_check_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int checkf(struct gp_survey_gpu *gpu, enum gp_check_status st, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	r = gp_survey_gpu_add_check(gpu, "OpenCL", st, msg);
	free(msg);
	return r;
}

static int no_match(struct gp_clprobe *p, const struct gp_pci_dev *dev, struct gp_survey_gpu *gpu)
{
	char *seen, *unlocated, *fix;
	size_t nseen, nunloc;
	int r = -ENOMEM;

	seen = list_devices(p, NULL, &nseen);
	unlocated = list_devices(p, unlocated_gpu, &nunloc);
	if (!seen || !unlocated)
		goto out;
	if (nunloc) {
		fix = gp_strdup_printf(
			"Update the GPU's OpenCL driver to one that reports where its devices sit "
			"on the PCI bus (cl_khr_pci_bus_info; NVIDIA and AMD drivers through "
			"cl_nv_device_attribute_query / cl_amd_device_attribute_query): %s. Check "
			"with `clinfo | grep -i pci`.", icd_hint(dev));
		r = fix ? gp_survey_gpu_add_problemf(gpu, GP_METHOD_PV, GP_PROB_OPENCL_NO_PCI_INFO, fix,
				   "No host OpenCL device reports %s as its PCI location, and %zu "
				   "GPU device%s report%s no location at all, so gpupass cannot tell "
				   "whether %s it: %s.", dev->address, nunloc,
				   nunloc == 1 ? "" : "s", nunloc == 1 ? "s" : "",
				   nunloc == 1 ? "it drives" : "one of them drives", unlocated) :
			  -ENOMEM;
		free(fix);
		if (r == 0)
			r = checkf(gpu, GP_CHECK_FAIL, "no device at %s; without PCI location: %s",
				   dev->address, unlocated);
		goto out;
	}
	fix = gp_strdup_printf(
		"Install the OpenCL driver (ICD) that drives this GPU: %s; make sure its host "
		"driver (%s) is loaded and the device nodes are accessible, then check that "
		"`clinfo -l` lists a GPU device and `clinfo | grep -i pci` shows %s.",
		icd_hint(dev), dev->driver, dev->address);
	r = fix ? gp_survey_gpu_add_problemf(gpu, GP_METHOD_PV, GP_PROB_NO_OPENCL_DEVICE, fix,
			   "No host OpenCL device drives %s; the host's OpenCL %s: %s.",
			   dev->address, nseen == 1 ? "device is" : "devices are",
			   nseen ? seen : "none (the platforms have no devices)") :
		  -ENOMEM;
	free(fix);
	if (r == 0)
		r = checkf(gpu, GP_CHECK_FAIL, "no device at %s (seen: %s)", dev->address,
			   nseen ? seen : "none");
out:
	free(seen);
	free(unlocated);
	return r;
}

int gp_clprobe_pv_hook(void *data, struct gp_ctx *ctx, const struct gp_pci_dev *dev,
		       struct gp_survey_gpu *gpu)
{
	struct gp_clprobe *p = data;
	struct json_object *matches;
	size_t nmatch = 0;
	char *names;
	int r;

	if (!dev->driver || strcmp(dev->driver, "vfio-pci") == 0) {
		/* no-host-driver says why; no host platform can use it now. */
		r = gp_survey_gpu_add_json(gpu, "opencl", json_object_new_array());
		if (r == 0)
			r = checkf(gpu, GP_CHECK_INFO, "not looked for: no host driver");
		return r;
	}
	r = gp_clprobe_run(p);
	if (r < 0)
		return r;
	matches = json_object_new_array();
	names = strdup("");
	if (!matches || !names) {
		json_object_put(matches);
		free(names);
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->ndevs; i++) {
		const struct gp_cl_device *d = &p->devs[i];
		struct json_object *o;
		bool oom = false;
		char *t;

		if (!gp_cl_device_can_drive_gpu(d) || !gp_cl_device_at(d, &dev->addr))
			continue;
		o = json_object_new_object();
		jadd(o, "platform", json_object_new_string(p->plats[d->platform].name), &oom);
		jadd(o, "device", json_object_new_string(d->name), &oom);
		jpush(matches, o, &oom);
		t = gp_strdup_printf("%s%s%s: %s (%s)", names, nmatch ? "; " : "",
				     p->plats[d->platform].name, d->name,
				     gp_cl_pci_source_name(d->pci_source));
		free(names);
		names = t;
		if (oom || !names) {
			json_object_put(matches);
			free(names);
			return -ENOMEM;
		}
		nmatch++;
	}
	r = gp_survey_gpu_add_json(gpu, "opencl", matches);
	if (r < 0)
		goto out;
	if (nmatch) {
		gp_dbg(&ctx->log, "%s: driven by OpenCL %s", dev->address, names);
		r = checkf(gpu, GP_CHECK_PASS, "%s", names);
	} else if (p->nplats == 0) {
		char *fix = gp_strdup_printf(
			"Install the OpenCL driver (ICD) of this GPU's vendor: %s; then check that "
			"`clinfo -l` lists its platform. The loader reads /etc/OpenCL/vendors/*.icd "
			"(or the directory or file OCL_ICD_VENDORS names).", icd_hint(dev));

		r = fix ? gp_survey_gpu_add_problemf(gpu, GP_METHOD_PV, GP_PROB_NO_OPENCL_PLATFORM, fix,
				   "The host has no OpenCL platform%s: gpupass-pvd runs guests' work "
				   "on a host platform, so it cannot use %s.",
				   p->skipped.n ? " (only gpupass's own PV platform, which is "
				   "skipped)" : "", dev->address) : -ENOMEM;
		free(fix);
		if (r == 0)
			r = checkf(gpu, GP_CHECK_FAIL, "no platform");
	} else {
		r = no_match(p, dev, gpu);
	}
out:
	free(names);
	return r;
}

bool gp_clprobe_is_survey_gpu(const struct gp_cl_device *dev, const struct gp_survey *s)
{
	for (size_t i = 0; i < gp_survey_gpu_count(s); i++) {
		const struct gp_survey_gpu *g = gp_survey_gpu(s, i);
		struct gp_pci_addr a;

		if (gp_pci_addr_parse(g->dev->address, &a) == 0 && gp_cl_device_at(dev, &a))
			return true;
	}
	/* A GPU that says where it is belongs to a PCI GPU (the survey's
	 * PV problems tell when that one is not in the tree). */
	return (dev->type & GP_CL_TYPE_GPU) && dev->pci_source != GP_CL_PCI_NONE;
}

const char *gp_cl_device_pv_only_note(const struct gp_cl_device *dev)
{
	if (dev->type & GP_CL_TYPE_CPU)
		return "not a GPU: guest kernels run on the host's CPU";
	if (dev->type & GP_CL_TYPE_GPU)
		return "a GPU with no PCI location the survey can check";
	return "not a GPU: guest kernels run on this accelerator, which the survey does not check";
}

static int pv_only_json(const struct gp_clprobe *p, const struct gp_survey *s,
			struct json_object *opencl)
{
	struct json_object *arr = json_object_new_array();
	bool oom = !arr;

	for (size_t i = 0; !oom && i < p->ndevs; i++) {
		const struct gp_cl_device *d = &p->devs[i];
		struct json_object *o;
		char addr[GP_PCI_ADDR_LEN];

		if (gp_clprobe_is_survey_gpu(d, s))
			continue;
		o = json_object_new_object();
		jadd(o, "name", json_object_new_string(d->name), &oom);
		jadd(o, "platform", json_object_new_string(p->plats[d->platform].name), &oom);
		jadd(o, "type", json_object_new_string(gp_cl_device_type_name(d->type)), &oom);
		jadd(o, "pci", d->pci_source != GP_CL_PCI_NONE ?
			json_object_new_string(gp_cl_device_pci_format(d, addr, sizeof(addr))) :
			NULL, &oom);
		jadd(o, "note", json_object_new_string(gp_cl_device_pv_only_note(d)), &oom);
		jpush(arr, o, &oom);
	}
	if (arr)
		jadd(opencl, "pv_only", arr, &oom);
	return oom ? -ENOMEM : 0;
}

int gp_clprobe_survey(struct gp_ctx *ctx, struct gp_clprobe *probe, struct gp_survey **out)
{
	struct gp_survey_opts opts = { .pv_hook = gp_clprobe_pv_hook, .pv_hook_data = probe };
	struct gp_survey *s;
	struct json_object *j;
	int r;

	r = gp_survey_run(ctx, &opts, &s);
	if (r < 0)
		return r;
	/* Also without a GPU on a host driver: the devices that are not
	 * GPUs are listed. */
	r = gp_clprobe_run(probe);
	if (r == 0)
		r = gp_clprobe_to_json(probe, &j);
	if (r == 0) {
		r = pv_only_json(probe, s, j);
		if (r == 0)
			r = gp_survey_add_host_json(s, "opencl", j);
		else
			json_object_put(j);
	}
	if (r < 0) {
		gp_survey_free(s);
		return r;
	}
	*out = s;
	return 0;
}
