/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a hostile guest makes its worker hold, through the ICD (issue 10):
 *   pv_hostile sources N MIB   N program sources of MIB MiB each: beyond
 *                              memory_max refused with CL_OUT_OF_RESOURCES
 *   pv_hostile writes N KIB    N non-blocking writes of KIB KiB queued
 *                              behind a user event: beyond memory_max
 *                              refused (CL_OUT_OF_RESOURCES at the next
 *                              synchronising call, events in error)
 *   pv_hostile fills N         N fills queued behind a user event: each a
 *                              record the platform holds; beyond memory_max
 *                              refused (CL_OUT_OF_RESOURCES)
 *   pv_hostile failfills N     the same, then the user event set to an error:
 *                              every fill fails, their records must go while
 *                              the guest stays connected (second "ready")
 *   pv_hostile local           a 1 MiB __local argument and a scalar of the
 *                              wrong size: error codes, the next launch works
 * sources and writes print "ready" once they hold what they could get and
 * wait for a line on stdin (the test reads the server's status and the
 * worker's memory meanwhile), then release it and check that the quota
 * has room again.
 */
#include <stdbool.h>
#include <unistd.h>

#include "pvtest.h"

static cl_context ctx;
static cl_command_queue q;
static cl_device_id dev;

static void hold(void)
{
	char line[16];

	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		line[0] = '\0';
}

static char *make_source(size_t bytes)
{
	static const char body[] = "\n__kernel void k(__global int *a) { a[0] = 7; }\n";
	char *src = malloc(bytes + 1);

	/* A comment of the size asked for, then a small kernel. */
	memset(src, 'x', bytes);
	memcpy(src, "/*", 2);
	memcpy(src + bytes - sizeof(body) - 1, "*/", 2);
	memcpy(src + bytes - sizeof(body) + 1, body, sizeof(body) - 1);
	src[bytes] = '\0';
	return src;
}

static int sources(int n, int mib)
{
	cl_program p[64] = { 0 };
	char *src = make_source((size_t)mib << 20);
	int made = 0, refused = 0, other = 0;
	cl_int err;

	if (n > 64)
		n = 64;
	for (int i = 0; i < n; i++) {
		const char *s = src;

		p[i] = clCreateProgramWithSource(ctx, 1, &s, NULL, &err);
		if (err == CL_SUCCESS)
			made++;
		else if (err == CL_OUT_OF_RESOURCES && !p[i])
			refused++;
		else
			other++;
	}
	OK(made >= 1 && refused >= 1 && other == 0,
	   "%d sources of %d MiB: %d created, %d refused with CL_OUT_OF_RESOURCES, %d other errors",
	   n, mib, made, refused, other);
	hold();
	for (int i = 0; i < n; i++)
		if (p[i])
			clReleaseProgram(p[i]);
	{
		const char *s = src;
		cl_program again = clCreateProgramWithSource(ctx, 1, &s, NULL, &err);

		EQ(err, CL_SUCCESS, "after the releases a source fits again");
		if (again) {
			EQ(clBuildProgram(again, 1, &dev, NULL, NULL, NULL), CL_SUCCESS,
			   "and it builds");
			clReleaseProgram(again);
		}
	}
	free(src);
	return 0;
}

static int writes(int n, int kib)
{
	size_t size = (size_t)kib << 10;
	cl_event *ev = calloc((size_t)n, sizeof(*ev));
	cl_command_queue q2 = clCreateCommandQueueWithProperties(ctx, dev, NULL, NULL);
	cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, size, NULL, NULL);
	cl_mem small = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 64, NULL, NULL);
	cl_event gate = clCreateUserEvent(ctx, NULL);
	unsigned char *data = malloc(size), *back = malloc(size), probe[64];
	int queued = 0, failed = 0;
	cl_int err, first = CL_SUCCESS;

	for (int i = 0; i < n; i++) {
		memset(data, i & 0xff, size);
		err = clEnqueueWriteBuffer(q, m, CL_FALSE, 0, size, data, 1, &gate, &ev[i]);
		if (err != CL_SUCCESS && first == CL_SUCCESS)
			first = err;
		if (err != CL_SUCCESS)
			failed++;
	}
	/* A synchronising call on another queue: the first error of the
	 * pipelined writes comes back here, unless an enqueue that
	 * synchronised (the ICD recycles its bulk region) returned it. */
	err = clEnqueueReadBuffer(q2, small, CL_TRUE, 0, sizeof(probe), probe, 0, NULL, NULL);
	if (first == CL_SUCCESS)
		first = err;
	EQ(first, CL_OUT_OF_RESOURCES, "queued writes beyond memory_max: the error returned");
	printf("# %d enqueue calls returned an error\n", failed);
	for (int i = 0; i < n; i++) {
		cl_int st = CL_QUEUED;

		if (ev[i] && clGetEventInfo(ev[i], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st,
					    NULL) == CL_SUCCESS && st >= 0)
			queued++;
	}
	OK(queued >= 1 && queued < n, "%d of %d writes of %d KiB queued behind a user event, "
	   "the rest refused", queued, n, kib);
	hold();
	EQ(clSetUserEventStatus(gate, CL_COMPLETE), CL_SUCCESS, "user event set");
	EQ(clFinish(q), CL_SUCCESS, "the queued writes ran");
	EQ(clEnqueueReadBuffer(q, m, CL_TRUE, 0, size, back, 0, NULL, NULL), CL_SUCCESS, "read back");
	{
		/* In order: the last accepted write is what the buffer holds. */
		int last = -1;

		for (int i = 0; i < n; i++) {
			cl_int st = -1;

			if (ev[i] && clGetEventInfo(ev[i], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st),
						    &st, NULL) == CL_SUCCESS && st == CL_COMPLETE)
				last = i;
		}
		OK(last >= 0 && back[0] == (unsigned char)(last & 0xff) &&
		   back[size - 1] == (unsigned char)(last & 0xff),
		   "the buffer holds the last accepted write (%d)", last);
	}
	for (int i = 0; i < n; i++)
		if (ev[i])
			clReleaseEvent(ev[i]);
	memset(data, 1, size);
	EQ(clEnqueueWriteBuffer(q, m, CL_FALSE, 0, size, data, 0, NULL, NULL), CL_SUCCESS,
	   "a queued write fits again");
	EQ(clFinish(q), CL_SUCCESS, "and it runs");
	clReleaseEvent(gate);
	clReleaseMemObject(m);
	clReleaseMemObject(small);
	clReleaseCommandQueue(q2);
	free(ev);
	free(data);
	free(back);
	return 0;
}

static int fills(int n, bool fail)
{
	cl_command_queue q2 = clCreateCommandQueueWithProperties(ctx, dev, NULL, NULL);
	cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 4096, NULL, NULL);
	cl_event gate = clCreateUserEvent(ctx, NULL);
	int pat = 7, back[1024], failed = 0;
	cl_int err, first = CL_SUCCESS;

	for (int i = 0; i < n; i++) {
		pat = i;
		err = clEnqueueFillBuffer(q, m, &pat, sizeof(pat), 0, 4096, 1, &gate, NULL);
		if (err != CL_SUCCESS && first == CL_SUCCESS)
			first = err;
		failed += err != CL_SUCCESS;
	}
	err = clEnqueueReadBuffer(q2, m, CL_FALSE, 0, sizeof(int), back, 0, NULL, NULL);
	if (err == CL_SUCCESS)
		err = clFinish(q2);
	if (first == CL_SUCCESS)
		first = err;
	EQ(first, CL_OUT_OF_RESOURCES, "fills queued beyond memory_max: the error returned");
	printf("# %d enqueue calls returned an error\n", failed);
	hold();
	if (fail) {
		/* Every fill behind it fails at once: PoCL calls none of their
		 * completion callbacks, yet their records must go. */
		EQ(clSetUserEventStatus(gate, -1234), CL_SUCCESS, "user event set to an error");
		clFinish(q);
		hold();
		clReleaseEvent(gate);
		clReleaseMemObject(m);
		clReleaseCommandQueue(q2);
		return 0;
	}
	EQ(clSetUserEventStatus(gate, CL_COMPLETE), CL_SUCCESS, "user event set");
	EQ(clFinish(q), CL_SUCCESS, "the queued fills ran");
	EQ(clEnqueueReadBuffer(q, m, CL_TRUE, 0, sizeof(back), back, 0, NULL, NULL), CL_SUCCESS,
	   "read back");
	OK(back[0] >= 0 && back[0] < n && back[1023] == back[0],
	   "the buffer holds one of the fills (%d)", back[0]);
	clReleaseEvent(gate);
	clReleaseMemObject(m);
	clReleaseCommandQueue(q2);
	return 0;
}

static int local(void)
{
	static const char *src =
		"__kernel void k(__global int *out, __local int *tmp, int add) {\n"
		"  size_t i = get_global_id(0), l = get_local_id(0);\n"
		"  tmp[l] = (int)i + add; barrier(CLK_LOCAL_MEM_FENCE);\n"
		"  out[i] = tmp[l];\n}\n";
	size_t n = 64, wg = 16;
	cl_program p = clCreateProgramWithSource(ctx, 1, &src, NULL, NULL);
	cl_kernel k;
	cl_mem out = clCreateBuffer(ctx, CL_MEM_READ_WRITE, n * sizeof(int), NULL, NULL);
	cl_ulong lmem = 0;
	int res[64], add = 5, good = 1;
	long long wrong = 5;
	cl_int err;

	EQ(clBuildProgram(p, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "build");
	k = clCreateKernel(p, "k", &err);
	clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof(lmem), &lmem, NULL);
	clSetKernelArg(k, 0, sizeof(out), &out);
	clSetKernelArg(k, 2, sizeof(add), &add);
	/* 1 MiB of local memory, more than the device has (PoCL: 4 MiB? the
	 * test asks for 1 MiB or 2x the device's, whichever is larger). */
	{
		size_t big = lmem * 2 > (1u << 20) ? (size_t)lmem * 2 : (1u << 20);

		err = clSetKernelArg(k, 1, big, NULL);
		if (err == CL_SUCCESS) {
			err = clEnqueueNDRangeKernel(q, k, 1, NULL, &n, &wg, 0, NULL, NULL);
			if (err == CL_SUCCESS)
				err = clFinish(q);
		}
		OK(err == CL_INVALID_ARG_SIZE || err == CL_OUT_OF_RESOURCES,
		   "a __local argument of %zu bytes (device: %llu): error %d", big,
		   (unsigned long long)lmem, err);
	}
	{
		/* Two __local arguments that each fit and together do not:
		 * refused at the launch. */
		static const char *src2 =
			"__kernel void k2(__global int *o, __local int *a, __local int *b) {\n"
			"  a[get_local_id(0)] = 1; b[get_local_id(0)] = 2;\n"
			"  barrier(CLK_LOCAL_MEM_FENCE); o[get_global_id(0)] = a[0] + b[0];\n}\n";
		cl_program p2 = clCreateProgramWithSource(ctx, 1, &src2, NULL, NULL);
		cl_kernel k2 = NULL;
		size_t half = (size_t)lmem / 2 + 4096;

		clBuildProgram(p2, 1, &dev, NULL, NULL, NULL);
		k2 = clCreateKernel(p2, "k2", &err);
		clSetKernelArg(k2, 0, sizeof(out), &out);
		EQ(clSetKernelArg(k2, 1, half, NULL), CL_SUCCESS, "a __local argument of half the device's");
		EQ(clSetKernelArg(k2, 2, half, NULL), CL_SUCCESS, "and another one");
		err = clEnqueueNDRangeKernel(q, k2, 1, NULL, &n, &wg, 0, NULL, NULL);
		if (err == CL_SUCCESS)
			err = clFinish(q);
		EQ(err, CL_OUT_OF_RESOURCES, "their launch, beyond the device's local memory");
		clReleaseKernel(k2);
		clReleaseProgram(p2);
	}
	err = clSetKernelArg(k, 2, sizeof(wrong), &wrong);
	if (err == CL_SUCCESS)
		err = clFinish(q);
	EQ(err, CL_INVALID_ARG_SIZE, "an int argument set with 8 bytes");
	EQ(clSetKernelArg(k, 1, wg * sizeof(int), NULL), CL_SUCCESS, "a __local argument that fits");
	EQ(clEnqueueNDRangeKernel(q, k, 1, NULL, &n, &wg, 0, NULL, NULL), CL_SUCCESS, "launch");
	EQ(clEnqueueReadBuffer(q, out, CL_TRUE, 0, sizeof(res), res, 0, NULL, NULL), CL_SUCCESS,
	   "read the results");
	for (size_t i = 0; i < n; i++)
		good &= res[i] == (int)i + add;
	OK(good, "the next launch computed right");
	clReleaseKernel(k);
	clReleaseProgram(p);
	clReleaseMemObject(out);
	return 0;
}

int main(int argc, char **argv)
{
	cl_platform_id plat;
	int r = 2;

	if (argc < 2) {
		fprintf(stderr, "usage: pv_hostile sources N MIB | writes N KIB | fills N | failfills N | local\n");
		return 2;
	}
	t_first(&plat, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, NULL);
	q = clCreateCommandQueueWithProperties(ctx, dev, NULL, NULL);
	if (strcmp(argv[1], "sources") == 0 && argc == 4)
		r = sources(atoi(argv[2]), atoi(argv[3]));
	else if (strcmp(argv[1], "writes") == 0 && argc == 4)
		r = writes(atoi(argv[2]), atoi(argv[3]));
	else if (strcmp(argv[1], "fills") == 0 && argc == 3)
		r = fills(atoi(argv[2]), false);
	else if (strcmp(argv[1], "failfills") == 0 && argc == 3)
		r = fills(atoi(argv[2]), true);
	else if (strcmp(argv[1], "local") == 0)
		r = local();
	else
		fprintf(stderr, "pv_hostile: unknown mode\n");
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return r ? r : t_done();
}
