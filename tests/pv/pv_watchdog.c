/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The watchdog's and bounded builds' guest side (issue 10), driven by
 * pvtest.py (pv-watchdog, pv-hangup, pv-endless, pv-buildbomb):
 *   pv_watchdog spin SECONDS  an endless kernel, then clFinish: prints
 *                             "started", then "finish ERR MS" (ERR the
 *                             OpenCL code, MS how long clFinish took)
 *   pv_watchdog vadd          a checked vector add (TAP)
 *   pv_watchdog short SECONDS short jobs (launch + clFinish) for SECONDS:
 *                             "N P50_MS P99_MS MAX_MS"
 *   pv_watchdog bomb table|expr|ok  builds a compile bomb (or a small
 *                             kernel): "build ERR MS", then the build log
 *                             on the lines after "log:"
 *   pv_watchdog builds N      builds N small programs no worker has seen
 *                             (each its own source): "builds N MEDIAN_MS"
 */
#include <math.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "pvtest.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static cl_context ctx;
static cl_command_queue q;
static cl_device_id dev;

static void setup(void)
{
	cl_platform_id p;
	cl_int err;

	t_first(&p, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	q = ctx ? clCreateCommandQueueWithProperties(ctx, dev, NULL, &err) : NULL;
	if (!q) {
		printf("Bail out! no context or queue: %d\n", err);
		exit(1);
	}
}

static cl_kernel kernel(const char *src, const char *name)
{
	cl_int err;
	cl_program pr = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	cl_kernel k;

	if (!pr || clBuildProgram(pr, 1, &dev, NULL, NULL, NULL) != CL_SUCCESS) {
		printf("Bail out! cannot build %s\n", name);
		exit(1);
	}
	k = clCreateKernel(pr, name, &err);
	clReleaseProgram(pr);
	if (!k) {
		printf("Bail out! no kernel %s: %d\n", name, err);
		exit(1);
	}
	return k;
}

/* Never ends: the flag is never set, and the volatile read keeps the
 * loop from being proved endless (and so removed) by the compiler. */
static int spin(void)
{
	static const char *src = "__kernel void spin(__global volatile int *flag, __global int *out) {\n"
				 "  int n = 0;\n"
				 "  while (flag[0] == 0) n++;\n"
				 "  out[get_global_id(0)] = n; }\n";
	cl_kernel k = kernel(src, "spin");
	cl_int err, zero = 0;
	cl_mem flag = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof(zero), &zero, &err);
	cl_mem out = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 64 * sizeof(int), NULL, &err);
	size_t g = 1;
	double t0;

	clSetKernelArg(k, 0, sizeof(flag), &flag);
	clSetKernelArg(k, 1, sizeof(out), &out);
	err = clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL);
	clFlush(q);
	printf("started %d\n", err);
	fflush(stdout);
	t0 = now_ms();
	err = clFinish(q);
	printf("finish %d %.0f\n", err, now_ms() - t0);
	fflush(stdout);
	/* The session is gone: every later call fails the same way. */
	printf("after %d\n", clFlush(q));
	fflush(stdout);
	clReleaseMemObject(flag);
	clReleaseMemObject(out);
	clReleaseKernel(k);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return 0;
}

static int vadd(void)
{
	static const char *src = "__kernel void vadd(__global const int *a, __global const int *b,"
				 " __global int *c) { size_t i = get_global_id(0); c[i] = a[i] + b[i]; }\n";
	enum { N = 4096 };
	static int a[N], b[N], c[N];
	cl_kernel k;
	cl_int err;
	cl_mem ma, mb, mc;
	size_t g = N;
	int bad = 0;

	for (int i = 0; i < N; i++) {
		a[i] = i;
		b[i] = 3 * i + 1;
	}
	k = kernel(src, "vadd");
	ma = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof(a), a, &err);
	mb = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof(b), b, &err);
	mc = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, sizeof(c), NULL, &err);
	clSetKernelArg(k, 0, sizeof(ma), &ma);
	clSetKernelArg(k, 1, sizeof(mb), &mb);
	clSetKernelArg(k, 2, sizeof(mc), &mc);
	EQ(clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL), CL_SUCCESS, "vector add enqueued");
	EQ(clEnqueueReadBuffer(q, mc, CL_TRUE, 0, sizeof(c), c, 0, NULL, NULL), CL_SUCCESS, "result read");
	for (int i = 0; i < N; i++)
		bad += c[i] != 4 * i + 1;
	EQ(bad, 0, "wrong sums");
	clReleaseMemObject(ma);
	clReleaseMemObject(mb);
	clReleaseMemObject(mc);
	clReleaseKernel(k);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return t_done();
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The same short job as bench/pv/pv_load's "1 200" (4096 items, 200
 * iterations), one at a time. */
static int shortjobs(double secs)
{
	static const char *src = "__kernel void busy(__global float *x, int n) {\n"
				 "  size_t i = get_global_id(0); float v = x[i];\n"
				 "  for (int k = 0; k < n; k++) v = v * 1.000001f + 0.5f;\n"
				 "  x[i] = v; }\n";
	cl_kernel k = kernel(src, "busy");
	size_t g = 4096, n = 0, cap = 1 << 16;
	double *lat = malloc(cap * sizeof(*lat)), end;
	cl_int err, iters = 200;
	cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, g * sizeof(float), NULL, &err);

	clSetKernelArg(k, 0, sizeof(m), &m);
	clSetKernelArg(k, 1, sizeof(iters), &iters);
	end = now_ms() + secs * 1e3;
	while (now_ms() < end && n < cap) {
		double t0 = now_ms();

		if (clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL) != CL_SUCCESS ||
		    clFinish(q) != CL_SUCCESS) {
			printf("Bail out! short job failed\n");
			return 1;
		}
		lat[n++] = now_ms() - t0;
	}
	qsort(lat, n, sizeof(*lat), cmp);
	printf("%zu %.3f %.3f %.3f\n", n, lat[n / 2], lat[(size_t)floor(0.99 * (double)(n - 1))],
	       lat[n - 1]);
	free(lat);
	clReleaseMemObject(m);
	clReleaseKernel(k);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return 0;
}

/* Compile bombs: a few hundred bytes of source that the preprocessor
 * expands into something huge. */
static const char *bomb_table =
	"#define A x,x,x,x,x,x,x,x,\n"
	"#define B A A A A A A A A\n"    /* 64 */
	"#define C B B B B B B B B\n"    /* 512 */
	"#define D C C C C C C C C\n"    /* 4096 */
	"#define E D D D D D D D D\n"    /* 32768 */
	"#define F E E E E E E E E\n"    /* 262144 */
	"__kernel void k(__global int *o) { size_t i = get_global_id(0);\n"
	"  int x = o[i], t[] = { F 0 };\n"
	"  o[i] = t[(i * 7919u) % (sizeof(t) / sizeof(t[0]))]; }\n";
/* 65,536 nested unary operators: the parser recurses once per level
 * (brackets would stop at clang's bracket depth of 256). */
static const char *bomb_expr =
	"#define A ~-~-~-~-~-~-~-~-\n"
	"#define B A A A A A A A A\n"    /* 64 */
	"#define C B B B B B B B B\n"    /* 512 */
	"#define D C C C C C C C C\n"    /* 4096 */
	"#define E D D D D D D D D D D D D D D D D\n" /* 65536 */
	"__kernel void k(__global int *o) { int x = o[0];\n"
	"  o[get_global_id(0)] = E x; }\n";

static int bomb(const char *which)
{
	static const char *small = "__kernel void k(__global int *o) { o[get_global_id(0)] = 7; }\n";
	const char *src = strcmp(which, "table") == 0 ? bomb_table :
			  strcmp(which, "expr") == 0 ? bomb_expr : small;
	cl_int err;
	cl_program pr = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	size_t len = 0;
	char *log;
	double t0;

	if (!pr) {
		printf("Bail out! clCreateProgramWithSource: %d\n", err);
		return 1;
	}
	t0 = now_ms();
	err = clBuildProgram(pr, 1, &dev, NULL, NULL, NULL);
	printf("build %d %.0f %zu\n", err, now_ms() - t0, strlen(src));
	clGetProgramBuildInfo(pr, dev, CL_PROGRAM_BUILD_LOG, 0, NULL, &len);
	log = calloc(len + 1, 1);
	if (log && clGetProgramBuildInfo(pr, dev, CL_PROGRAM_BUILD_LOG, len, log, NULL) == CL_SUCCESS)
		printf("log:\n%s\n", log);
	free(log);
	clReleaseProgram(pr);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return 0;
}

static int cmp_ms(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int builds(int n)
{
	double ms[64];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (n < 1 || n > 64) {
		printf("Bail out! builds: 1 to 64\n");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char src[256];
		const char *s = src;
		cl_int err;
		cl_program pr;
		double t0;

		/* Never seen before: this process, this moment, this index. */
		snprintf(src, sizeof(src), "__kernel void k(__global long *o) "
			 "{ o[get_global_id(0)] = %ldL + %d; }\n", (long)ts.tv_sec * 1000000 +
			 ts.tv_nsec / 1000 + getpid(), i);
		pr = clCreateProgramWithSource(ctx, 1, &s, NULL, &err);
		t0 = now_ms();
		err = pr ? clBuildProgram(pr, 1, &dev, NULL, NULL, NULL) : err;
		ms[i] = now_ms() - t0;
		if (pr)
			clReleaseProgram(pr);
		if (err != CL_SUCCESS) {
			printf("Bail out! build %d: %d\n", i, err);
			return 1;
		}
	}
	qsort(ms, (size_t)n, sizeof(ms[0]), cmp_ms);
	printf("builds %d %.0f\n", n, ms[n / 2]);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pv_watchdog spin|vadd|short SECONDS|bomb table|expr|ok|builds N\n");
		return 2;
	}
	setup();
	if (strcmp(argv[1], "spin") == 0)
		return spin();
	if (strcmp(argv[1], "vadd") == 0)
		return vadd();
	if (strcmp(argv[1], "short") == 0 && argc > 2)
		return shortjobs(atof(argv[2]));
	if (strcmp(argv[1], "bomb") == 0 && argc > 2)
		return bomb(argv[2]);
	if (strcmp(argv[1], "builds") == 0 && argc > 2)
		return builds(atoi(argv[2]));
	fprintf(stderr, "pv_watchdog: unknown mode %s\n", argv[1]);
	return 2;
}
