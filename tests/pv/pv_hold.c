/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_hold MODE: sets up objects, prints "ready", then acts on a line of
 * stdin. MODE "stress": loops writing and reading 64 MiB until killed
 * (for kill -9 mid-transfer). MODE "gone": waits for the line (sent after
 * the server is stopped) and checks calls fail promptly with the right
 * codes instead of hanging.
 */
#include <time.h>
#include <unistd.h>

#include "pvtest.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	size_t sz = 64u << 20;
	cl_platform_id p;
	cl_device_id d;
	cl_context ctx;
	cl_command_queue q;
	cl_mem m;
	cl_int err;
	char line[16];
	char *host = malloc(sz);
	double t0;

	if (argc != 2)
		return 2;
	t_first(&p, &d);
	ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
	q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
	m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sz, NULL, &err);
	memset(host, 3, sz);
	printf("ready\n");
	fflush(stdout);
	if (strcmp(argv[1], "userwait") == 0) {
		/* Work that can never run: it waits on a user event nobody will
		 * set once this process is killed. */
		cl_event ue = clCreateUserEvent(ctx, &err);
		size_t one = 1;
		const char *src = "__kernel void k(__global int *a) { a[0] = 1; }";
		cl_program pr = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
		cl_kernel k;

		clBuildProgram(pr, 1, &d, NULL, NULL, NULL);
		k = clCreateKernel(pr, "k", &err);
		clSetKernelArg(k, 0, sizeof(m), &m);
		clEnqueueNDRangeKernel(q, k, 1, NULL, &one, NULL, 1, &ue, NULL);
		clEnqueueWriteBuffer(q, m, CL_FALSE, 0, 4096, host, 1, &ue, NULL);
		clFlush(q);
		printf("waiting\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	if (strcmp(argv[1], "stress") == 0) {
		for (;;) {
			clEnqueueWriteBuffer(q, m, CL_TRUE, 0, sz, host, 0, NULL, NULL);
			clEnqueueReadBuffer(q, m, CL_TRUE, 0, sz, host, 0, NULL, NULL);
		}
	}
	if (!fgets(line, sizeof(line), stdin))
		return 2;
	t0 = now();
	err = clFinish(q);
	OK(err == CL_OUT_OF_RESOURCES || err == CL_DEVICE_NOT_AVAILABLE, "clFinish with the server gone: %d", err);
	err = clEnqueueReadBuffer(q, m, CL_TRUE, 0, 4096, host, 0, NULL, NULL);
	OK(err == CL_OUT_OF_RESOURCES, "blocking read with the server gone: %d", err);
	clCreateBuffer(ctx, CL_MEM_READ_WRITE, 4096, NULL, &err);
	OK(err == CL_OUT_OF_RESOURCES, "clCreateBuffer with the server gone: %d", err);
	OK(now() - t0 < 2.0, "failed promptly (%.3f s)", now() - t0);
	/* Releases still free what the ICD holds locally. */
	EQ(clReleaseMemObject(m), CL_SUCCESS, "release with the server gone");
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	free(host);
	return t_done();
}
