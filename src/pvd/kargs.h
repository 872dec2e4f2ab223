/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel arguments checked against the device's limits before the
 * platform sees them (kargs.c). */
#ifndef GP_PVD_KARGS_H
#define GP_PVD_KARGS_H

#include "pvd.h"

/* The largest CL_DEVICE_LOCAL_MEM_SIZE of the server's devices: a
 * __local argument larger than that fits nowhere. */
uint64_t pvd_kargs_local_max(struct pvd_server *srv);
/* Before a launch of @k on @q whose __local arguments add up to
 * @local_args bytes: CL_OUT_OF_RESOURCES when they and the kernel's own
 * local memory exceed the queue's device's CL_DEVICE_LOCAL_MEM_SIZE. */
cl_int pvd_kargs_launch_check(cl_command_queue q, cl_kernel k, uint64_t local_args);

#endif
