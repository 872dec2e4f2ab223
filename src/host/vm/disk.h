/* SPDX-License-Identifier: Apache-2.0 */
/* A VM's disk image: its format and backing file, read once when the VM
 * is created (never at start: a guest owns its disk's contents). */
#ifndef GP_HOST_VM_DISK_H
#define GP_HOST_VM_DISK_H

#include "host/state.h"

struct gp_disk_info {
	char format[8];                   /* "raw" or "qcow2" */
	char backing[GP_VM_PATH_LEN];     /* real path of its backing file, or "" */
	char backing_format[8];           /* "raw" or "qcow2", with a backing file */
};

/* Reads @path's format (taken from @format when it is not NULL: "raw" or
 * "qcow2"; else probed, once, by `qemu-img info`) and, for qcow2, its
 * backing file, which must lie under @allow_backing (a directory; NULL:
 * no backing file allowed), name its format in the image, and have no
 * backing file of its own. qemu-img is $GPUPASS_QEMU_IMG or `qemu-img` on
 * PATH. 0, or -EINVAL / -ENOENT / -EPERM / -ENOTSUP with @why naming @vm,
 * the file and what to do. */
int gp_disk_inspect(const char *vm, const char *path, const char *format,
		    const char *allow_backing, struct gp_disk_info *out, struct gp_why *why);

#endif
