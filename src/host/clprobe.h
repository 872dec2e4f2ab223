/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host's OpenCL platforms and devices, listed through the system's ICD
 * loader (ocl-icd: the .icd files of /etc/OpenCL/vendors, or OCL_ICD_VENDORS), and where
 * each device sits on the PCI bus. PV runs guests' work on a host OpenCL
 * device, so the survey calls a GPU PV-ready only when some host device
 * reports that GPU's PCI address (gp_clprobe_pv_hook).
 *
 * The PCI location comes from, in this order, whichever extension the
 * device lists in CL_DEVICE_EXTENSIONS (each is asked only when listed):
 *   cl_khr_pci_bus_info           CL_DEVICE_PCI_BUS_INFO_KHR: domain, bus,
 *                                 device, function (OpenCL Extension Spec.,
 *                                 "cl_khr_pci_bus_info")
 *   cl_nv_device_attribute_query  CL_DEVICE_PCI_BUS_ID_NV, CL_DEVICE_PCI_SLOT_ID_NV
 *                                 (device << 3 | function), and the domain from
 *                                 CL_DEVICE_PCI_DOMAIN_ID_NV where the driver has it
 *   cl_amd_device_attribute_query CL_DEVICE_TOPOLOGY_AMD (bus, device, function;
 *                                 no domain)
 * Without a domain, a device matches a GPU on bus, device and function alone.
 *
 * gpupass's own PV platform (the guest ICD: platform name starting with
 * "gpupass", or ICD suffix "GPPV"), if the loader lists it, is skipped and
 * counted: it forwards to gpupass-pvd, it does not drive a GPU.
 *
 * Loading the vendors' ICDs is slow (PoCL alone costs tens of milliseconds),
 * so gp_clprobe_new() enumerates nothing: gp_clprobe_run() does, once, and
 * the survey hook calls it only for a GPU bound to a host driver.
 *
 * Ownership: the probe owns every string and struct it hands out.
 */
#ifndef GP_HOST_CLPROBE_H
#define GP_HOST_CLPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "host/context.h"
#include "host/pci.h"
#include "host/survey.h"

/* Where a device's PCI location came from. */
enum gp_cl_pci_source {
	GP_CL_PCI_NONE = 0,
	GP_CL_PCI_KHR,  /* cl_khr_pci_bus_info */
	GP_CL_PCI_NV,   /* cl_nv_device_attribute_query */
	GP_CL_PCI_AMD,  /* cl_amd_device_attribute_query */
};
/* The extension's name ("cl_khr_pci_bus_info"); "none" for GP_CL_PCI_NONE. */
const char *gp_cl_pci_source_name(enum gp_cl_pci_source src);

/* OpenCL device type bits (CL_DEVICE_TYPE_*, OpenCL 3.0 §4.2 table 5). */
#define GP_CL_TYPE_CPU (1u << 1)
#define GP_CL_TYPE_GPU (1u << 2)
#define GP_CL_TYPE_ACCELERATOR (1u << 3)
#define GP_CL_TYPE_CUSTOM (1u << 4)

struct gp_cl_device {
	size_t platform;        /* index of its platform */
	char *name;             /* CL_DEVICE_NAME ("?" when unreadable) */
	uint64_t type;          /* CL_DEVICE_TYPE bits */
	enum gp_cl_pci_source pci_source; /* GP_CL_PCI_NONE: no location known */
	bool pci_domain_known;  /* false: AMD topology, NVIDIA without the domain query */
	struct gp_pci_addr pci; /* valid when pci_source != GP_CL_PCI_NONE */
};

struct gp_cl_platform {
	char *name;    /* CL_PLATFORM_NAME */
	char *vendor;  /* CL_PLATFORM_VENDOR */
	char *version; /* CL_PLATFORM_VERSION */
	size_t n_devices;
};

struct gp_clprobe;

/* A probe that has not looked yet. -ENOMEM. */
int gp_clprobe_new(struct gp_ctx *ctx, struct gp_clprobe **out);
void gp_clprobe_free(struct gp_clprobe *probe);

/* Lists the platforms and devices, the first time only (later calls return
 * 0 at once). A loader that finds no platform, or a platform or device
 * that does not answer, is not an error: it lists what it could and logs
 * what it could not. Returns 0 or -ENOMEM. */
int gp_clprobe_run(struct gp_clprobe *probe);
bool gp_clprobe_has_run(const struct gp_clprobe *probe);
/* Milliseconds the run took (0 before it). */
double gp_clprobe_run_ms(const struct gp_clprobe *probe);

size_t gp_clprobe_platform_count(const struct gp_clprobe *probe);
const struct gp_cl_platform *gp_clprobe_platform(const struct gp_clprobe *probe, size_t i);
size_t gp_clprobe_device_count(const struct gp_clprobe *probe);
const struct gp_cl_device *gp_clprobe_device(const struct gp_clprobe *probe, size_t i);
/* Names of the gpupass platforms that were skipped. */
const struct gp_strv *gp_clprobe_skipped(const struct gp_clprobe *probe);

/* True when the device can be what drives a GPU: a GPU, accelerator or
 * custom device. A CPU device (PoCL's) never is. */
bool gp_cl_device_can_drive_gpu(const struct gp_cl_device *dev);
/* True when @dev reports PCI location @addr (bus, device, function; and the
 * domain when the device gives one). */
bool gp_cl_device_at(const struct gp_cl_device *dev, const struct gp_pci_addr *addr);
/* "gpu", "cpu", "accelerator", "custom", "other". */
const char *gp_cl_device_type_name(uint64_t type);
/* The location as text: "0000:3b:00.0", or "3b:00.0" when the domain is not
 * known; "" when none. @buf >= GP_PCI_ADDR_LEN. */
const char *gp_cl_device_pci_format(const struct gp_cl_device *dev, char *buf, size_t len);

/* True when a space-separated extension list (CL_DEVICE_EXTENSIONS) holds
 * @name as a whole word. NULL list: false. */
bool gp_cl_ext_has(const char *list, const char *name);

/* Decoders of the raw answers (@len bytes, as the driver returned them);
 * 0, or -EINVAL when the size is wrong or a field is out of range (bus >
 * 255, device > 31, function > 7, AMD topology of another type). */
int gp_cl_pci_from_khr(const void *buf, size_t len, struct gp_pci_addr *out);
int gp_cl_pci_from_nv(uint32_t bus, uint32_t slot, struct gp_pci_addr *out);
int gp_cl_pci_from_amd(const void *buf, size_t len, struct gp_pci_addr *out);

/* {"probed":bool,"platforms":[{"name","vendor","version","devices":[{"name",
 * "type","pci":str|null,"pci_source":str|null}]}],"skipped_platforms":[str]}.
 * -ENOMEM. */
int gp_clprobe_to_json(const struct gp_clprobe *probe, struct json_object **out);

/*
 * The survey's PV hook (gp_survey_opts.pv_hook, with pv_hook_data the
 * probe). For a GPU bound to a host driver, it runs the probe (first time)
 * and adds: the "OpenCL" check, the GPU's "opencl" JSON key (the matching
 * devices), and one of the problems no-opencl-platform, no-opencl-device,
 * opencl-no-pci-info when no host device reports the GPU's address. A GPU
 * without a host driver (already reported as no-host-driver) is not probed.
 */
int gp_clprobe_pv_hook(void *probe, struct gp_ctx *ctx, const struct gp_pci_dev *dev,
		       struct gp_survey_gpu *gpu);

/* Is @dev one of the survey's GPUs (a GPU of @s sits at its PCI
 * location, or it is a GPU that reports a PCI location)? An OpenCL device that is not — a CPU (PoCL), an FPGA or DSP
 * board, a GPU that reports no location — can still serve PV guests, but
 * only by the operator's explicit choice: it is "PV only, not a GPU". */
bool gp_clprobe_is_survey_gpu(const struct gp_cl_device *dev, const struct gp_survey *s);
/* What a guest's kernels on such a device mean for the host, one phrase:
 * "guest kernels run on the host's CPU" for a CPU device. */
const char *gp_cl_device_pv_only_note(const struct gp_cl_device *dev);

/* gp_survey_run() with the hook above; then the probe runs in any case (to
 * list the devices that are not GPUs) and the "opencl" key of "host" gets
 * gp_clprobe_to_json plus "pv_only": [{"name","platform","type","pci",
 * "note"}] for the devices that are PV only. Same errors as
 * gp_survey_run(). */
int gp_clprobe_survey(struct gp_ctx *ctx, struct gp_clprobe *probe, struct gp_survey **out);

#endif
