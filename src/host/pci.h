/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PCI device model, read from sysfs (through gp_sysfs, so it works
 * against a fake root) and from each device's binary `config` file.
 *
 * A scan reads every device under /sys/bus/pci/devices once. A device whose
 * files are missing or garbled is still in the scan: what could not be read
 * is listed in its `errors` (file + errno + what was wrong), so a caller
 * (the survey) can report it and carry on with the other devices. A scan
 * never writes anything.
 *
 * Ownership: a scan owns its devices; every pointer handed out by the
 * gp_pci_scan_* accessors is borrowed and lives until gp_pci_scan_free().
 * Device structs are read-only for callers.
 */
#ifndef GP_HOST_PCI_H
#define GP_HOST_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "host/context.h"

/* "0000:3b:00.0" plus NUL, with room for the 5-to-8-digit domains of
 * Intel VMD and Hyper-V ("10000:e0:06.0"). */
#define GP_PCI_ADDR_LEN 18

/* A parsed PCI address (domain:bus:device.function). */
struct gp_pci_addr {
	uint32_t domain;
	uint8_t bus;
	uint8_t dev;  /* 0..31 */
	uint8_t func; /* 0..7 */
};

/* Parses "0000:3b:00.0" (domain of 4 to 8 hex digits) or the short form
 * "3b:00.0" (domain 0), any case. Returns 0 or -EINVAL. */
int gp_pci_addr_parse(const char *s, struct gp_pci_addr *out);
/* Formats the canonical long form (domain as %04x, as the kernel does) into
 * buf (>= GP_PCI_ADDR_LEN). */
const char *gp_pci_addr_format(const struct gp_pci_addr *a, char *buf, size_t len);

/* Capabilities found by walking the config space (PCI Local Bus 3.0
 * §6.7 list from offset 0x34, PCIe Base 4.0 §7.6 extended list from 0x100). */
enum gp_pci_cap {
	GP_PCI_CAP_PM = 1u << 0,    /* cap id 0x01 */
	GP_PCI_CAP_MSI = 1u << 1,   /* cap id 0x05 */
	GP_PCI_CAP_PCIE = 1u << 2,  /* cap id 0x10 */
	GP_PCI_CAP_MSIX = 1u << 3,  /* cap id 0x11 */
	GP_PCI_CAP_ACS = 1u << 4,   /* ext cap id 0x000d */
	GP_PCI_CAP_SRIOV = 1u << 5, /* ext cap id 0x0010 */
	GP_PCI_CAP_FLR = 1u << 6,   /* PCIe DevCap bit 28 (Function Level Reset) */
};

/* PCIe Device/Port Type (PCIe Base 4.0 §7.5.3.2, Capabilities bits 7:4). */
enum gp_pcie_type {
	GP_PCIE_ENDPOINT = 0x0,
	GP_PCIE_LEGACY_ENDPOINT = 0x1,
	GP_PCIE_ROOT_PORT = 0x4,
	GP_PCIE_UPSTREAM_PORT = 0x5,
	GP_PCIE_DOWNSTREAM_PORT = 0x6,
	GP_PCIE_PCIE_TO_PCI_BRIDGE = 0x7,
	GP_PCIE_PCI_TO_PCIE_BRIDGE = 0x8,
	GP_PCIE_RC_INTEGRATED_ENDPOINT = 0x9,
	GP_PCIE_RC_EVENT_COLLECTOR = 0xa,
	GP_PCIE_NONE = 0xff, /* no PCIe capability */
};

/* ACS control bits the kernel requires for isolation (PCIe Base 4.0
 * §7.7.7: Source Validation, Request Redirect, Completion Redirect,
 * Upstream Forwarding) — the kernel's REQ_ACS_FLAGS. */
#define GP_PCI_ACS_SV 0x0001u
#define GP_PCI_ACS_RR 0x0004u
#define GP_PCI_ACS_CR 0x0008u
#define GP_PCI_ACS_UF 0x0010u
#define GP_PCI_ACS_REQUIRED (GP_PCI_ACS_SV | GP_PCI_ACS_RR | GP_PCI_ACS_CR | GP_PCI_ACS_UF)

/* What the capability walk found in a config space. */
struct gp_pci_config_info {
	uint16_t vendor_id, device_id;
	uint16_t subsys_vendor_id, subsys_device_id; /* type 0 headers only */
	uint32_t class_code;  /* base << 16 | sub << 8 | prog-if */
	uint8_t header_type;  /* bits 6:0; 0 endpoint, 1 PCI-PCI bridge, 2 CardBus */
	bool multifunction;   /* header type bit 7 */
	uint32_t caps;        /* enum gp_pci_cap bits */
	uint8_t pcie_type;    /* enum gp_pcie_type */
	uint16_t acs_cap;     /* ACS Capability register, when GP_PCI_CAP_ACS */
	uint16_t acs_ctrl;    /* ACS Control register */
	uint16_t sriov_total_vfs; /* SR-IOV TotalVFs, when GP_PCI_CAP_SRIOV */
	bool caps_known;      /* >= 256 bytes: the capability list was walked
			       * (a non-root reader of sysfs gets only 64) */
	bool ext_caps_known;  /* 4096 bytes of a PCIe device: extended list walked */
};

/* Smallest config space the model accepts: the standard header (PCI Local
 * Bus 3.0 §6.1). Anything shorter is garbled. */
#define GP_PCI_CFG_MIN 64
#define GP_PCI_CFG_LEGACY 256
#define GP_PCI_CFG_EXT 4096

/* Parses a config space of @len bytes (any length; bounds-checked, loops in
 * either capability list are cut). -EINVAL when shorter than GP_PCI_CFG_MIN
 * or the vendor id is 0xffff/0x0000; on success every field is set. */
int gp_pci_config_parse(const uint8_t *cfg, size_t len, struct gp_pci_config_info *out);

/* Flags in the third column of sysfs `resource` (include/linux/ioport.h). */
#define GP_PCI_RES_IO 0x00000100ull
#define GP_PCI_RES_MEM 0x00000200ull
#define GP_PCI_RES_PREFETCH 0x00002000ull
#define GP_PCI_RES_MEM_64 0x00100000ull

/* Regions 0..5 are BARs, 6 is the expansion ROM (PCI Local Bus 3.0 §6.2.5). */
#define GP_PCI_NUM_BARS 6
#define GP_PCI_ROM_INDEX 6
#define GP_PCI_NUM_RESOURCES 7

struct gp_pci_bar {
	int index;        /* 0..5, 6 for the ROM */
	uint64_t start, end, flags;
	uint64_t size;    /* end - start + 1, or 0 when unused */
	bool is_io, is_mem, is_64bit, prefetchable;
};

/* Parses the text of a sysfs `resource` file: one "0xSTART 0xEND 0xFLAGS"
 * line per region (bridges have more lines; only the first 7 are kept).
 * Unused regions (all zero) get size 0. Returns the number of regions
 * parsed (<= 7), or -EINVAL naming the first bad line in *bad_line
 * (1-based; may be NULL). */
int gp_pci_resource_parse(const char *text, struct gp_pci_bar bars[GP_PCI_NUM_RESOURCES],
			  int *bad_line);

/* One sysfs file of a device that could not be read or parsed. */
struct gp_pci_error {
	char *file; /* path as on the host, e.g. /sys/bus/pci/devices/X/config */
	int err;    /* negative errno: -ENOENT missing, -EINVAL garbled ... */
	char *what; /* a sentence: "is 12 bytes, shorter than the 64-byte header" */
};

/* An mdev type under mdev_supported_types/. */
struct gp_pci_mdev_type {
	char *id;        /* directory name, e.g. "i915-GVTg_V5_4" */
	char *name;      /* `name` file, or the id when there is none */
	int available;   /* `available_instances`, -1 when unreadable */
};

struct gp_pci_dev {
	char address[GP_PCI_ADDR_LEN]; /* canonical "0000:3b:00.0" */
	struct gp_pci_addr addr;
	/* Read for every device: */
	char *sysfs_path;     /* canonical /sys/devices/pci0000:00/.../<addr> */
	char *location_path;  /* "PCIROOT(0)#PCI(0100)#PCI(0000)", see below */
	char *parent;         /* address of the upstream bridge; NULL on a root bus */
	uint32_t class_code;  /* 24 bits, from `class` (else from config) */
	bool class_ok;        /* class_code is known */
	bool is_bridge;       /* header type 1/2 (class 0x0604/0x0609 until detailed) */
	bool is_endpoint;     /* not a bridge */

	/* Read when `detailed`: always with gp_pci_scan_new(); without
	 * GP_PCI_SCAN_ALL, for GPUs, the bridges above them and their group
	 * mates (see gp_pci_scan_new_flags). */
	bool detailed;
	uint16_t vendor_id, device_id;
	uint16_t subsys_vendor_id, subsys_device_id;
	/* pci.ids names through libpci, looked up for GPUs and their group
	 * mates only; NULL when unknown or not looked up. */
	char *vendor_name;
	char *device_name;
	char *driver;         /* bound driver's name, NULL when unbound */
	int numa_node;        /* -1 when unknown */
	bool boot_vga;        /* `boot_vga` reads 1 */
	int iommu_group;      /* -1 when the device has no group */
	struct gp_strv group_members; /* addresses in the group, sorted, incl. this one */
	struct gp_strv reset_methods; /* `reset_method` words; empty when none */
	bool has_reset_method_file;   /* kernel >= 5.15 exposes `reset_method` */
	bool has_reset_file;          /* `reset` exists (some reset works) */

	bool config_ok;       /* the config space parsed; `cfg` is valid */
	struct gp_pci_config_info cfg;

	struct gp_pci_bar bars[GP_PCI_NUM_RESOURCES]; /* valid when nbars > 0 */
	int nbars;            /* regions read from `resource` (0: unreadable) */

	int sriov_total_vfs;  /* -1 when not SR-IOV capable */
	int sriov_num_vfs;    /* -1 when not SR-IOV capable */
	struct gp_pci_mdev_type *mdev_types;
	size_t n_mdev_types;

	struct gp_strv drm_nodes; /* "card0", "renderD128" from the drm/ subdir */

	struct gp_pci_error *errors; /* files that could not be read or parsed */
	size_t n_errors;
};

/* GPU classes: 0x0300 VGA, 0x0302 3D, 0x0380 other display, 0x1200
 * processing accelerator (PCI Code and ID Assignment 1.11 §1.4, §1.19). */
bool gp_pci_class_is_gpu(uint32_t class_code);
bool gp_pci_dev_is_gpu(const struct gp_pci_dev *dev);

/* True when @a and @b are functions of the same card (same domain, bus and
 * device number). */
bool gp_pci_same_slot(const struct gp_pci_dev *a, const struct gp_pci_dev *b);

/* Sums of BAR 0-5 sizes of memory BARs: 32-bit ones into *low, 64-bit ones
 * into *high (I/O and ROM excluded). */
void gp_pci_dev_mmio(const struct gp_pci_dev *dev, uint64_t *low, uint64_t *high);

/*
 * Location path, as Windows/Hyper-V DDA prints it: the root complex then one
 * PCI(DDFF) per hop (device and function in two hex digits each, upper
 * case), e.g. "PCIROOT(0)#PCI(0100)#PCI(0000)". The root number is the
 * root bus number (plus domain << 8 when the domain is not 0) in hex: on
 * most hosts that matches the ACPI _UID Windows uses.
 * Builds it from a canonical sysfs path; -EINVAL when the path has no
 * pciDDDD:BB component.
 */
int gp_pci_location_from_path(const char *sysfs_path, char **out);

/* --- the scan --- */

struct gp_pci_scan;

/* Reads every device under /sys/bus/pci/devices. A device with unreadable
 * files is kept (see gp_pci_dev.errors); only a missing or unlistable
 * /sys/bus/pci/devices fails (-ENOENT ...), or -ENOMEM. Names come from the
 * host's pci.ids through libpci, whatever the root. */
int gp_pci_scan_new(struct gp_ctx *ctx, struct gp_pci_scan **out);

/* Flags for gp_pci_scan_new_flags(). */
enum gp_pci_scan_flags {
	/* Read every device in full (gp_pci_scan_new does). Without it, only
	 * GPUs, the bridges above them, the members of their IOMMU groups and
	 * devices whose `class` is unreadable are read in full (`detailed`);
	 * the others get address, paths, parent and class: what the survey
	 * needs, at a fraction of the cost on hosts with many devices. */
	GP_PCI_SCAN_ALL = 1u << 0,
};
int gp_pci_scan_new_flags(struct gp_ctx *ctx, unsigned flags, struct gp_pci_scan **out);
void gp_pci_scan_free(struct gp_pci_scan *scan);

/* All devices, sorted by address. */
size_t gp_pci_scan_count(const struct gp_pci_scan *scan);
const struct gp_pci_dev *gp_pci_scan_get(const struct gp_pci_scan *scan, size_t i);

/* The device at @address (long or short form); NULL when absent. */
const struct gp_pci_dev *gp_pci_scan_find(const struct gp_pci_scan *scan,
					  const char *address);

/* The bridges above @dev, nearest first (up to @max); returns how many
 * there are (may exceed @max). Bridges missing from the scan are skipped. */
size_t gp_pci_scan_upstream(const struct gp_pci_scan *scan, const struct gp_pci_dev *dev,
			    const struct gp_pci_dev **out, size_t max);

/*
 * Finds one GPU by @query: a PCI address (long or short form), a location
 * path (exact, case-insensitive), or a case-insensitive substring of
 * "vendor name device name" (e.g. "tesla t4").
 * Returns 0 and *out; -ENOENT when nothing matches; -ENOTUNIQ when several
 * GPUs match — then, if @candidates is not NULL, the addresses of all that
 * matched are pushed onto it (the caller clears it). -EINVAL on empty query.
 * Only GPUs (gp_pci_dev_is_gpu) are considered.
 */
int gp_pci_scan_find_gpu(const struct gp_pci_scan *scan, const char *query,
			 const struct gp_pci_dev **out, struct gp_strv *candidates);

/* "NVIDIA Corporation TU104GL [Tesla T4]"-style display name into buf:
 * vendor and device names, or "vendor 10de device 1eb8" when pci.ids does
 * not know them. Never fails (truncates). */
const char *gp_pci_dev_display_name(const struct gp_pci_dev *dev, char *buf, size_t len);

#endif
