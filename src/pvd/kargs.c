/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel argument sizes and local memory checked before the platform sees them. */
#include <stdlib.h>
#include <string.h>

#include "kargs.h"

uint64_t pvd_kargs_local_max(struct pvd_server *srv)
{
	uint64_t best = 0;

	for (size_t i = 0; i < srv->n_devs; i++) {
		cl_ulong v = 0;

		if (clGetDeviceInfo(srv->devs[i].device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof(v), &v,
				    NULL) == CL_SUCCESS && v > best)
			best = v;
	}
	return best;
}

cl_int pvd_kargs_launch_check(cl_command_queue q, cl_kernel k, uint64_t local_args)
{
	cl_device_id dev = NULL;
	cl_ulong dev_local = 0, k_local = 0;

	if (local_args == 0)
		return CL_SUCCESS; /* the platform knows its kernels' own local memory */
	if (clGetCommandQueueInfo(q, CL_QUEUE_DEVICE, sizeof(dev), &dev, NULL) != CL_SUCCESS ||
	    clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof(dev_local), &dev_local, NULL) !=
		    CL_SUCCESS)
		return CL_INVALID_COMMAND_QUEUE;
	/* CL_KERNEL_LOCAL_MEM_SIZE counts the __local arguments set so far
	 * too (OpenCL 3.0, 5.9.4); whichever is larger is the need. */
	if (clGetKernelWorkGroupInfo(k, dev, CL_KERNEL_LOCAL_MEM_SIZE, sizeof(k_local), &k_local,
				     NULL) != CL_SUCCESS)
		k_local = 0;
	if (local_args > dev_local || k_local > dev_local)
		return CL_OUT_OF_RESOURCES;
	return CL_SUCCESS;
}
