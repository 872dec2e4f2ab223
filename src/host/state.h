/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The state database: one SQLite file under the state directory (WAL, every
 * change in a transaction, schema versioned with PRAGMA user_version).
 * It holds the intent: which GPUs gpupass dismounted and the original driver
 * of each function, the VMs and their settings, and which VM holds which GPU.
 * The kernel is the truth; bind.c reconciles the two.
 *
 * "At most one VM per GPU" is enforced by the schema itself (the GPU is the
 * primary key of the assignment table), not by the callers.
 */
#ifndef GP_HOST_STATE_H
#define GP_HOST_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "common/util.h"

struct gp_ctx;
struct gp_state;

/* Why an operation was refused or failed, for people: one line naming the
 * device and the VM, then what to do. Library calls fill it (when not
 * NULL) next to returning -errno; the CLI prints it. */
struct gp_why {
	char msg[1024];
};
void gp_why_set(struct gp_why *why, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* 2: vm.pv_memory_max, vm.pv_weight; 3: vm.pv_shm and the share table */
#define GP_STATE_SCHEMA_VERSION 4
#define GP_STATE_DB_NAME "gpupass.db"

/* Sizes of the fixed fields below. A PCI address "0000:00:02.0" is 12. */
#define GP_ADDR_LEN 32
#define GP_NAME_LEN 64
#define GP_DRIVER_LEN 64
#define GP_STATE_MAX_FN 32 /* endpoints of one IOMMU group we handle */

/* Where a dismount stands. DISMOUNTING/MOUNTING are written before the
 * kernel is touched, so a crash in the middle leaves a record that the next
 * run repairs. */
enum gp_gpu_state {
	GP_GPU_DISMOUNTING = 0,
	GP_GPU_DISMOUNTED = 1,
	GP_GPU_MOUNTING = 2,
};

/* original_driver of a function found already on vfio-pci (bound by
 * hand): mount lets the kernel pick its driver. */
#define GP_DRIVER_UNKNOWN "?"

struct gp_state_fn {
	char address[GP_ADDR_LEN];
	char original_driver[GP_DRIVER_LEN]; /* "" when it had none */
	uint16_t vendor_id, device_id;
	bool on_vfio; /* last known: bound to vfio-pci by us */
};

struct gp_state_gpu {
	char address[GP_ADDR_LEN]; /* the GPU function the user named */
	int iommu_group;
	enum gp_gpu_state state;
	char auto_for_vm[GP_NAME_LEN]; /* dismounted by `vm create` for this VM */
	size_t nfn;
	struct gp_state_fn fn[GP_STATE_MAX_FN]; /* every endpoint of the group */
};

enum gp_passthrough {
	GP_PT_NONE = 0,
	GP_PT_DDA = 1,
	GP_PT_PV = 2,
};

const char *gp_passthrough_name(enum gp_passthrough pt);
/* "dda", "pv", "none" (also the Windows names DirectDeviceAssignment and
 * ParaVirtualization, case-insensitive). -EINVAL otherwise. */
int gp_passthrough_parse(const char *s, enum gp_passthrough *out);

#define GP_VM_PATH_LEN 4096
#define GP_VM_APPEND_LEN 4096

/* A host folder exported to the guest over virtio-9p (--share
 * HOSTDIR:TAG[:ro]). The guest mounts it with
 * `mount -t 9p -o trans=virtio TAG DIR`. */
#define GP_VM_MAX_SHARES 8
/* QEMU refuses a 9p mount_tag longer than 31 bytes (hw/9pfs/9p.h
 * MAX_TAG_LEN 32 with its NUL; measured with QEMU 7.2). */
#define GP_SHARE_TAG_MAX 31
struct gp_vm_share {
	char dir[GP_VM_PATH_LEN]; /* absolute */
	char tag[GP_SHARE_TAG_MAX + 1];
	bool readonly;
};

/* Parses HOSTDIR:TAG[:ro|:rw] (split at the last colons, so HOSTDIR may
 * hold ':'). Only the syntax: see gp_vm_share_check for the rest. -EINVAL. */
int gp_vm_share_parse(const char *spec, struct gp_vm_share *out);
/* A tag: 1..31 of [A-Za-z0-9_.-]. */
bool gp_vm_share_tag_valid(const char *tag);

struct gp_vm_config {
	char name[GP_NAME_LEN];
	uint64_t memory; /* bytes */
	int cpus;
	char disk[GP_VM_PATH_LEN];
	/* The disk's format ("raw", "qcow2"), read once at create (never
	 * guessed at start: the guest owns the contents), and for qcow2 its
	 * backing file and that file's format as recorded then ("" = none).
	 * "" with a disk: a VM of an older gpupass, to be set (vm set
	 * --disk-format) before it starts. */
	char disk_format[8];
	char disk_backing[GP_VM_PATH_LEN];
	char disk_backing_format[8];
	char kernel[GP_VM_PATH_LEN];
	char initrd[GP_VM_PATH_LEN];
	char append[GP_VM_APPEND_LEN];
	enum gp_passthrough passthrough;
	char gpu_name[GP_NAME_LEN * 2];
	int gpu_count;
	/* GPUs given by hand (gpupass assign) to a VM that had none: it is a
	 * dda VM while it holds them, and none again after the last unassign. */
	int hand_gpus;
	char accel[16]; /* "auto", "kvm", "tcg" */
	char extra[GP_VM_APPEND_LEN]; /* extra QEMU arguments, space-separated */
	/* PV partition (passthrough pv): gpupass-pvd's memory_max (bytes,
	 * 0 = no limit) and weight (1..1000) for this guest. */
	uint64_t pv_memory_max;
	int pv_weight;
	/* PV: size of the ivshmem-plain region (bytes, a power of two, 0 =
	 * none) backed by <state_dir>/pv/NAME.shm. */
	uint64_t pv_shm;
	size_t nshares;
	struct gp_vm_share shares[GP_VM_MAX_SHARES];
};

/* Default --gpu-shm for a new PV VM. */
#define GP_VM_PV_SHM_DEFAULT (64ull << 20)

/* Defaults: 1 GiB, 2 CPUs, no GPU, accel auto, PV weight 1, no PV limit,
 * a 64 MiB PV shared-memory region, no shares. */
void gp_vm_config_init(struct gp_vm_config *cfg, const char *name);

/* A VM name: 1..63 of [A-Za-z0-9_.-], not starting with '.' or '-'. */
bool gp_vm_name_valid(const char *name);

/* Opens (creating, migrating) <state_dir>/gpupass.db. -EPROTO when the file
 * was written by a newer gpupass (schema above ours). */
int gp_state_open(struct gp_ctx *ctx, struct gp_state **out);
/* The same at an explicit path (tests). @log may be NULL. */
int gp_state_open_path(const char *path, const struct gp_log *log, struct gp_state **out);
void gp_state_close(struct gp_state *st);

/* A transaction around several calls (BEGIN IMMEDIATE: the write lock is
 * taken at once, so two processes serialise here rather than failing at
 * commit). Calls made outside one run in their own. Nesting is counted. */
int gp_state_begin(struct gp_state *st);
int gp_state_commit(struct gp_state *st);
void gp_state_rollback(struct gp_state *st);

/* GPUs. put = insert or replace the GPU and all its functions. */
int gp_state_gpu_put(struct gp_state *st, const struct gp_state_gpu *gpu);
/* -ENOENT when the GPU is not recorded. @addr may be any function of it. */
int gp_state_gpu_get(struct gp_state *st, const char *addr, struct gp_state_gpu *out);
int gp_state_gpu_set_state(struct gp_state *st, const char *addr, enum gp_gpu_state s);
int gp_state_fn_set_vfio(struct gp_state *st, const char *fn_addr, bool on_vfio);
/* Forgets the dismount (its assignment, if any, stays: see the schema). */
int gp_state_gpu_delete(struct gp_state *st, const char *addr);
/* Addresses of recorded GPUs, sorted. */
int gp_state_gpu_list(struct gp_state *st, struct gp_strv *addrs);

/* VMs. add: -EEXIST; get/update/delete: -ENOENT. */
int gp_state_vm_add(struct gp_state *st, const struct gp_vm_config *cfg);
int gp_state_vm_get(struct gp_state *st, const char *name, struct gp_vm_config *out);
int gp_state_vm_update(struct gp_state *st, const struct gp_vm_config *cfg);
int gp_state_vm_delete(struct gp_state *st, const char *name);
int gp_state_vm_list(struct gp_state *st, struct gp_strv *names);

/* Ownership. assign: -ENOENT when the VM or the GPU (not dismounted) is
 * unknown, -EBUSY when another VM holds the GPU (the schema refuses it),
 * 0 when this VM already holds it. */
int gp_state_assign(struct gp_state *st, const char *gpu, const char *vm);
/* -ENOENT when nobody holds it. */
int gp_state_unassign(struct gp_state *st, const char *gpu);
/* -ENOENT when nobody holds it. */
int gp_state_gpu_owner(struct gp_state *st, const char *gpu, char *vm, size_t len);
/* GPUs held by @vm, sorted. */
int gp_state_vm_gpus(struct gp_state *st, const char *vm, struct gp_strv *gpus);

#endif
