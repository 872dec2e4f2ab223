/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The survey: for each GPU of the host, whether it can be given to a VM by
 * DDA (whole device through vfio-pci) and by PV (shared through gpupass-pvd),
 * and every problem that stands in the way, each with a stable code, a
 * severity, a sentence and the fix. Any problem of severity error makes the
 * method not ready.
 *
 * The survey only reads (through gp_sysfs); it never writes to sysfs.
 * A device with garbled files is reported with a `sysfs-unreadable` problem
 * naming the file; the survey of the other devices continues.
 *
 * Ownership: a survey owns its scan, GPUs and problems; every pointer it
 * hands out is borrowed and lives until gp_survey_free().
 */
#ifndef GP_HOST_SURVEY_H
#define GP_HOST_SURVEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "host/context.h"
#include "host/pci.h"

enum gp_severity {
	GP_SEV_INFO = 0,
	GP_SEV_WARNING = 1,
	GP_SEV_ERROR = 2,
};
/* "info", "warning", "error". */
const char *gp_severity_name(enum gp_severity sev);

/* Problem codes. Their names (gp_problem_code_name) are a contract of the
 * JSON output: add codes, never rename. */
enum gp_problem_code {
	GP_PROB_IOMMU_DISABLED,     /* iommu-disabled (error) */
	GP_PROB_NO_IOMMU_GROUP,     /* no-iommu-group (error) */
	GP_PROB_GROUP_SHARED,       /* group-shared (error) */
	GP_PROB_GROUP_COMPANION,    /* group-companion (info) */
	GP_PROB_RMRR,               /* rmrr (error) */
	GP_PROB_NO_ACS,             /* no-acs (warning) */
	GP_PROB_NO_RESET,           /* no-reset (warning) */
	GP_PROB_RESET_QUIRK,        /* reset-quirk (warning) */
	GP_PROB_NO_MSI,             /* no-msi (warning) */
	GP_PROB_BOOT_VGA,           /* boot-vga (warning) */
	GP_PROB_IN_USE,             /* in-use (warning) */
	GP_PROB_VFIO_NOT_LOADED,    /* vfio-not-loaded (info) */
	GP_PROB_VFIO_MISSING,       /* vfio-missing (error) */
	GP_PROB_LARGE_BAR,          /* large-bar (info) */
	GP_PROB_ALREADY_DISMOUNTED, /* already-dismounted (info) */
	GP_PROB_SYSFS_UNREADABLE,   /* sysfs-unreadable (error): names the file */
	GP_PROB_NO_HOST_DRIVER,     /* no-host-driver (error, PV): unbound or on vfio-pci */
	/* PV: a host OpenCL device must report the GPU's PCI address (clprobe.h). */
	GP_PROB_NO_OPENCL_PLATFORM, /* no-opencl-platform (error, PV): the loader lists none */
	GP_PROB_NO_OPENCL_DEVICE,   /* no-opencl-device (error, PV): none is this GPU */
	GP_PROB_OPENCL_NO_PCI_INFO, /* opencl-no-pci-info (error, PV): no match, and GPU
				     * devices without a PCI location might be it */
	GP_PROB__COUNT
};
/* The stable name ("iommu-disabled"); NULL for an unknown value. */
const char *gp_problem_code_name(enum gp_problem_code code);
/* Default severity of a code. */
enum gp_severity gp_problem_code_severity(enum gp_problem_code code);

struct gp_problem {
	enum gp_problem_code code;
	enum gp_severity severity;
	char *message; /* what is wrong, naming the devices involved */
	char *fix;     /* what the operator should do */
};

enum gp_method {
	GP_METHOD_DDA = 0,
	GP_METHOD_PV = 1,
	GP_METHOD__COUNT
};
const char *gp_method_name(enum gp_method m); /* "dda", "pv" */

struct gp_method_result {
	bool ready;                 /* no problem of severity error */
	struct gp_problem *problems; /* most severe first, then in check order */
	size_t n_problems;
};

/* One check as the detail view lists it ("IOMMU group", "Reset", ...). */
enum gp_check_status {
	GP_CHECK_PASS,
	GP_CHECK_INFO,
	GP_CHECK_WARN,
	GP_CHECK_FAIL,
};
const char *gp_check_status_name(enum gp_check_status st); /* "ok", "info", "warn", "FAIL" */

struct gp_check {
	const char *name;       /* static string */
	enum gp_check_status status;
	char *detail;           /* what was found */
};

struct gp_survey_gpu {
	const struct gp_pci_dev *dev; /* borrowed from the survey's scan */
	uint64_t mmio_low, mmio_high; /* see gp_pci_dev_mmio() */
	struct gp_strv holders;       /* "1234 (Xorg) /dev/dri/card0" for in-use */
	struct gp_check *checks;
	size_t n_checks;
	struct gp_method_result methods[GP_METHOD__COUNT];
	struct json_object *json_extra; /* keys hooks added (gp_survey_gpu_add_json) */
};

enum gp_vfio_state {
	GP_VFIO_LOADED,    /* /sys/module/vfio_pci exists */
	GP_VFIO_AVAILABLE, /* not loaded, but in /lib/modules/<release>/ */
	GP_VFIO_MISSING,   /* neither */
};
const char *gp_vfio_state_name(enum gp_vfio_state st); /* "loaded", ... */

struct gp_survey_host {
	bool iommu_enabled;   /* /sys/kernel/iommu_groups has groups */
	int iommu_groups;     /* how many */
	enum gp_vfio_state vfio_pci;
	char kernel[128];     /* release: /proc/sys/kernel/osrelease, else uname */
	size_t pci_devices;   /* devices looked at */
};

/*
 * Hook for the PV method (the PV issue refines readiness). When set in the
 * options, it runs after the built-in PV checks for each GPU and may add
 * problems with gp_survey_gpu_add_problem(); readiness is computed after.
 * Returns 0 or -errno (which fails the survey).
 */
typedef int (*gp_survey_pv_hook)(void *data, struct gp_ctx *ctx,
				 const struct gp_pci_dev *dev,
				 struct gp_survey_gpu *gpu);

struct gp_survey_opts {
	gp_survey_pv_hook pv_hook; /* NULL: built-in PV checks only */
	void *pv_hook_data;
};

struct gp_survey;

/* Runs the survey. @opts may be NULL. Returns 0, or -errno when PCI
 * devices cannot be listed at all (-ENOENT: no /sys/bus/pci/devices) or
 * memory runs out. A host with no GPU is a success with 0 GPUs. */
int gp_survey_run(struct gp_ctx *ctx, const struct gp_survey_opts *opts,
		  struct gp_survey **out);
void gp_survey_free(struct gp_survey *survey);

const struct gp_survey_host *gp_survey_host(const struct gp_survey *survey);
const struct gp_pci_scan *gp_survey_scan(const struct gp_survey *survey);
size_t gp_survey_gpu_count(const struct gp_survey *survey);
const struct gp_survey_gpu *gp_survey_gpu(const struct gp_survey *survey, size_t i);

/* Same query rules and errors as gp_pci_scan_find_gpu(): 0, -ENOENT,
 * -ENOTUNIQ (with the matching addresses pushed onto @candidates). */
int gp_survey_find(const struct gp_survey *survey, const char *query,
		   const struct gp_survey_gpu **out, struct gp_strv *candidates);

/* True when @gpu has a problem with @code in @method. */
bool gp_survey_gpu_has(const struct gp_survey_gpu *gpu, enum gp_method method,
		       enum gp_problem_code code);
/* The most severe problem across both methods (DDA first on ties); NULL
 * when there is none. */
const struct gp_problem *gp_survey_gpu_top_problem(const struct gp_survey_gpu *gpu);

/* Adds a problem (for hooks). @severity < 0 takes the code's default.
 * Returns 0 or -ENOMEM. */
int gp_survey_gpu_add_problem(struct gp_survey_gpu *gpu, enum gp_method method,
			      enum gp_problem_code code, int severity,
			      const char *message, const char *fix);
/* The same with the code's default severity and a printf-style message. */
int gp_survey_gpu_add_problemf(struct gp_survey_gpu *gpu, enum gp_method method,
			       enum gp_problem_code code, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Adds a line to the GPU's checks, as the detail view lists them (for
 * hooks). @name must outlive the survey (a string literal). -ENOMEM. */
int gp_survey_gpu_add_check(struct gp_survey_gpu *gpu, const char *name,
			    enum gp_check_status status, const char *detail);

/* Adds key @key with value @val (NULL: JSON null) to the GPU's object in the
 * JSON output, after the built-in keys (for hooks: the contract grows by
 * adding keys; a built-in key of the same name is kept, never replaced).
 * Takes ownership of @val, also on failure. -EEXIST when a hook already
 * added @key, -ENOMEM. */
int gp_survey_gpu_add_json(struct gp_survey_gpu *gpu, const char *key, struct json_object *val);
/* The same for the "host" object. */
int gp_survey_add_host_json(struct gp_survey *survey, const char *key, struct json_object *val);

/* The JSON document of the contract ("schema":"gpupass.survey/1"); the
 * caller owns the result (json_object_put). -ENOMEM. */
int gp_survey_to_json(const struct gp_survey *survey, struct json_object **out);
/* One element of "gpus". */
int gp_survey_gpu_to_json(const struct gp_survey_gpu *gpu, struct json_object **out);

#endif
