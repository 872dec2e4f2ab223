/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deployment: VMs and the GPUs they hold, the operations behind `gpupass vm
 * ...`, `assign` and `unassign`. Mirrors the Windows edge deployment options
 * (-gpuPassthroughType DirectDeviceAssignment|ParaVirtualization, -gpuName,
 * -gpuCount).
 *
 * Every operation checks everything it can before changing anything: a
 * request the host cannot satisfy is refused with the host and the database
 * as they were. When a step fails half-way, what was done is undone.
 */
#ifndef GP_HOST_DEPLOY_H
#define GP_HOST_DEPLOY_H

#include <stdbool.h>
#include <sys/types.h>

#include "host/bind.h"
#include "host/context.h"
#include "host/state.h"
#include "host/vm/qemu.h"

/* What vm create / vm start of a pv VM did about gpupass-pvd. Failing to
 * start it does not fail the VM operation (the VM's port reconnects once
 * the server listens, the guest ICD reports errors meanwhile): err and
 * why say what went wrong. */
struct gp_pvd_result {
	bool tried;
	int err;       /* 0 or -errno */
	pid_t pid;
	bool started;  /* started now (else it ran and was told to reload) */
	char log[GP_VM_PATH_LEN];
	struct gp_why why;
};

struct gp_deploy_opts {
	bool force;                       /* as for dismount */
	const struct gp_kernel_ops *kops; /* NULL: the real kernel */
	const char *qemu;                 /* NULL: qemu-system-x86_64 on PATH */
	int start_timeout_ms;             /* 0: 60 s */
	const char *pvd_conf;             /* NULL: gp_pvconf_default_path() */
	const char *pvd;                  /* gpupass-pvd binary; NULL: gp_pvd_find() */
	int pvd_timeout_ms;               /* 0: 60 s */
	/* Called before a step that can take a while (starting gpupass-pvd),
	 * with one line for people; may be NULL. */
	void (*progress)(void *data, const char *msg);
	void *progress_data;
	struct gp_pvd_result *pvd_result; /* out, may be NULL */
};

/* The user a VM's QEMU runs as (-runas): $GPUPASS_QEMU_USER, else
 * GP_QEMU_USER; "" in @buf when gpupass is not root or the user asked is
 * "root" (QEMU then stays as started). -ENOENT with @why when that user
 * does not exist. */
#define GP_QEMU_USER "gpupass-qemu"
int gp_deploy_qemu_user(const char *vm, char *buf, size_t len, struct gp_why *why);

/* Checks a configuration without touching anything: a valid name, memory
 * (>= 64 MiB), CPUs (1..288), the kernel/initrd/disk files exist and are
 * readable, a kernel or a disk to boot, gpu-count >= 1 with dda, with pv a
 * weight of 1..1000, no gpu-count and a
 * --gpu-shm of 0 or a power of two; the shares (gp_deploy_check_share, no
 * tag twice). -EINVAL/-ENOENT with @why. */
int gp_deploy_check_config(const struct gp_vm_config *cfg, struct gp_why *why);
/* One --share: a valid tag, an absolute path of an existing directory with
 * no ',' (QEMU option syntax) or newline. -EINVAL/-ENOENT with @why. */
int gp_deploy_check_share(const char *vm, const struct gp_vm_share *sh, struct gp_why *why);

/* Limits of --gpu-shm (ivshmem-plain region), besides 0 = none. */
#define GP_VM_PV_SHM_MIN (1ull << 20)
#define GP_VM_PV_SHM_MAX (16ull << 30)

/* Creates the VM; with dda, picks cfg->gpu_count DDA-ready GPUs whose name
 * contains cfg->gpu_name (any GPU when empty), dismounts and assigns them.
 * -EEXIST (name taken), -ENOSPC (not enough GPUs: @why says how many match
 * and how many are ready, and why the others are not). The addresses taken
 * are pushed onto @gpus (may be NULL).
 * With pv: refused (-ENOSPC, the survey's reason) unless a GPU whose name
 * contains cfg->gpu_name is PV-ready (OpenCL probe); then the guest's
 * section goes into gpupass-pvd's config (opts->pvd_conf), its ivshmem
 * file <state_dir>/pv/NAME.shm is made (cfg->pv_shm bytes, sparse), and
 * gpupass-pvd is told to reload, or started when it does not run
 * (gp_pvd_ensure; opts->pvd_result says how that went). */
int gp_deploy_vm_create(struct gp_ctx *ctx, struct gp_state *st, const struct gp_vm_config *cfg,
			const struct gp_deploy_opts *opts, struct gp_strv *gpus, struct gp_why *why);

/* Replaces the settings. GPU settings (passthrough, gpu name/count, the
 * PV region size) and shares only while stopped (-EBUSY); a changed dda
 * request re-picks the GPUs. */
int gp_deploy_vm_set(struct gp_ctx *ctx, struct gp_state *st, const struct gp_vm_config *cfg,
		     const struct gp_deploy_opts *opts, struct gp_why *why);

/* Deletes a stopped VM (@force: stops it first), unassigns its GPUs and
 * gives back to the host the ones `vm create` dismounted for it. */
int gp_deploy_vm_delete(struct gp_ctx *ctx, struct gp_state *st, const char *name,
			const struct gp_deploy_opts *opts, struct gp_why *why);

/* assign: the VM must exist and be stopped; the GPU is dismounted first
 * when needed; -EBUSY when another VM holds it. */
int gp_deploy_assign(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		     const char *vm, const struct gp_deploy_opts *opts, char *addr_out,
		     struct gp_why *why);
/* unassign: the holder must be stopped; the GPU stays dismounted. */
int gp_deploy_unassign(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		       const struct gp_deploy_opts *opts, char *addr_out, char *vm_out,
		       struct gp_why *why);

/* Mount (gp_bind_mount) for people: refused (-EBUSY) while the VM holding
 * the GPU runs; with that VM stopped the GPU goes back to the host and the
 * VM keeps its claim (@vm_out, may be NULL: GP_NAME_LEN), so vm start
 * dismounts it again. */
int gp_deploy_mount(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		    const struct gp_deploy_opts *opts, char *addr_out, char *vm_out, bool *did,
		    struct gp_why *why);

/* Starts QEMU for the VM. *already is set when it was running. A pv VM
 * gets its ivshmem file (again: /run does not outlive a reboot) and
 * gpupass-pvd is started when it does not run (opts->pvd_result). A GPU the
 * VM claims that is back on the host (mount, reboot) is dismounted again
 * first, by the same rules as gp_bind_dismount (opts->force for warnings).
 * -ENOENT (no such VM, or QEMU missing), -EPERM/-EACCES (a GPU cannot be
 * taken again), -EIO (a GPU is not on vfio-pci). */
int gp_deploy_vm_start(struct gp_ctx *ctx, struct gp_state *st, const char *name,
		       const struct gp_deploy_opts *opts, bool *already, struct gp_why *why);

/* Stops it (see gp_vm_stop). */
int gp_deploy_vm_stop(struct gp_ctx *ctx, struct gp_state *st, const char *name,
		      int timeout_ms, bool force, bool *forced, struct gp_why *why);

/* The build of the QEMU command line for a VM, as vm start would run it. */
int gp_deploy_vm_argv(struct gp_ctx *ctx, struct gp_state *st, const char *name,
		      const struct gp_deploy_opts *opts, struct gp_strv *argv, struct gp_why *why);

struct gp_verify_dev {
	char host[GP_ADDR_LEN];
	char qdev_id[32];
	uint16_t vendor_id, device_id;
	bool in_qmp;          /* query-pci shows it with these ids */
	char guest_addr[16];  /* "01:00.0" in the guest */
	int in_lspci;         /* 1 seen, 0 not seen, -1 not checked */
};

struct gp_verify {
	size_t n;
	struct gp_verify_dev dev[GP_STATE_MAX_FN];
	bool agent;  /* the guest agent answered */
	char *lspci; /* its lspci -nn output (owned) or NULL */
	bool ok;     /* every device seen (and in lspci when the agent ran) */
};

/* Proves the guest sees its GPUs. -ENOENT (no VM), -ESRCH (not running). */
int gp_deploy_vm_verify(struct gp_ctx *ctx, struct gp_state *st, const char *name,
			int agent_timeout_ms, struct gp_verify *out, struct gp_why *why);
void gp_verify_clear(struct gp_verify *v);

/* Reconciles GPUs (gp_bind_reconcile) and VMs (a QEMU that died is
 * reported). Lines onto @report. */
int gp_deploy_reconcile(struct gp_ctx *ctx, struct gp_state *st,
			const struct gp_deploy_opts *opts, struct gp_strv *report);

#endif
