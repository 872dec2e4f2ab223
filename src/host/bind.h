/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dismount and mount: moving a GPU's whole IOMMU group between its host
 * drivers and vfio-pci, the way the kernel documents it
 * (Documentation/ABI/testing/sysfs-bus-pci: driver_override, unbind,
 * drivers_probe), remembering each function's original driver in the state
 * database, and putting things right after a crash.
 *
 * Safety: every endpoint of the group moves together (VFIO only hands out a
 * group whose every endpoint is on a VFIO driver); a group shared with a
 * device that is not a function of the GPU is never taken, --force or not;
 * two processes cannot work on one group at once (a lock file per device
 * under <state_dir>/locks, and BEGIN IMMEDIATE in the database); the intent
 * is written before the kernel is touched, so gp_bind_reconcile() can repair
 * what a kill -9 left half done.
 */
#ifndef GP_HOST_BIND_H
#define GP_HOST_BIND_H

#include <stdbool.h>

#include "host/context.h"
#include "host/state.h"
#include "host/survey.h"

/* Kernel-facing actions that are not sysfs writes, as a table so a unit
 * test can model them (the vm suite uses the real kernel). */
struct gp_kernel_ops {
	/* Loads a module ("vfio-pci"). 0, or -ENOENT when it is not
	 * installed, or another -errno. */
	int (*load_module)(void *data, struct gp_ctx *ctx, const char *name);
	void *data;
};

/* The real table: modprobe(8), only when the root is the real "/" (with a
 * fake root there is no kernel to load into: -ENOTSUP). */
const struct gp_kernel_ops *gp_kernel_ops_default(void);

struct gp_bind_opts {
	bool force; /* accept the warnings boot-vga, in-use, no-reset, reset-quirk */
	const struct gp_kernel_ops *kops; /* NULL: gp_kernel_ops_default() */
	const char *for_vm; /* recorded: dismounted by `vm create` for this VM */
	bool lock_wait;     /* wait for another gpupass instead of -EBUSY */
	bool allow_held;    /* mount: the caller checked the holding VM is stopped */
	/* Mount: run with the group locked and its record re-read, before
	 * anything is written; a negative return (with @why set) refuses the
	 * mount. Deploy uses it to refuse a GPU whose holding VM runs, with
	 * no window for a `vm start` between the check and the unbind. */
	int (*check_locked)(void *data, struct gp_state *st, const struct gp_state_gpu *rec,
			    struct gp_why *why);
	void *check_data;
};

/* The warnings that need --force for a dismount. */
bool gp_bind_needs_force(enum gp_problem_code code);

/* Which problems of a survey GPU stop a dismount: returns 0 when it may
 * proceed, -EPERM (error problem, never forced) or -EACCES (a warning that
 * needs --force), with @why naming the problem and its fix. */
int gp_bind_check(const struct gp_survey_gpu *gpu, bool force, struct gp_why *why);

/* Dismounts the GPU found by @query (address, location path, or unique
 * name substring). Returns 0 (also when it already was dismounted: *did is
 * then false), or:
 *  -ENOENT  no GPU matches;   -ENOTUNIQ  several match;
 *  -EPERM   not DDA-ready;    -EACCES    a warning needs --force;
 *  -EBUSY   another gpupass is working on the group;
 *  -ENODEV  vfio-pci is not available and cannot be loaded;
 *  -EIO     the kernel did not bind vfio-pci (everything is put back).
 * @addr_out (GP_ADDR_LEN, may be NULL) gets the GPU's address. */
int gp_bind_dismount(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		     const struct gp_bind_opts *opts, char *addr_out, bool *did,
		     struct gp_why *why);

/* The same for a GPU already found in a survey (deploy uses it). */
int gp_bind_dismount_gpu(struct gp_ctx *ctx, struct gp_state *st,
			 const struct gp_survey *survey, const struct gp_survey_gpu *gpu,
			 const struct gp_bind_opts *opts, bool *did, struct gp_why *why);

/* Gives the group back to its original drivers and checks they bound.
 * 0 (also when it was not dismounted), -ENOENT, -ENOTUNIQ, -EBUSY (a VM
 * holds it and opts->allow_held is not set, or another gpupass works on it), -EIO (a driver did not bind:
 * the record stays so that `mount` can be run again). */
int gp_bind_mount(struct gp_ctx *ctx, struct gp_state *st, const char *query,
		  const struct gp_bind_opts *opts, char *addr_out, bool *did,
		  struct gp_why *why);

/* Mount by the recorded address (any function of the GPU). */
int gp_bind_mount_addr(struct gp_ctx *ctx, struct gp_state *st, const char *addr,
		       const struct gp_bind_opts *opts, bool *did, struct gp_why *why);

/* Brings the database in line with the kernel. For each recorded GPU whose
 * locks are free: an interrupted dismount is rolled back (its functions go
 * back to their original drivers), an interrupted mount is finished, a
 * dismounted GPU that is no longer on vfio-pci (rebound outside gpupass, or
 * gone) is forgotten when no VM holds it. One line per repair is pushed
 * onto @report (may be NULL). Returns 0 or the first -errno. */
int gp_bind_reconcile(struct gp_ctx *ctx, struct gp_state *st,
		      const struct gp_bind_opts *opts, struct gp_strv *report);

/* Current driver of a function (empty when none). 0 or -errno. */
int gp_bind_driver_of(struct gp_ctx *ctx, const char *addr, char *buf, size_t len);

/* True when every function of the recorded GPU is on vfio-pci. */
bool gp_bind_gpu_on_vfio(struct gp_ctx *ctx, const struct gp_state_gpu *gpu);

/* Lock files: one per device under <state_dir>/locks. */
struct gp_bind_lock;
int gp_bind_lock_take(struct gp_ctx *ctx, const struct gp_strv *addrs, bool wait,
		      struct gp_bind_lock **out);
void gp_bind_lock_release(struct gp_bind_lock *lock);
/* The locks of every function of a recorded GPU (sorted, so two callers
 * lock in one order). -EBUSY when held and !@wait. */
int gp_bind_lock_gpu(struct gp_ctx *ctx, const struct gp_state_gpu *rec, bool wait,
		     struct gp_bind_lock **out);

#endif
