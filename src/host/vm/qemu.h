/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The embedded VM backend: QEMU (qemu-system-x86_64) run directly by
 * gpupass as a supervised process, with a QMP socket, a pidfile and a log
 * file in <state_dir>/vms/<name>/.
 *
 * DDA rules carried here: every function of an assigned card goes into one
 * guest slot (function numbers kept, function 0 multifunction=on) behind
 * its own PCIe root port; the 64-bit MMIO window is sized from the assigned
 * BARs; a VM with a vfio-pci device cannot be migrated or snapshotted
 * (QEMU's vfio migration blocker, and gpupass offers no save); it is
 * powered off, never saved, when the host stops.
 */
#ifndef GP_HOST_VM_QEMU_H
#define GP_HOST_VM_QEMU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "host/context.h"
#include "host/state.h"

#define GP_QEMU_DEFAULT "qemu-system-x86_64"

/* One host function to assign, with its BAR sizes (sysfs `resource`). */
struct gp_vm_hostdev {
	char address[GP_ADDR_LEN];
	uint16_t vendor_id, device_id;
	uint64_t bar_size[6];
	bool bar_64[6];  /* a 64-bit memory BAR */
	bool bar_mem[6]; /* a memory BAR (not I/O) */
};

struct gp_vm_paths {
	char dir[GP_VM_PATH_LEN];
	char qmp[GP_VM_PATH_LEN];
	char qga[GP_VM_PATH_LEN];
	char pid[GP_VM_PATH_LEN];
	char log[GP_VM_PATH_LEN];
};

/* <state_dir>/vms/<name>/{qmp.sock,qga.sock,qemu.pid,console.log}. Unix
 * socket paths are limited to 107 bytes: -ENAMETOOLONG when it does not
 * fit (choose a shorter --state-dir). */
int gp_vm_paths_get(struct gp_ctx *ctx, const char *name, struct gp_vm_paths *out);

/* QEMU's default q35 64-bit hole (hw/pci-host/q35.c,
 * Q35_PCI_HOST_HOLE64_SIZE_DEFAULT). */
#define GP_VM_HOLE64_DEFAULT (32ull << 30)

/* One assigned card: the functions of one GPU's group. */
struct gp_vm_card {
	const struct gp_vm_hostdev *fn;
	size_t nfn;
};

/* The 64-bit MMIO window for these cards. Each card sits behind its own
 * PCIe root port, whose prefetchable window the guest firmware sizes as
 * the card's 64-bit memory BARs packed largest first, each aligned to its
 * own size (PCI BARs are naturally aligned, PCI Local Bus 3.0 §6.2.5.1),
 * rounded up to and aligned at the card's largest BAR (a bridge window
 * takes the alignment of its largest member, PCI-to-PCI Bridge 1.2
 * §3.2.5.8). The windows are packed the same way, plus the largest
 * alignment again so an unaligned hole start still leaves room, rounded up
 * to 1 GiB; never below QEMU's default. */
uint64_t gp_vm_hole64_size(const struct gp_vm_card *cards, size_t ncards);

/* The virtio-serial port name the guest ICD opens by default (src/icd). */
#define GP_PV_PORT_NAME "org.gpupass.pv.0"

struct gp_vm_launch {
	const struct gp_vm_config *cfg;
	const char *qemu;  /* binary */
	const char *accel; /* "kvm" or "tcg" (resolved, not "auto") */
	const struct gp_vm_card *cards;
	size_t ncards;
	const struct gp_vm_paths *paths;
	/* The vfio-pci property that turns device migration off in this
	 * QEMU (gp_vm_qemu_migration_prop), or NULL: then QEMU's own
	 * default (a migration blocker up to 8.0) is relied on. */
	const char *vfio_migration_prop;
	/* PV: gpupass-pvd's listening socket for this guest, or NULL. It
	 * becomes the chardev of the virtio-serial port org.gpupass.pv.0 that
	 * the guest ICD finds; reconnect=1 so a VM started before (or kept
	 * running across a restart of) gpupass-pvd gets the channel when the
	 * server listens. */
	const char *pv_socket;
	/* PV: the host file of this guest's ivshmem-plain region and its
	 * size (a power of two), or NULL. It becomes the memory backend
	 * "gpupass-shm" (share=on: gpupass-pvd maps the same file). */
	const char *pv_shm_path;
	uint64_t pv_shm_size;
	/* The user QEMU changes to once it has opened its files and devices
	 * (-runas), or NULL: it stays as started. Always: -sandbox on. */
	const char *run_as;
};

/* The QEMU id of the PV shared-memory backend (src/icd finds the device
 * by its PCI ids; the server by the path in [guest NAME] ivshmem). */
#define GP_PV_SHM_ID "gpupass-shm"

/* Builds the whole command line (argv[0] = qemu), with cfg->shares as
 * virtio-9p exports (security_model=none: QEMU's own rights, no uid
 * mapping). 0, -EINVAL (also a share path with ',' or a bad tag), -ENOMEM. */
int gp_vm_build_argv(const struct gp_vm_launch *l, struct gp_strv *argv);

/* The qdev id gpupass gives card @c function @f ("gpu0f1"). */
void gp_vm_dev_id(size_t card, size_t fn, char *buf, size_t len);

/* Can QEMU use KVM here? Opens /dev/kvm (through the sysfs door, so a fake
 * root has none) and checks a VM and a vCPU can be made and the vCPU takes
 * the host's MSR_IA32_ARCH_CAPABILITIES, which QEMU sets for -cpu host (a
 * nested /dev/kvm that fails there aborts QEMU). */
bool gp_vm_kvm_usable(struct gp_ctx *ctx);

/* "auto" -> "kvm" when usable, else "tcg". */
const char *gp_vm_accel_resolve(struct gp_ctx *ctx, const char *want);

/* Which vfio-pci property of this QEMU switches device migration:
 * "enable-migration" (QEMU 8.1+, default auto: a device that supports it
 * could be migrated), "x-enable-migration" (7.x, default off), read from
 * `QEMU -device vfio-pci,help`. 0 and the name, -ENOENT when it has none,
 * or -errno. A DDA VM is never migrated or saved, so gpupass sets it off
 * rather than rely on the default. */
int gp_vm_qemu_migration_prop(const char *qemu, char *buf, size_t len);

/* Finds @qemu (a path, or a name on PATH). 0 and the full path, or
 * -ENOENT. */
int gp_vm_find_qemu(const char *qemu, char *buf, size_t len);

/* --- the running VM --- */

enum gp_vm_run_state {
	GP_VM_STOPPED = 0,
	GP_VM_RUNNING = 1,  /* QEMU alive, guest running */
	GP_VM_PAUSED = 2,   /* QEMU alive, guest not running */
	GP_VM_STARTING = 3, /* QEMU alive, QMP not answering (yet) */
};
const char *gp_vm_run_state_name(enum gp_vm_run_state s);

/* The pid in the pidfile when that process is alive (not a zombie). */
int gp_vm_pid(const struct gp_vm_paths *p, pid_t *out);

/* State of a VM; *pid is 0 when stopped. A stale pidfile (QEMU died) is
 * removed and *died set (may be NULL). */
int gp_vm_status(const struct gp_vm_paths *p, enum gp_vm_run_state *st, pid_t *pid,
		 bool *died);

/* Spawns QEMU with @argv (no_new_privs; RLIMIT_MEMLOCK @memlock when not
 * 0), its stdout/stderr appended to the log, waits up to @timeout_ms for
 * QMP to answer. -ECHILD when QEMU exits first (the end
 * of its log in @why), -ETIMEDOUT. */
int gp_vm_spawn(struct gp_ctx *ctx, const struct gp_vm_paths *p, const struct gp_strv *argv,
		uint64_t memlock,
		int timeout_ms, pid_t *pid_out, struct gp_why *why);

/* Asks the guest to power down (ACPI), waits @timeout_ms, then turns it
 * off (QMP quit, then SIGKILL). @force: turn off at once. 0 when stopped
 * (also when it was not running); *forced says the guest had to be turned
 * off rather than shut down by itself. */
int gp_vm_stop(struct gp_ctx *ctx, const struct gp_vm_paths *p, int timeout_ms, bool force,
	       bool *forced, struct gp_why *why);

/* Presses the ACPI power button and returns at once (stop --all asks
 * every VM first, then waits for them together). 0, or -errno when QMP
 * does not answer. */
int gp_vm_request_powerdown(const struct gp_vm_paths *p);

/* Reads the last @max bytes of the log. */
int gp_vm_log_tail(const struct gp_vm_paths *p, size_t max, char **out);

#endif
