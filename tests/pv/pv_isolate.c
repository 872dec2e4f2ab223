/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_isolate MODE [ARG]: the worker-process isolation and sandbox checks.
 *   vadd          one vector add through PV, result checked
 *   hold          a session set up once; each stdin line "go" runs a
 *                 checked vector add on it and prints "ok N" / "bad N";
 *                 "quit" ends
 *   crash         a kernel writing through a wild pointer: the guest's
 *                 worker dies; the next synchronising call must fail with
 *                 CL_DEVICE_NOT_AVAILABLE or CL_OUT_OF_RESOURCES
 *   include DIR   DIR holds secret.h (with the word in $PV_SECRET): an
 *                 absolute #include of it and a build with -I DIR both
 *                 fail with CL_BUILD_PROGRAM_FAILURE and their logs do
 *                 not contain the secret; a header under /usr builds
 *   leak DIR      the same builds with the sandbox off: prints the build
 *                 log (the harness checks that the secret shows)
 */
#include <stdbool.h>

#include "pvtest.h"

static const char *vadd_src =
	"__kernel void vadd(__global const int *a, __global const int *b, __global int *c)"
	"{ size_t i = get_global_id(0); c[i] = a[i] + b[i]; }";

struct vs {
	cl_device_id d;
	cl_context ctx;
	cl_command_queue q;
	cl_program p;
	cl_kernel k;
	cl_mem a, b, c;
};

#define N 4096

static int vs_open(struct vs *v)
{
	cl_platform_id p;
	cl_int err;

	t_first(&p, &v->d);
	v->ctx = clCreateContext(NULL, 1, &v->d, NULL, NULL, &err);
	if (!v->ctx)
		return err;
	v->q = clCreateCommandQueueWithProperties(v->ctx, v->d, NULL, &err);
	v->p = clCreateProgramWithSource(v->ctx, 1, &vadd_src, NULL, &err);
	if (!v->q || !v->p)
		return err;
	err = clBuildProgram(v->p, 1, &v->d, NULL, NULL, NULL);
	if (err)
		return err;
	v->k = clCreateKernel(v->p, "vadd", &err);
	v->a = clCreateBuffer(v->ctx, CL_MEM_READ_ONLY, N * sizeof(int), NULL, &err);
	v->b = clCreateBuffer(v->ctx, CL_MEM_READ_ONLY, N * sizeof(int), NULL, &err);
	v->c = clCreateBuffer(v->ctx, CL_MEM_WRITE_ONLY, N * sizeof(int), NULL, &err);
	if (!v->k || !v->a || !v->b || !v->c)
		return err ? err : CL_OUT_OF_RESOURCES;
	clSetKernelArg(v->k, 0, sizeof(cl_mem), &v->a);
	clSetKernelArg(v->k, 1, sizeof(cl_mem), &v->b);
	return clSetKernelArg(v->k, 2, sizeof(cl_mem), &v->c);
}

/* One vector add with fresh inputs (@round varies them); 0 if right. */
static int vs_run(struct vs *v, int round)
{
	static int a[N], b[N], c[N];
	size_t n = N;
	int bad = 0;
	cl_int err;

	for (int i = 0; i < N; i++) {
		a[i] = i * round;
		b[i] = 7 - i;
		c[i] = -1;
	}
	err = clEnqueueWriteBuffer(v->q, v->a, CL_FALSE, 0, sizeof(a), a, 0, NULL, NULL);
	if (!err)
		err = clEnqueueWriteBuffer(v->q, v->b, CL_FALSE, 0, sizeof(b), b, 0, NULL, NULL);
	if (!err)
		err = clEnqueueNDRangeKernel(v->q, v->k, 1, NULL, &n, NULL, 0, NULL, NULL);
	if (!err)
		err = clEnqueueReadBuffer(v->q, v->c, CL_TRUE, 0, sizeof(c), c, 0, NULL, NULL);
	if (err)
		return err;
	for (int i = 0; i < N; i++)
		bad += c[i] != i * round + 7 - i;
	return bad ? -bad : 0;
}

static void vs_close(struct vs *v)
{
	clReleaseMemObject(v->a);
	clReleaseMemObject(v->b);
	clReleaseMemObject(v->c);
	clReleaseKernel(v->k);
	clReleaseProgram(v->p);
	clReleaseCommandQueue(v->q);
	clReleaseContext(v->ctx);
}

static int crash(void)
{
	static const char *src =
		"__kernel void wild(__global int *ok, ulong where)"
		"{ __global int *bad = (__global int *)where; bad[get_global_id(0) * 1024] = 42; ok[0] = 1; }";
	struct vs v;
	cl_program p;
	cl_kernel k;
	cl_int err;
	size_t n = 64;
	cl_ulong where = 16; /* the first page: never mapped */

	EQ(vs_open(&v), CL_SUCCESS, "session set up");
	EQ(vs_run(&v, 3), 0, "a vector add before the crash");
	p = clCreateProgramWithSource(v.ctx, 1, &src, NULL, &err);
	EQ(clBuildProgram(p, 1, &v.d, NULL, NULL, NULL), CL_SUCCESS, "the wild kernel builds");
	k = clCreateKernel(p, "wild", &err);
	clSetKernelArg(k, 0, sizeof(cl_mem), &v.c);
	clSetKernelArg(k, 1, sizeof(where), &where);
	err = clEnqueueNDRangeKernel(v.q, k, 1, NULL, &n, NULL, 0, NULL, NULL);
	if (err == CL_SUCCESS)
		err = clFinish(v.q);
	OK(err == CL_DEVICE_NOT_AVAILABLE || err == CL_OUT_OF_RESOURCES,
	   "the session of the crashed worker fails: %d", err);
	/* Releases still work locally (the objects are gone on the server). */
	clReleaseKernel(k);
	clReleaseProgram(p);
	vs_close(&v);
	return t_done();
}

static char *build_log(cl_program p, cl_device_id d)
{
	size_t len = 0;
	char *log;

	clGetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, 0, NULL, &len);
	log = calloc(1, len + 1);
	if (log && len)
		clGetProgramBuildInfo(p, d, CL_PROGRAM_BUILD_LOG, len, log, NULL);
	return log;
}

/* Builds @src with @opts; returns the error, *log the build log. */
static cl_int try_build(struct vs *v, const char *src, const char *opts, char **log)
{
	cl_int err;
	cl_program p = clCreateProgramWithSource(v->ctx, 1, &src, NULL, &err);

	if (!p)
		return err;
	err = clBuildProgram(p, 1, &v->d, opts, NULL, NULL);
	*log = build_log(p, v->d);
	clReleaseProgram(p);
	return err;
}

static int include(const char *dir, bool sandboxed)
{
	const char *secret = getenv("PV_SECRET");
	char src[512], opts[512], *log = NULL;
	struct vs v;
	cl_int err;

	if (!secret)
		return 2;
	EQ(vs_open(&v), CL_SUCCESS, "session set up");
	snprintf(src, sizeof(src), "#include \"%s/secret.h\"\n__kernel void k(__global int *a) { a[0] = 1; }",
		 dir);
	err = try_build(&v, src, NULL, &log);
	if (!sandboxed) {
		printf("# LOG1 %s\n", log ? log : "");
	} else {
		EQ(err, CL_BUILD_PROGRAM_FAILURE, "#include of a file outside the sandbox");
		OK(log && !strstr(log, secret), "its build log does not show the file's contents");
	}
	free(log);
	snprintf(opts, sizeof(opts), "-I %s", dir);
	err = try_build(&v, "#include \"secret.h\"\n__kernel void k(__global int *a) { a[0] = 2; }",
			opts, &log);
	if (!sandboxed) {
		printf("# LOG2 %s\n", log ? log : "");
	} else {
		EQ(err, CL_BUILD_PROGRAM_FAILURE, "-I of a directory outside the sandbox");
		OK(log && !strstr(log, secret), "its build log does not show the file's contents");
	}
	free(log);
	err = try_build(&v, "#include \"/usr/include/stdc-predef.h\"\n"
			"__kernel void k(__global int *a) { a[0] = 3; }", "-I /usr/include", &log);
	EQ(err, CL_SUCCESS, "a header under /usr (allowed) builds, with -I /usr/include");
	free(log);
	EQ(vs_run(&v, 5), 0, "the session still computes right");
	vs_close(&v);
	return t_done();
}

int main(int argc, char **argv)
{
	struct vs v;
	char line[32];
	int round = 1;

	if (argc < 2)
		return 2;
	if (strcmp(argv[1], "vadd") == 0) {
		EQ(vs_open(&v), CL_SUCCESS, "session set up");
		EQ(vs_run(&v, 2), 0, "vector add of 4096 ints");
		vs_close(&v);
		return t_done();
	}
	if (strcmp(argv[1], "crash") == 0)
		return crash();
	if (argc == 3 && strcmp(argv[1], "include") == 0)
		return include(argv[2], true);
	if (argc == 3 && strcmp(argv[1], "leak") == 0)
		return include(argv[2], false);
	if (strcmp(argv[1], "hold") != 0)
		return 2;
	if (vs_open(&v) != CL_SUCCESS) {
		printf("setup failed\n");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) && strncmp(line, "quit", 4) != 0) {
		int r = vs_run(&v, ++round);

		printf("%s %d\n", r == 0 ? "ok" : "bad", r);
		fflush(stdout);
	}
	vs_close(&v);
	return 0;
}
