/* SPDX-License-Identifier: Apache-2.0 */
/* pv_load SECONDS [BATCH [ITERS]]: keeps the first OpenCL device busy with
 * compute kernels (BATCH per clFinish, default 4) for SECONDS; one guest of
 * bench/pv/fair. Prints the number of launches and the mean time of one
 * batch (launch to clFinish) in ms. */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	static const char *src = "__kernel void busy(__global float *x, int n) {\n"
				 "  size_t i = get_global_id(0); float v = x[i];\n"
				 "  for (int k = 0; k < n; k++) v = v * 1.000001f + 0.5f;\n"
				 "  x[i] = v; }\n";
	double secs = argc > 1 ? atof(argv[1]) : 5, end;
	cl_platform_id p;
	cl_device_id d;
	cl_int err;
	size_t g = 4096;
	int batch = argc > 2 ? atoi(argv[2]) : 4, iters = argc > 3 ? atoi(argv[3]) : 2000;
	int launches = 0, batches = 0;
	double tb = 0;

	if (clGetPlatformIDs(1, &p, NULL) != CL_SUCCESS ||
	    clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL) != CL_SUCCESS)
		return 1;
	cl_context ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
	cl_command_queue q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
	cl_program pr = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	if (clBuildProgram(pr, 1, &d, NULL, NULL, NULL) != CL_SUCCESS)
		return 1;
	cl_kernel k = clCreateKernel(pr, "busy", &err);
	cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, g * sizeof(float), NULL, &err);
	clSetKernelArg(k, 0, sizeof(m), &m);
	clSetKernelArg(k, 1, sizeof(iters), &iters);
	end = now() + secs;
	while (now() < end) {
		double t0 = now();

		for (int i = 0; i < batch; i++, launches++)
			clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL);
		clFinish(q);
		tb += now() - t0;
		batches++;
	}
	printf("%d %.3f\n", launches, batches ? tb / batches * 1e3 : 0.0);
	clReleaseMemObject(m);
	clReleaseKernel(k);
	clReleaseProgram(pr);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return 0;
}
