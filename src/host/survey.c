/* SPDX-License-Identifier: Apache-2.0 */
#include "survey.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "common/log.h"
#include "host/quirks.h"

/* QEMU's default 64-bit PCI hole on q35/i440fx (pci-hole64-size) is 32 GiB:
 * BARs needing more do not fit without a larger window. */
#define QEMU_HOLE64_DEFAULT (32ull << 30)

static const struct {
	const char *name;
	enum gp_severity sev;
} codes[GP_PROB__COUNT] = {
	[GP_PROB_IOMMU_DISABLED] = { "iommu-disabled", GP_SEV_ERROR },
	[GP_PROB_NO_IOMMU_GROUP] = { "no-iommu-group", GP_SEV_ERROR },
	[GP_PROB_GROUP_SHARED] = { "group-shared", GP_SEV_ERROR },
	[GP_PROB_GROUP_COMPANION] = { "group-companion", GP_SEV_INFO },
	[GP_PROB_RMRR] = { "rmrr", GP_SEV_ERROR },
	[GP_PROB_NO_ACS] = { "no-acs", GP_SEV_WARNING },
	[GP_PROB_NO_RESET] = { "no-reset", GP_SEV_WARNING },
	[GP_PROB_RESET_QUIRK] = { "reset-quirk", GP_SEV_WARNING },
	[GP_PROB_NO_MSI] = { "no-msi", GP_SEV_WARNING },
	[GP_PROB_BOOT_VGA] = { "boot-vga", GP_SEV_WARNING },
	[GP_PROB_IN_USE] = { "in-use", GP_SEV_WARNING },
	[GP_PROB_VFIO_NOT_LOADED] = { "vfio-not-loaded", GP_SEV_INFO },
	[GP_PROB_VFIO_MISSING] = { "vfio-missing", GP_SEV_ERROR },
	[GP_PROB_LARGE_BAR] = { "large-bar", GP_SEV_INFO },
	[GP_PROB_ALREADY_DISMOUNTED] = { "already-dismounted", GP_SEV_INFO },
	[GP_PROB_SYSFS_UNREADABLE] = { "sysfs-unreadable", GP_SEV_ERROR },
	[GP_PROB_NO_HOST_DRIVER] = { "no-host-driver", GP_SEV_ERROR },
	[GP_PROB_NO_OPENCL_PLATFORM] = { "no-opencl-platform", GP_SEV_ERROR },
	[GP_PROB_NO_OPENCL_DEVICE] = { "no-opencl-device", GP_SEV_ERROR },
	[GP_PROB_OPENCL_NO_PCI_INFO] = { "opencl-no-pci-info", GP_SEV_ERROR },
};

const char *gp_problem_code_name(enum gp_problem_code code)
{
	return (unsigned)code < GP_PROB__COUNT ? codes[code].name : NULL;
}

enum gp_severity gp_problem_code_severity(enum gp_problem_code code)
{
	return (unsigned)code < GP_PROB__COUNT ? codes[code].sev : GP_SEV_ERROR;
}

const char *gp_severity_name(enum gp_severity sev)
{
	switch (sev) {
	case GP_SEV_INFO:
		return "info";
	case GP_SEV_WARNING:
		return "warning";
	case GP_SEV_ERROR:
		return "error";
	}
	return "?";
}

const char *gp_method_name(enum gp_method m)
{
	return m == GP_METHOD_DDA ? "dda" : m == GP_METHOD_PV ? "pv" : "?";
}

const char *gp_check_status_name(enum gp_check_status st)
{
	switch (st) {
	case GP_CHECK_PASS:
		return "ok";
	case GP_CHECK_INFO:
		return "info";
	case GP_CHECK_WARN:
		return "warn";
	case GP_CHECK_FAIL:
		return "FAIL";
	}
	return "?";
}

const char *gp_vfio_state_name(enum gp_vfio_state st)
{
	switch (st) {
	case GP_VFIO_LOADED:
		return "loaded";
	case GP_VFIO_AVAILABLE:
		return "available";
	case GP_VFIO_MISSING:
		return "missing";
	}
	return "?";
}

/* A process holding a device node, from /proc/<pid>/fd. */
struct holder {
	int pid;
	char comm[32];
	char *node; /* "/dev/dri/card0" */
};

struct gp_survey {
	struct gp_pci_scan *scan;
	struct gp_survey_host host;
	struct gp_survey_gpu *gpus;
	size_t ngpus;
	struct holder *holders;
	size_t nholders;
	bool holders_read;
	struct json_object *host_extra; /* keys added by gp_survey_add_host_json */
};

/* ---------- building problems and checks ---------- */

int gp_survey_gpu_add_problem(struct gp_survey_gpu *gpu, enum gp_method method,
			      enum gp_problem_code code, int severity,
			      const char *message, const char *fix)
{
	struct gp_method_result *m;
	struct gp_problem *p;

	if ((unsigned)method >= GP_METHOD__COUNT || (unsigned)code >= GP_PROB__COUNT)
		return -EINVAL;
	m = &gpu->methods[method];
	p = realloc(m->problems, (m->n_problems + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	m->problems = p;
	p = &m->problems[m->n_problems];
	p->code = code;
	p->severity = severity < 0 ? codes[code].sev : (enum gp_severity)severity;
	p->message = strdup(message);
	p->fix = strdup(fix);
	if (!p->message || !p->fix) {
		free(p->message);
		free(p->fix);
		return -ENOMEM;
	}
	m->n_problems++;
	return 0;
}

static int check(struct gp_survey_gpu *gpu, const char *name, enum gp_check_status st,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

int gp_survey_gpu_add_check(struct gp_survey_gpu *gpu, const char *name,
			    enum gp_check_status status, const char *detail)
{
	return check(gpu, name, status, "%s", detail);
}

/* Adds @key to the object *@obj (made on first use); owns @val. */
static int add_extra(struct json_object **obj, const char *key, struct json_object *val)
{
	if (!*obj && !(*obj = json_object_new_object())) {
		json_object_put(val);
		return -ENOMEM;
	}
	if (json_object_object_get_ex(*obj, key, NULL)) {
		json_object_put(val);
		return -EEXIST;
	}
	if (json_object_object_add(*obj, key, val) < 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

int gp_survey_gpu_add_json(struct gp_survey_gpu *gpu, const char *key, struct json_object *val)
{
	return add_extra(&gpu->json_extra, key, val);
}

int gp_survey_add_host_json(struct gp_survey *s, const char *key, struct json_object *val)
{
	return add_extra(&s->host_extra, key, val);
}

int gp_survey_gpu_add_problemf(struct gp_survey_gpu *gpu, enum gp_method method,
			       enum gp_problem_code code, const char *fix, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	r = gp_survey_gpu_add_problem(gpu, method, code, -1, msg, fix);
	free(msg);
	return r;
}

static int check(struct gp_survey_gpu *gpu, const char *name, enum gp_check_status st,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int check(struct gp_survey_gpu *gpu, const char *name, enum gp_check_status st,
		 const char *fmt, ...)
{
	struct gp_check *c = realloc(gpu->checks, (gpu->n_checks + 1) * sizeof(*c));
	va_list ap;
	int r;

	if (!c)
		return -ENOMEM;
	gpu->checks = c;
	c = &gpu->checks[gpu->n_checks];
	c->name = name;
	c->status = st;
	va_start(ap, fmt);
	r = vasprintf(&c->detail, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	gpu->n_checks++;
	return 0;
}

/* Appends to a growing string; on failure the string is freed and NULL. */
static char *append(char *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *append(char *s, const char *fmt, ...)
{
	va_list ap;
	char *add, *out;
	int r;

	if (!s)
		return NULL;
	va_start(ap, fmt);
	r = vasprintf(&add, fmt, ap);
	va_end(ap);
	if (r < 0) {
		free(s);
		return NULL;
	}
	out = gp_strdup_printf("%s%s", s, add);
	free(s);
	free(add);
	return out;
}

/* ---------- host facts ---------- */

static void read_kernel(struct gp_ctx *ctx, struct gp_survey_host *host)
{
	struct utsname u;

	if (gp_sysfs_read_str(ctx->sys, "/proc/sys/kernel/osrelease", host->kernel,
			      sizeof(host->kernel)) == 0 && host->kernel[0])
		return;
	if (gp_sysfs_is_real_root(ctx->sys) && uname(&u) == 0) {
		snprintf(host->kernel, sizeof(host->kernel), "%s", u.release);
		return;
	}
	snprintf(host->kernel, sizeof(host->kernel), "unknown");
}

static int read_host(struct gp_ctx *ctx, struct gp_survey_host *host)
{
	struct gp_strv names = { 0 };
	char path[PATH_MAX];
	int r;

	r = gp_sysfs_list(ctx->sys, "/sys/kernel/iommu_groups", &names);
	if (r == -ENOMEM)
		return r;
	host->iommu_groups = (int)names.n;
	host->iommu_enabled = names.n > 0;
	gp_strv_clear(&names);
	read_kernel(ctx, host);

	if (gp_sysfs_is_dir(ctx->sys, "/sys/module/vfio_pci")) {
		host->vfio_pci = GP_VFIO_LOADED;
		return 0;
	}
	host->vfio_pci = GP_VFIO_MISSING;
	/* Available as a module file (any compression) in the running
	 * kernel's module tree. */
	r = gp_sysfs_list(ctx->sys, gp_sysfs_path(path, sizeof(path),
						   "/lib/modules/%s/kernel/drivers/vfio/pci",
						   host->kernel), &names);
	if (r == -ENOMEM)
		return r;
	for (size_t i = 0; i < names.n; i++)
		if (strncmp(names.v[i], "vfio-pci.ko", 11) == 0)
			host->vfio_pci = GP_VFIO_AVAILABLE;
	gp_strv_clear(&names);
	if (host->vfio_pci == GP_VFIO_MISSING) {
		char *text;

		/* Elsewhere in the tree (updates/, extra/): modules.dep lists it. */
		if (gp_sysfs_read(ctx->sys, gp_sysfs_path(path, sizeof(path),
							   "/lib/modules/%s/modules.dep",
							   host->kernel), &text, NULL) == 0) {
			if (strstr(text, "/vfio-pci.ko"))
				host->vfio_pci = GP_VFIO_AVAILABLE;
			free(text);
		}
	}
	return 0;
}

/* ---------- who holds a GPU's device nodes ---------- */

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static bool is_gpu_node(const char *t)
{
	return strncmp(t, "/dev/dri/", 9) == 0 || strncmp(t, "/dev/nvidia", 11) == 0;
}

/* Reads every /proc/<pid>/fd link that points at a GPU node, once. Processes
 * we may not look into (not root) are skipped. */
static int read_holders(struct gp_ctx *ctx, struct gp_survey *s)
{
	struct gp_strv pids = { 0 };
	char path[128], target[PATH_MAX];
	int r;

	s->holders_read = true;
	if (gp_sysfs_list(ctx->sys, "/proc", &pids) < 0)
		return 0;
	for (size_t i = 0; i < pids.n; i++) {
		struct gp_strv fds = { 0 };
		char comm[32] = "?";
		bool have_comm = false;

		if (!all_digits(pids.v[i]))
			continue;
		if (gp_sysfs_list(ctx->sys, gp_sysfs_path(path, sizeof(path), "/proc/%s/fd",
							   pids.v[i]), &fds) < 0) {
			gp_strv_clear(&fds);
			continue;
		}
		for (size_t f = 0; f < fds.n; f++) {
			struct holder *h;

			if (gp_sysfs_readlink(ctx->sys, gp_sysfs_path(path, sizeof(path),
								       "/proc/%s/fd/%s", pids.v[i],
								       fds.v[f]),
					      target, sizeof(target)) < 0 ||
			    !is_gpu_node(target))
				continue;
			if (!have_comm) {
				gp_sysfs_read_str(ctx->sys, gp_sysfs_path(path, sizeof(path),
									  "/proc/%s/comm", pids.v[i]),
						  comm, sizeof(comm));
				have_comm = true;
			}
			h = realloc(s->holders, (s->nholders + 1) * sizeof(*h));
			if (!h) {
				r = -ENOMEM;
				gp_strv_clear(&fds);
				goto err_pids;
			}
			s->holders = h;
			h = &s->holders[s->nholders];
			gp_parse_int(pids.v[i], &h->pid);
			snprintf(h->comm, sizeof(h->comm), "%s", comm);
			h->node = strdup(target);
			if (!h->node) {
				r = -ENOMEM;
				gp_strv_clear(&fds);
				goto err_pids;
			}
			s->nholders++;
		}
		gp_strv_clear(&fds);
	}
	gp_strv_clear(&pids);
	return 0;

err_pids:
	gp_strv_clear(&pids);
	return r;
}

/* The NVIDIA driver numbers its nodes /dev/nvidiaN by "Device Minor". */
static int nvidia_minor(struct gp_ctx *ctx, const struct gp_pci_dev *dev)
{
	char path[PATH_MAX], *text, *p;
	int minor = -1;

	if (gp_sysfs_read(ctx->sys, gp_sysfs_path(path, sizeof(path),
						  "/proc/driver/nvidia/gpus/%s/information",
						  dev->address), &text, NULL) < 0)
		return -1;
	p = strstr(text, "Device Minor:");
	if (p && sscanf(p + 13, "%d", &minor) != 1)
		minor = -1;
	free(text);
	return minor;
}

static bool node_of_gpu(struct gp_ctx *ctx, const struct gp_pci_dev *dev, const char *node,
			int *minor_cache)
{
	if (strncmp(node, "/dev/dri/", 9) == 0)
		return gp_strv_contains(&dev->drm_nodes, node + 9);
	if (!dev->driver || strcmp(dev->driver, "nvidia") != 0)
		return false;
	/* /dev/nvidiactl, -uvm, -modeset are shared by all NVIDIA GPUs: only
	 * the numbered node belongs to one. */
	if (!all_digits(node + 11))
		return false;
	if (*minor_cache == -2)
		*minor_cache = nvidia_minor(ctx, dev);
	if (*minor_cache < 0)
		return true; /* cannot tell which: assume it may be this one */
	return atoi(node + 11) == *minor_cache;
}

/* ---------- the checks ---------- */

static const char FIX_IOMMU[] =
	"Enable the IOMMU in the firmware setup (Intel: VT-d; AMD: AMD-Vi / IOMMU / SVM), "
	"then add intel_iommu=on (Intel) or amd_iommu=on (AMD) to the kernel command line "
	"(GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot.";

static const char *class_word(const struct gp_pci_dev *d)
{
	switch (d->class_code >> 16) {
	case 0x01:
		return "storage controller";
	case 0x02:
		return "network controller";
	case 0x03:
		return "display controller";
	case 0x04:
		return d->class_code >> 8 == 0x0403 ? "audio device" : "multimedia device";
	case 0x06:
		return "bridge";
	case 0x0c:
		return d->class_code >> 8 == 0x0c03 ? "USB controller" : "serial bus controller";
	case 0x12:
		return "accelerator";
	default:
		return "device";
	}
}

static int check_sysfs(struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;
	int r;

	if (!d->n_errors)
		return check(gpu, "sysfs", GP_CHECK_PASS, "all attributes readable");
	for (size_t i = 0; i < d->n_errors; i++) {
		for (int m = 0; m < GP_METHOD__COUNT; m++) {
			r = gp_survey_gpu_add_problemf(gpu, m, GP_PROB_SYSFS_UNREADABLE,
				    "Check the kernel log (dmesg) for errors on this device; a "
				    "garbled attribute usually means a driver or hardware fault. "
				    "Reboot the host, and reseat or replace the card if it persists.",
				    "%s: %s %s", d->address, d->errors[i].file, d->errors[i].what);
			if (r < 0)
				return r;
		}
		r = check(gpu, "sysfs", GP_CHECK_FAIL, "%s %s", d->errors[i].file,
			  d->errors[i].what);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_iommu(struct gp_survey *s, struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;

	if (!s->host.iommu_enabled) {
		if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_IOMMU_DISABLED, FIX_IOMMU,
			    "The IOMMU is off (/sys/kernel/iommu_groups is empty): no device "
			    "can be assigned to a VM.") < 0)
			return -ENOMEM;
		return check(gpu, "IOMMU", GP_CHECK_FAIL, "off (no IOMMU groups)");
	}
	if (check(gpu, "IOMMU", GP_CHECK_PASS, "on (%d groups)", s->host.iommu_groups) < 0)
		return -ENOMEM;
	if (d->iommu_group < 0) {
		bool link_broken = false;

		for (size_t i = 0; i < d->n_errors; i++)
			if (strstr(d->errors[i].file, "/iommu_group"))
				link_broken = true;
		/* A broken link is reported as sysfs-unreadable already. */
		if (!link_broken &&
		    gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_NO_IOMMU_GROUP,
			    "Check that the IOMMU covers this device's PCI segment (dmesg | grep -i "
			    "-e DMAR -e IOMMU); firmware may exclude it. Update the firmware.",
			    "%s is in no IOMMU group although the IOMMU is on.", d->address) < 0)
			return -ENOMEM;
		return check(gpu, "IOMMU group", GP_CHECK_FAIL, "none");
	}
	return check(gpu, "IOMMU group", GP_CHECK_PASS, "%d (%zu member%s)", d->iommu_group,
		     d->group_members.n, d->group_members.n == 1 ? "" : "s");
}

static int check_group(struct gp_survey *s, struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;
	char *shared = strdup(""), *comp = strdup("");
	size_t nshared = 0, ncomp = 0;
	int r = -ENOMEM;

	if (d->iommu_group < 0) {
		free(shared);
		free(comp);
		return 0;
	}
	for (size_t i = 0; i < d->group_members.n; i++) {
		const char *a = d->group_members.v[i];
		const struct gp_pci_dev *o = gp_pci_scan_find(s->scan, a);
		char name[300];

		if (strcmp(a, d->address) == 0)
			continue;
		if (o && o->is_bridge)
			continue; /* bridges stay with the host; vfio allows them */
		if (o) {
			char dn[256];

			snprintf(name, sizeof(name), "%s (%s%s%s)", a, class_word(o),
				 o->vendor_name || o->device_name ? ": " : "",
				 o->vendor_name || o->device_name ?
				 gp_pci_dev_display_name(o, dn, sizeof(dn)) : "");
		} else {
			snprintf(name, sizeof(name), "%s (not in /sys/bus/pci/devices)", a);
		}
		if (o && gp_pci_same_slot(o, d)) {
			comp = append(comp, "%s%s", ncomp ? ", " : "", name);
			ncomp++;
		} else {
			shared = append(shared, "%s%s", nshared ? ", " : "", name);
			nshared++;
		}
		if (!comp || !shared)
			goto out;
	}
	if (nshared) {
		if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_GROUP_SHARED,
			    "Move the card to a slot with its own IOMMU group (try another "
			    "slot, or enable ACS in the firmware setup); otherwise every device "
			    "listed would have to be taken from the host with it.",
			    "IOMMU group %d also holds %zu device%s that %s not part of this GPU: %s.",
			    d->iommu_group, nshared, nshared == 1 ? "" : "s",
			    nshared == 1 ? "is" : "are", shared) < 0 ||
		    check(gpu, "group members", GP_CHECK_FAIL, "shared with %s", shared) < 0)
			goto out;
	}
	if (ncomp) {
		if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_GROUP_COMPANION,
			    "Nothing to do: these functions are assigned to the VM together "
			    "with the GPU.",
			    "Other functions of the same card will be assigned with it: %s.",
			    comp) < 0 ||
		    check(gpu, "group members", GP_CHECK_INFO, "companions %s", comp) < 0)
			goto out;
	}
	if (!nshared && !ncomp &&
	    check(gpu, "group members", GP_CHECK_PASS, "alone in its group") < 0)
		goto out;
	r = 0;
out:
	free(shared);
	free(comp);
	return r;
}

/* "0x00000000fee00000 0x00000000feefffff msi" per line. */
static int check_rmrr(struct gp_ctx *ctx, struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;
	char path[128], *text, *save = NULL;
	char *direct = strdup("");
	size_t ndirect = 0;
	int r;

	if (d->iommu_group < 0 || !direct) {
		free(direct);
		return direct ? 0 : -ENOMEM;
	}
	gp_sysfs_path(path, sizeof(path), "/sys/kernel/iommu_groups/%d/reserved_regions",
		      d->iommu_group);
	r = gp_sysfs_read(ctx->sys, path, &text, NULL);
	if (r < 0) {
		free(direct);
		return check(gpu, "reserved regions", GP_CHECK_INFO, "%s: %s", path,
			     r == -ENOENT ? "missing (kernel older than 4.11)" : strerror(-r));
	}
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		unsigned long long start, end;
		char type[32];

		if (sscanf(l, "%llx %llx %31s", &start, &end, type) != 3) {
			r = gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_SYSFS_UNREADABLE,
				    "Check the kernel log (dmesg) for IOMMU errors.",
				    "%s: line \"%.60s\" does not parse", path, l);
			if (r < 0)
				goto out;
			continue;
		}
		/* "direct" is an RMRR the device keeps using (Intel VT-d 3.0 §8.4);
		 * "direct-relaxable" ones (USB, GPU) are released on assignment. */
		if (strcmp(type, "direct") == 0) {
			direct = append(direct, "%s0x%llx-0x%llx", ndirect ? ", " : "", start, end);
			if (!direct) {
				r = -ENOMEM;
				goto out;
			}
			ndirect++;
		}
	}
	if (ndirect) {
		r = gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_RMRR,
			    "The firmware reserves memory this device must keep using (an RMRR), "
			    "which VFIO refuses. Disable the feature that needs it in the firmware "
			    "setup (often remote management or a shared-memory iGPU mode), or use "
			    "another slot or system.",
			    "IOMMU group %d has %zu direct reserved region%s (RMRR): %s.",
			    d->iommu_group, ndirect, ndirect == 1 ? "" : "s", direct);
		if (r == 0)
			r = check(gpu, "reserved regions", GP_CHECK_FAIL, "direct: %s", direct);
	} else {
		r = check(gpu, "reserved regions", GP_CHECK_PASS, "no direct (RMRR) region");
	}
out:
	free(text);
	free(direct);
	return r;
}

static int check_acs(struct gp_survey *s, struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *up[32];
	size_t n = gp_pci_scan_upstream(s->scan, gpu->dev, up, GP_ARRAY_SIZE(up));
	char *missing = strdup(""), *ok = strdup(""), *unknown = strdup("");
	size_t nmissing = 0;
	int r = -ENOMEM;

	if (n > GP_ARRAY_SIZE(up))
		n = GP_ARRAY_SIZE(up);
	/* The kernel turns ACS controls on only when the IOMMU is on:
	 * with it off they say nothing (iommu-disabled says what matters). */
	if (!s->host.iommu_enabled) {
		free(missing);
		free(ok);
		free(unknown);
		return check(gpu, "ACS", GP_CHECK_INFO, "not checked: the IOMMU is off");
	}
	for (size_t i = 0; i < n && missing && ok && unknown; i++) {
		const struct gp_pci_dev *b = up[i];
		const struct gp_pci_config_info *c = &b->cfg;
		uint16_t need;

		/* Isolation is decided at root and downstream ports (PCIe 4.0
		 * §6.12.1.1); upstream ports and conventional bridges are not
		 * where ACS lives. */
		if (!b->config_ok || !c->caps_known) {
			unknown = append(unknown, " %s", b->address);
			continue;
		}
		if (c->pcie_type != GP_PCIE_ROOT_PORT && c->pcie_type != GP_PCIE_DOWNSTREAM_PORT)
			continue;
		if (!c->ext_caps_known) {
			unknown = append(unknown, " %s", b->address);
			continue;
		}
		/* As the kernel does: of the required controls, those the port
		 * implements must be on. */
		need = (uint16_t)(GP_PCI_ACS_REQUIRED & c->acs_cap);
		if (!(c->caps & GP_PCI_CAP_ACS)) {
			missing = append(missing, "%s%s (no ACS capability)", nmissing ? ", " : "",
					 b->address);
			nmissing++;
		} else if ((c->acs_ctrl & need) != need || !need) {
			missing = append(missing, "%s%s (ACS control 0x%04x, needs 0x%04x)",
					 nmissing ? ", " : "", b->address, c->acs_ctrl,
					 need ? need : GP_PCI_ACS_REQUIRED);
			nmissing++;
		} else {
			ok = append(ok, " %s", b->address);
		}
	}
	if (!missing || !ok || !unknown)
		goto out;
	if (nmissing) {
		if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_NO_ACS,
			    "Enable ACS (Access Control Services) for PCIe ports in the firmware "
			    "setup, or move the card to a CPU-attached slot; without ACS, peer "
			    "devices can reach each other past the IOMMU and groups grow.",
			    "Bridge%s above %s without ACS isolation: %s.", nmissing == 1 ? "" : "s",
			    gpu->dev->address, missing) < 0 ||
		    check(gpu, "ACS", GP_CHECK_WARN, "missing on %s", missing) < 0)
			goto out;
	} else if (n == 0) {
		if (check(gpu, "ACS", GP_CHECK_PASS, "on the root bus: no bridge above") < 0)
			goto out;
	} else if (check(gpu, "ACS", *unknown ? GP_CHECK_INFO : GP_CHECK_PASS,
			 "enabled on:%s%s%s", *ok ? ok : " (none needed)",
			 *unknown ? "; unknown (config space readable by root only) on:" : "",
			 unknown) < 0) {
		goto out;
	}
	r = 0;
out:
	free(missing);
	free(ok);
	free(unknown);
	return r;
}

static int check_reset(struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;
	const struct gp_quirk *q = gp_quirk_find(d->vendor_id, d->device_id);
	char methods[256] = "";
	int r;

	for (size_t i = 0; i < d->reset_methods.n; i++) {
		size_t l = strlen(methods);

		snprintf(methods + l, sizeof(methods) - l, "%s%s", i ? ", " : "",
			 d->reset_methods.v[i]);
	}
	if (d->reset_methods.n == 0 && !d->has_reset_file) {
		r = gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_NO_RESET,
			    "The GPU keeps its state between VMs: stop one VM fully before another "
			    "uses it, and expect to reboot the host if a guest leaves it hung. A "
			    "card in a slot that supports a bus reset (alone on its bus) helps.",
			    "%s offers no reset method (no FLR, PM or bus reset): it cannot be "
			    "reset between VMs.", d->address);
		if (r == 0)
			r = check(gpu, "reset", GP_CHECK_WARN, "none");
	} else {
		r = check(gpu, "reset", GP_CHECK_PASS, "%s",
			  *methods ? methods : "available (kernel has no reset_method file)");
	}
	if (r == 0 && q && (q->flags & GP_QUIRK_RESET_UNRELIABLE)) {
		r = gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_RESET_QUIRK,
			    "Install the vendor-reset kernel module (it knows how to reset this "
			    "chip), or reboot the host between VM runs.",
			    "%s is an %s GPU (%04x:%04x), whose reset is known to be unreliable: %s.",
			    d->address, q->family, d->vendor_id, d->device_id, q->note);
		if (r == 0)
			r = check(gpu, "reset quirk", GP_CHECK_WARN, "%s: unreliable reset",
				  q->family);
	}
	return r;
}

static int check_msi(struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;
	const struct gp_pci_config_info *c = &d->cfg;

	if (!d->config_ok)
		return check(gpu, "interrupts", GP_CHECK_INFO, "unknown (config space unreadable)");
	if (!c->caps_known)
		return check(gpu, "interrupts", GP_CHECK_INFO,
			     "unknown (full config space is readable by root only)");
	if (!(c->caps & (GP_PCI_CAP_MSI | GP_PCI_CAP_MSIX))) {
		if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_NO_MSI,
			    "Expect shared legacy interrupts (INTx), which are slower and may "
			    "conflict with host devices on the same line; prefer a card with MSI.",
			    "%s has neither MSI nor MSI-X.", d->address) < 0)
			return -ENOMEM;
		return check(gpu, "interrupts", GP_CHECK_WARN, "INTx only (no MSI, no MSI-X)");
	}
	return check(gpu, "interrupts", GP_CHECK_PASS, "%s%s%s",
		     c->caps & GP_PCI_CAP_MSI ? "MSI" : "",
		     (c->caps & GP_PCI_CAP_MSI) && (c->caps & GP_PCI_CAP_MSIX) ? ", " : "",
		     c->caps & GP_PCI_CAP_MSIX ? "MSI-X" : "");
}

static int check_boot_vga(struct gp_survey_gpu *gpu)
{
	if (!gpu->dev->boot_vga)
		return check(gpu, "boot VGA", GP_CHECK_PASS, "no");
	if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_BOOT_VGA,
		    "Make another GPU the primary display in the firmware setup, or run the "
		    "host headless (boot with video=efifb:off and no display manager); the "
		    "host console goes dark when this GPU is dismounted.",
		    "%s is the boot VGA device: the host console and firmware framebuffer are "
		    "on it.", gpu->dev->address) < 0)
		return -ENOMEM;
	return check(gpu, "boot VGA", GP_CHECK_WARN, "yes: the host console is on it");
}

static int check_in_use(struct gp_ctx *ctx, struct gp_survey *s, struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;
	int minor = -2;
	char *list;
	int r;

	if (!d->drm_nodes.n && !(d->driver && strcmp(d->driver, "nvidia") == 0))
		return check(gpu, "in use", GP_CHECK_PASS, "no device node");
	if (!s->holders_read) {
		r = read_holders(ctx, s);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < s->nholders; i++) {
		const struct holder *h = &s->holders[i];

		if (!node_of_gpu(ctx, d, h->node, &minor))
			continue;
		if (gp_strv_push_printf(&gpu->holders, "%d (%s) %s", h->pid, h->comm, h->node) < 0)
			return -ENOMEM;
	}
	if (!gpu->holders.n)
		return check(gpu, "in use", GP_CHECK_PASS, "no process holds its nodes");
	list = strdup("");
	for (size_t i = 0; i < gpu->holders.n && list; i++)
		list = append(list, "%s%s", i ? ", " : "", gpu->holders.v[i]);
	if (!list)
		return -ENOMEM;
	r = gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_IN_USE,
		    "Stop these processes (display manager, compute jobs, nvidia-persistenced) "
		    "before dismounting the GPU; dismounting would fail or kill their work.",
		    "Host processes hold the GPU's device nodes: %s.", list);
	if (r == 0)
		r = check(gpu, "in use", GP_CHECK_WARN, "%s", list);
	free(list);
	return r;
}

static int check_vfio(struct gp_survey *s, struct gp_survey_gpu *gpu)
{
	const char *rel = s->host.kernel;

	if (gpu->dev->driver && strcmp(gpu->dev->driver, "vfio-pci") == 0)
		return check(gpu, "vfio-pci", GP_CHECK_PASS, "bound");
	switch (s->host.vfio_pci) {
	case GP_VFIO_LOADED:
		return check(gpu, "vfio-pci", GP_CHECK_PASS, "module loaded");
	case GP_VFIO_AVAILABLE:
		if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_VFIO_NOT_LOADED,
			    "Nothing needed: gpupass loads it when dismounting (modprobe vfio-pci); "
			    "to load it at boot, add vfio-pci to /etc/modules.",
			    "The vfio-pci module is not loaded (it is available for kernel %s).",
			    rel) < 0)
			return -ENOMEM;
		return check(gpu, "vfio-pci", GP_CHECK_INFO, "available, not loaded");
	case GP_VFIO_MISSING:
		break;
	}
	if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_VFIO_MISSING,
		    "Install a kernel with VFIO (CONFIG_VFIO_PCI), e.g. the distribution's "
		    "standard kernel package, and boot it.",
		    "The vfio-pci module is neither loaded nor installed for kernel %s "
		    "(/lib/modules/%s).", rel, rel) < 0)
		return -ENOMEM;
	return check(gpu, "vfio-pci", GP_CHECK_FAIL, "missing for kernel %s", rel);
}

static int check_bars(struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;
	char lo[32], hi[32];

	gp_format_size(gpu->mmio_low, lo, sizeof(lo));
	gp_format_size(gpu->mmio_high, hi, sizeof(hi));
	if (gpu->mmio_high > QEMU_HOLE64_DEFAULT) {
		char want[32];

		if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_LARGE_BAR,
			    "gpupass sizes the VM's 64-bit MMIO window from the BARs; with other "
			    "tools, raise it (QEMU: -global q35-pcihost.pci-hole64-size=<size>; "
			    "libvirt: <pcihole64>), and check the host firmware has 'Above 4G "
			    "decoding' on.",
			    "%s needs %s of 64-bit MMIO, more than QEMU's default 32 GiB window.",
			    d->address, gp_format_size(gpu->mmio_high, want, sizeof(want))) < 0)
			return -ENOMEM;
		return check(gpu, "MMIO", GP_CHECK_INFO, "32-bit %s, 64-bit %s (above 32 GiB)", lo,
			     hi);
	}
	return check(gpu, "MMIO", d->nbars ? GP_CHECK_PASS : GP_CHECK_INFO,
		     "32-bit %s, 64-bit %s%s", lo, hi, d->nbars ? "" : " (resource unreadable)");
}

static int check_driver(struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;

	if (d->driver && strcmp(d->driver, "vfio-pci") == 0) {
		if (gp_survey_gpu_add_problemf(gpu, GP_METHOD_DDA, GP_PROB_ALREADY_DISMOUNTED,
			    "Nothing needed for DDA: it can be given to a VM as it is. To use it on "
			    "the host again: gpupass mount.",
			    "%s is already bound to vfio-pci (dismounted from the host).",
			    d->address) < 0)
			return -ENOMEM;
		return check(gpu, "driver", GP_CHECK_INFO, "vfio-pci (dismounted)");
	}
	return check(gpu, "driver", d->driver ? GP_CHECK_PASS : GP_CHECK_INFO, "%s",
		     d->driver ? d->driver : "none bound");
}

/*
 * PV readiness, for now: a host driver (not vfio-pci) owns the GPU, so host
 * OpenCL can use it. The PV work refines this (an OpenCL platform exposing
 * this device); its hook runs after.
 */
static int check_pv(struct gp_survey_gpu *gpu)
{
	const struct gp_pci_dev *d = gpu->dev;

	if (!d->driver)
		return gp_survey_gpu_add_problemf(gpu, GP_METHOD_PV, GP_PROB_NO_HOST_DRIVER,
			       "Install and load the GPU's host driver (e.g. amdgpu, i915, nvidia), "
			       "then run the survey again.",
			       "%s is bound to no driver: the host cannot run work on it.",
			       d->address);
	if (strcmp(d->driver, "vfio-pci") == 0)
		return gp_survey_gpu_add_problemf(gpu, GP_METHOD_PV, GP_PROB_NO_HOST_DRIVER,
			       "Give it back to the host first: gpupass mount.",
			       "%s is bound to vfio-pci (dismounted for DDA): the host cannot "
			       "share it.", d->address);
	return 0;
}

static void finish(struct gp_survey_gpu *gpu)
{
	for (int m = 0; m < GP_METHOD__COUNT; m++) {
		struct gp_method_result *res = &gpu->methods[m];

		/* Insertion sort: stable, and lists are short. */
		for (size_t i = 1; i < res->n_problems; i++) {
			struct gp_problem t = res->problems[i];
			size_t j = i;

			while (j > 0 && res->problems[j - 1].severity < t.severity) {
				res->problems[j] = res->problems[j - 1];
				j--;
			}
			res->problems[j] = t;
		}
		res->ready = true;
		for (size_t i = 0; i < res->n_problems; i++)
			if (res->problems[i].severity == GP_SEV_ERROR)
				res->ready = false;
	}
}

static int survey_gpu(struct gp_ctx *ctx, struct gp_survey *s, const struct gp_survey_opts *opts,
		      struct gp_survey_gpu *gpu)
{
	int r;

	gp_pci_dev_mmio(gpu->dev, &gpu->mmio_low, &gpu->mmio_high);
	if ((r = check_sysfs(gpu)) < 0 || (r = check_driver(gpu)) < 0 ||
	    (r = check_iommu(s, gpu)) < 0 || (r = check_group(s, gpu)) < 0 ||
	    (r = check_rmrr(ctx, gpu)) < 0 || (r = check_acs(s, gpu)) < 0 ||
	    (r = check_reset(gpu)) < 0 || (r = check_msi(gpu)) < 0 ||
	    (r = check_boot_vga(gpu)) < 0 || (r = check_in_use(ctx, s, gpu)) < 0 ||
	    (r = check_vfio(s, gpu)) < 0 || (r = check_bars(gpu)) < 0 ||
	    (r = check_pv(gpu)) < 0)
		return r;
	if (opts && opts->pv_hook) {
		r = opts->pv_hook(opts->pv_hook_data, ctx, gpu->dev, gpu);
		if (r < 0)
			return r;
	}
	finish(gpu);
	return 0;
}

static void gpu_clear(struct gp_survey_gpu *gpu)
{
	for (size_t i = 0; i < gpu->n_checks; i++)
		free(gpu->checks[i].detail);
	free(gpu->checks);
	gp_strv_clear(&gpu->holders);
	for (int m = 0; m < GP_METHOD__COUNT; m++) {
		for (size_t i = 0; i < gpu->methods[m].n_problems; i++) {
			free(gpu->methods[m].problems[i].message);
			free(gpu->methods[m].problems[i].fix);
		}
		free(gpu->methods[m].problems);
	}
	json_object_put(gpu->json_extra);
}

int gp_survey_run(struct gp_ctx *ctx, const struct gp_survey_opts *opts,
		  struct gp_survey **out)
{
	struct gp_survey *s = calloc(1, sizeof(*s));
	size_t n;
	int r;

	if (!s)
		return -ENOMEM;
	r = gp_pci_scan_new_flags(ctx, 0, &s->scan);
	if (r < 0)
		goto err_free;
	r = read_host(ctx, &s->host);
	if (r < 0)
		goto err_free;
	n = gp_pci_scan_count(s->scan);
	s->host.pci_devices = n;
	s->gpus = calloc(n ? n : 1, sizeof(*s->gpus));
	if (!s->gpus) {
		r = -ENOMEM;
		goto err_free;
	}
	for (size_t i = 0; i < n; i++) {
		const struct gp_pci_dev *d = gp_pci_scan_get(s->scan, i);

		if (!gp_pci_dev_is_gpu(d))
			continue;
		s->gpus[s->ngpus].dev = d;
		r = survey_gpu(ctx, s, opts, &s->gpus[s->ngpus]);
		s->ngpus++;
		if (r < 0)
			goto err_free;
	}
	*out = s;
	return 0;

err_free:
	gp_survey_free(s);
	return r;
}

void gp_survey_free(struct gp_survey *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ngpus; i++)
		gpu_clear(&s->gpus[i]);
	free(s->gpus);
	for (size_t i = 0; i < s->nholders; i++)
		free(s->holders[i].node);
	free(s->holders);
	gp_pci_scan_free(s->scan);
	json_object_put(s->host_extra);
	free(s);
}

const struct gp_survey_host *gp_survey_host(const struct gp_survey *s)
{
	return &s->host;
}

const struct gp_pci_scan *gp_survey_scan(const struct gp_survey *s)
{
	return s->scan;
}

size_t gp_survey_gpu_count(const struct gp_survey *s)
{
	return s->ngpus;
}

const struct gp_survey_gpu *gp_survey_gpu(const struct gp_survey *s, size_t i)
{
	return i < s->ngpus ? &s->gpus[i] : NULL;
}

int gp_survey_find(const struct gp_survey *s, const char *query,
		   const struct gp_survey_gpu **out, struct gp_strv *candidates)
{
	const struct gp_pci_dev *d;
	int r = gp_pci_scan_find_gpu(s->scan, query, &d, candidates);

	if (r < 0)
		return r;
	for (size_t i = 0; i < s->ngpus; i++) {
		if (s->gpus[i].dev == d) {
			*out = &s->gpus[i];
			return 0;
		}
	}
	return -ENOENT;
}

bool gp_survey_gpu_has(const struct gp_survey_gpu *gpu, enum gp_method method,
		       enum gp_problem_code code)
{
	if ((unsigned)method >= GP_METHOD__COUNT)
		return false;
	for (size_t i = 0; i < gpu->methods[method].n_problems; i++)
		if (gpu->methods[method].problems[i].code == code)
			return true;
	return false;
}

const struct gp_problem *gp_survey_gpu_top_problem(const struct gp_survey_gpu *gpu)
{
	const struct gp_problem *top = NULL;

	for (int m = 0; m < GP_METHOD__COUNT; m++) {
		const struct gp_method_result *res = &gpu->methods[m];

		/* Problems are sorted most severe first. */
		if (res->n_problems && (!top || res->problems[0].severity > top->severity))
			top = &res->problems[0];
	}
	return top;
}

/* ---------- JSON ---------- */

static struct json_object *jstr_or_null(const char *s)
{
	return s ? json_object_new_string(s) : json_object_new_null();
}

/* Adds @v (NULL is JSON null) to @o; a failure sets *oom, checked once at
 * the end so the builders stay flat. */
static void add(struct json_object *o, const char *k, struct json_object *v, bool *oom)
{
	if (!o || json_object_object_add(o, k, v) < 0) {
		json_object_put(v);
		*oom = true;
	}
}

/* Copies the keys hooks added (shared references) into @o; a built-in key
 * of the same name wins (keys are a contract). */
static void add_extras(struct json_object *o, struct json_object *extra, bool *oom)
{
	if (!extra || !o)
		return;
	json_object_object_foreach(extra, k, v) {
		if (!json_object_object_get_ex(o, k, NULL))
			add(o, k, json_object_get(v), oom);
	}
}

static struct json_object *problems_json(const struct gp_method_result *res, bool *oom)
{
	struct json_object *a = json_object_new_array();

	if (!a) {
		*oom = true;
		return NULL;
	}
	for (size_t i = 0; i < res->n_problems; i++) {
		const struct gp_problem *p = &res->problems[i];
		struct json_object *o = json_object_new_object();

		if (!o) {
			*oom = true;
			break;
		}
		add(o, "code", json_object_new_string(gp_problem_code_name(p->code)), oom);
		add(o, "severity", json_object_new_string(gp_severity_name(p->severity)), oom);
		add(o, "message", json_object_new_string(p->message), oom);
		add(o, "fix", json_object_new_string(p->fix), oom);
		if (json_object_array_add(a, o) < 0)
			*oom = true;
	}
	return a;
}

static const char *hex4(uint16_t v, char *buf)
{
	snprintf(buf, 5, "%04x", v);
	return buf;
}

int gp_survey_gpu_to_json(const struct gp_survey_gpu *gpu, struct json_object **out)
{
	const struct gp_pci_dev *d = gpu->dev;
	struct json_object *g = json_object_new_object(), *a, *o;
	char buf[16], name[300];
	bool oom = !g;

	if (oom)
		return -ENOMEM;
	add(g, "address", json_object_new_string(d->address), &oom);
	add(g, "location_path", json_object_new_string(d->location_path ? d->location_path : ""),
	    &oom);
	add(g, "vendor_id", json_object_new_string(hex4(d->vendor_id, buf)), &oom);
	add(g, "device_id", json_object_new_string(hex4(d->device_id, buf)), &oom);
	add(g, "subsystem_vendor_id", json_object_new_string(hex4(d->subsys_vendor_id, buf)),
	    &oom);
	add(g, "subsystem_device_id", json_object_new_string(hex4(d->subsys_device_id, buf)),
	    &oom);
	snprintf(buf, sizeof(buf), "%06x", d->class_code & 0xffffff);
	add(g, "class", json_object_new_string(buf), &oom);
	if (d->vendor_name)
		snprintf(name, sizeof(name), "%s", d->vendor_name);
	else
		snprintf(name, sizeof(name), "Vendor %04x", d->vendor_id);
	add(g, "vendor", json_object_new_string(name), &oom);
	if (d->device_name)
		snprintf(name, sizeof(name), "%s", d->device_name);
	else
		snprintf(name, sizeof(name), "Device %04x", d->device_id);
	add(g, "name", json_object_new_string(name), &oom);
	add(g, "driver", jstr_or_null(d->driver), &oom);
	add(g, "numa_node", json_object_new_int(d->numa_node), &oom);
	add(g, "boot_vga", json_object_new_boolean(d->boot_vga), &oom);
	add(g, "iommu_group", d->iommu_group >= 0 ? json_object_new_int(d->iommu_group) : NULL,
	    &oom);
	a = json_object_new_array();
	for (size_t i = 0; a && i < d->group_members.n; i++)
		json_object_array_add(a, json_object_new_string(d->group_members.v[i]));
	add(g, "group_members", a, &oom);
	a = json_object_new_array();
	for (size_t i = 0; a && i < d->reset_methods.n; i++)
		json_object_array_add(a, json_object_new_string(d->reset_methods.v[i]));
	add(g, "reset_methods", a, &oom);
	add(g, "msi", json_object_new_boolean(d->config_ok && (d->cfg.caps & GP_PCI_CAP_MSI)),
	    &oom);
	add(g, "msix", json_object_new_boolean(d->config_ok && (d->cfg.caps & GP_PCI_CAP_MSIX)),
	    &oom);
	a = json_object_new_array();
	for (int i = 0; a && i < d->nbars && i < GP_PCI_NUM_BARS; i++) {
		const struct gp_pci_bar *b = &d->bars[i];

		if (!b->size)
			continue;
		o = json_object_new_object();
		if (!o)
			break;
		add(o, "index", json_object_new_int(b->index), &oom);
		add(o, "size", json_object_new_int64((int64_t)b->size), &oom);
		add(o, "is_64bit", json_object_new_boolean(b->is_64bit), &oom);
		add(o, "prefetchable", json_object_new_boolean(b->prefetchable), &oom);
		add(o, "io", json_object_new_boolean(b->is_io), &oom);
		json_object_array_add(a, o);
	}
	add(g, "bars", a, &oom);
	o = json_object_new_object();
	if (o) {
		add(o, "low_bytes", json_object_new_int64((int64_t)gpu->mmio_low), &oom);
		add(o, "high_bytes", json_object_new_int64((int64_t)gpu->mmio_high), &oom);
	}
	add(g, "mmio", o, &oom);
	o = json_object_new_object();
	if (o) {
		add(o, "total_vfs",
		    json_object_new_int(d->sriov_total_vfs > 0 ? d->sriov_total_vfs : 0), &oom);
		add(o, "num_vfs", json_object_new_int(d->sriov_num_vfs > 0 ? d->sriov_num_vfs : 0),
		    &oom);
	}
	add(g, "sriov", o, &oom);
	a = json_object_new_array();
	for (size_t i = 0; a && i < d->n_mdev_types; i++) {
		o = json_object_new_object();
		if (!o)
			break;
		add(o, "id", json_object_new_string(d->mdev_types[i].id), &oom);
		add(o, "name", json_object_new_string(d->mdev_types[i].name), &oom);
		add(o, "available", json_object_new_int(d->mdev_types[i].available), &oom);
		json_object_array_add(a, o);
	}
	add(g, "mdev_types", a, &oom);
	o = json_object_new_object();
	for (int m = 0; o && m < GP_METHOD__COUNT; m++) {
		struct json_object *mo = json_object_new_object();

		if (!mo) {
			oom = true;
			break;
		}
		add(mo, "ready", json_object_new_boolean(gpu->methods[m].ready), &oom);
		add(mo, "problems", problems_json(&gpu->methods[m], &oom), &oom);
		add(o, gp_method_name((enum gp_method)m), mo, &oom);
	}
	add(g, "methods", o, &oom);
	add_extras(g, gpu->json_extra, &oom);
	if (oom || !a || !o) {
		json_object_put(g);
		return -ENOMEM;
	}
	*out = g;
	return 0;
}

int gp_survey_to_json(const struct gp_survey *s, struct json_object **out)
{
	struct json_object *root = json_object_new_object(), *host, *iommu, *gpus;
	bool oom = !root;

	if (oom)
		return -ENOMEM;
	add(root, "schema", json_object_new_string("gpupass.survey/1"), &oom);
	host = json_object_new_object();
	iommu = json_object_new_object();
	if (!host || !iommu) {
		json_object_put(host);
		json_object_put(iommu);
		json_object_put(root);
		return -ENOMEM;
	}
	add(iommu, "enabled", json_object_new_boolean(s->host.iommu_enabled), &oom);
	add(iommu, "groups", json_object_new_int(s->host.iommu_groups), &oom);
	add(host, "iommu", iommu, &oom);
	add(host, "vfio_pci", json_object_new_string(gp_vfio_state_name(s->host.vfio_pci)), &oom);
	add(host, "kernel", json_object_new_string(s->host.kernel), &oom);
	add(host, "pci_devices", json_object_new_int64((int64_t)s->host.pci_devices), &oom);
	add_extras(host, s->host_extra, &oom);
	add(root, "host", host, &oom);
	gpus = json_object_new_array();
	if (!gpus)
		oom = true;
	for (size_t i = 0; gpus && i < s->ngpus; i++) {
		struct json_object *g;

		if (gp_survey_gpu_to_json(&s->gpus[i], &g) < 0 ||
		    json_object_array_add(gpus, g) < 0) {
			oom = true;
			break;
		}
	}
	add(root, "gpus", gpus, &oom);
	if (oom) {
		json_object_put(root);
		return -ENOMEM;
	}
	*out = root;
	return 0;
}
