/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel argument sizes and local memory checked before the platform sees them. */
#include <stdlib.h>
#include <string.h>

#include "kargs.h"

uint32_t pvd_kargs_type_size(const char *t, cl_uint addr_bits)
{
	static const struct {
		const char *name;
		uint32_t size;
	} base[] = {
		{ "char", 1 }, { "uchar", 1 }, { "short", 2 }, { "ushort", 2 }, { "half", 2 },
		{ "int", 4 },  { "uint", 4 },  { "float", 4 }, { "long", 8 },   { "ulong", 8 },
		{ "double", 8 },
	};
	size_t n = 0;
	unsigned long vec = 1;

	if (strcmp(t, "size_t") == 0 || strcmp(t, "ptrdiff_t") == 0 || strcmp(t, "intptr_t") == 0 ||
	    strcmp(t, "uintptr_t") == 0)
		return addr_bits == 32 ? 4 : 8;
	while (t[n] >= 'a' && t[n] <= 'z')
		n++;
	if (t[n]) {
		char *end;

		vec = strtoul(t + n, &end, 10);
		if (*end || (vec != 2 && vec != 3 && vec != 4 && vec != 8 && vec != 16))
			return 0;
	}
	/* 3-component vectors take the room of 4 (OpenCL C 3.0, 6.3.5). */
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		if (strlen(base[i].name) == n && strncmp(base[i].name, t, n) == 0)
			return base[i].size * (uint32_t)(vec == 3 ? 4 : vec);
	return 0;
}

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
