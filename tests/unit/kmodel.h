/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel behind a fake sysfs tree, for bind/deploy tests: installed as
 * the gp_sysfs write hook, it does what the PCI core does on writes to
 * driver_override, drivers/X/unbind, drivers/X/bind and drivers_probe
 * (Documentation/ABI/testing/sysfs-bus-pci), moving the `driver` links,
 * the drivers/X/<addr> links and /dev/vfio/<group>. Like libvirt's PCI
 * mock, but through the sysfs door's hook instead of LD_PRELOAD.
 */
#ifndef GP_TESTS_KMODEL_H
#define GP_TESTS_KMODEL_H

#include <stdbool.h>

#include "common/util.h"
#include "fakesys.h"
#include "host/bind.h"
#include "host/sysfs.h"

struct kmodel {
	struct gp_fake *fake;
	/* the driver drivers_probe picks for a device without override
	 * (what the kernel would match by id table): addr -> driver */
	struct gp_strv natural; /* "addr=driver" */
	struct gp_strv writes;  /* "path <- value" of every write seen */
	int vfio_binds;         /* binds to vfio-pci so far */
	int crash_at_vfio_bind; /* _exit(9) right after this bind (1-based; 0 off) */
	int binds;              /* binds to any driver so far */
	int crash_at_bind;      /* _exit(9) right after this bind of any driver */
	char fail_vfio[32];     /* this address refuses vfio-pci */
	char fail_driver[32];   /* this driver refuses every device (module broken) */
	int sleep_first_ms;     /* sleep on the first write (to overlap two callers) */
	bool slept;
	bool load_ok;           /* kernel ops: loading vfio-pci works */
	int loads;              /* load_module calls */
};

/* Records each device's current driver as its natural one; makes the
 * vfio-pci driver directory when @vfio_loaded. */
int kmodel_init(struct kmodel *km, struct gp_fake *fake, bool vfio_loaded);
void kmodel_clear(struct kmodel *km);

/* The hook for gp_sysfs_set_write_hook(sys, kmodel_hook, km). */
int kmodel_hook(void *data, struct gp_sysfs *sys, const char *path, const char *val);

/* A load_module for struct gp_kernel_ops (data = km): makes the vfio-pci
 * driver appear when km->load_ok, else -ENOENT. */
int kmodel_load(void *data, struct gp_ctx *ctx, const char *name);

/* Current driver of @addr in the tree ("" when none). */
void kmodel_driver(struct kmodel *km, const char *addr, char *buf, size_t len);
/* Binds @addr to @drv by hand (what an operator's echo would do). */
int kmodel_bind(struct kmodel *km, const char *addr, const char *drv);

/* A text snapshot of the whole tree (paths, link targets, file contents),
 * to assert that a refused operation changed nothing. malloc'd. */
char *tree_snapshot(const char *root);
/* A text dump of every table of the state database at @db. malloc'd. */
char *db_snapshot(const char *db);

#endif
