/* SPDX-License-Identifier: Apache-2.0 */
/* Tiny TAP helpers for the PV test programs (they run through the real
 * ocl-icd loader, so they use only the public OpenCL API). */
#ifndef GP_TESTS_PV_PVTEST_H
#define GP_TESTS_PV_PVTEST_H

#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_n, t_fail;

#define OK(cond, ...)                                                            \
	do {                                                                     \
		t_n++;                                                           \
		if (cond) {                                                      \
			printf("ok %d - ", t_n);                                 \
		} else {                                                         \
			t_fail++;                                                \
			printf("not ok %d - ", t_n);                             \
		}                                                                \
		printf(__VA_ARGS__);                                             \
		printf("\n");                                                    \
		fflush(stdout);                                                  \
	} while (0)

#define EQ(got, want, what)                                                      \
	do {                                                                     \
		long long _g = (long long)(got), _w = (long long)(want);         \
		OK(_g == _w, "%s: got %lld, want %lld", what, _g, _w);           \
	} while (0)

static inline int t_done(void)
{
	printf("1..%d\n", t_n);
	return t_fail ? 1 : 0;
}

/* The first platform and device the loader shows (only ours, in tests). */
static inline void t_first(cl_platform_id *p, cl_device_id *d)
{
	cl_uint n = 0;

	if (clGetPlatformIDs(1, p, &n) != CL_SUCCESS || n == 0 ||
	    clGetDeviceIDs(*p, CL_DEVICE_TYPE_ALL, 1, d, NULL) != CL_SUCCESS) {
		printf("Bail out! no OpenCL platform/device (is gpupass-pvd running?)\n");
		exit(1);
	}
}

#endif
