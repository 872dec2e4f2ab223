/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_poke MODE [ADDR]: a guest's kernel reaching for another guest's
 * memory. On a CPU platform (PoCL) a kernel is native code in its worker:
 * an integer used as a `__global ulong *` reads and writes any address of
 * that process, so two guests must never share a worker.
 *   plant      a 4 KiB buffer filled with a marker; prints its address in
 *              the worker ("addr 0x..."), then "ready"; on the stdin line
 *              "check" reads the buffer back and prints "intact" or
 *              "changed N" (the first word that differs), then exits
 *   peek ADDR  a kernel reads 8 words at ADDR and writes 0xbad over the
 *              first: prints "read 0x... x8" when the kernel ran, "error N"
 *              when the device call failed (the worker died of it); exit 0
 *              either way (the harness judges what was read)
 */
#include <inttypes.h>
#include <stdint.h>

#include "pvtest.h"

#define WORDS 512
#define MARK(i) (0x5ec2e70000000000ull | (uint64_t)(i))

static const char *src =
	"__kernel void addr(__global ulong *b, __global ulong *out) { out[0] = (ulong)b; }\n"
	"__kernel void peek(ulong a, __global ulong *out) {\n"
	"  __global ulong *p = (__global ulong *)a;\n"
	"  for (int i = 0; i < 8; i++) out[i] = p[i];\n"
	"  p[0] = 0xbad;\n"
	"}\n";

static cl_context ctx;
static cl_command_queue q;
static cl_program prog;

/* Everything released, so that a leak checker (the ASan build) sees none. */
static int done(int rc, cl_kernel k, cl_mem a, cl_mem b)
{
	if (k)
		clReleaseKernel(k);
	if (a)
		clReleaseMemObject(a);
	if (b)
		clReleaseMemObject(b);
	if (prog)
		clReleaseProgram(prog);
	if (q)
		clReleaseCommandQueue(q);
	if (ctx)
		clReleaseContext(ctx);
	return rc;
}

static cl_int setup(void)
{
	cl_platform_id p;
	cl_device_id d;
	cl_int err;

	t_first(&p, &d);
	ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
	if (!ctx)
		return err;
	q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
	prog = q ? clCreateProgramWithSource(ctx, 1, &src, NULL, &err) : NULL;
	if (!prog)
		return err;
	return clBuildProgram(prog, 1, &d, NULL, NULL, NULL);
}

static int plant(void)
{
	static uint64_t host[WORDS];
	uint64_t where = 0;
	char line[64];
	cl_int err;
	cl_mem buf, out;
	cl_kernel k;
	size_t one = 1;

	for (size_t i = 0; i < WORDS; i++)
		host[i] = MARK(i);
	buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof(host), host, &err);
	out = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, sizeof(uint64_t), NULL, &err);
	k = clCreateKernel(prog, "addr", &err);
	if (!buf || !out || !k)
		return printf("error %d\n", err), done(1, k, buf, out);
	clSetKernelArg(k, 0, sizeof(buf), &buf);
	clSetKernelArg(k, 1, sizeof(out), &out);
	err = clEnqueueNDRangeKernel(q, k, 1, NULL, &one, NULL, 0, NULL, NULL);
	if (!err)
		err = clEnqueueReadBuffer(q, out, CL_TRUE, 0, sizeof(where), &where, 0, NULL, NULL);
	if (err)
		return printf("error %d\n", err), done(1, k, buf, out);
	printf("addr 0x%" PRIx64 "\nready\n", where);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return done(1, k, buf, out);
	memset(host, 0, sizeof(host));
	err = clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof(host), host, 0, NULL, NULL);
	if (err)
		return printf("error %d\n", err), done(1, k, buf, out);
	for (size_t i = 0; i < WORDS; i++)
		if (host[i] != MARK(i))
			return printf("changed %zu\n", i), done(0, k, buf, out);
	printf("intact\n");
	return done(0, k, buf, out);
}

static int peek(const char *a)
{
	uint64_t addr = strtoull(a, NULL, 0), got[8] = { 0 };
	cl_int err;
	cl_mem out = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof(got), NULL, &err);
	cl_kernel k = clCreateKernel(prog, "peek", &err);
	size_t one = 1;

	if (!out || !k)
		return printf("error %d\n", err), done(0, k, out, NULL);
	clSetKernelArg(k, 0, sizeof(addr), &addr);
	clSetKernelArg(k, 1, sizeof(out), &out);
	err = clEnqueueNDRangeKernel(q, k, 1, NULL, &one, NULL, 0, NULL, NULL);
	if (!err)
		err = clEnqueueReadBuffer(q, out, CL_TRUE, 0, sizeof(got), got, 0, NULL, NULL);
	if (err)
		return printf("error %d\n", err), done(0, k, out, NULL);
	printf("read");
	for (int i = 0; i < 8; i++)
		printf(" 0x%" PRIx64, got[i]);
	printf("\n");
	return done(0, k, out, NULL);
}

int main(int argc, char **argv)
{
	cl_int err;

	if (argc < 2 || (strcmp(argv[1], "peek") == 0 && argc < 3)) {
		fprintf(stderr, "usage: pv_poke plant | pv_poke peek ADDR\n");
		return 2;
	}
	err = setup();
	if (err) {
		printf("error %d\n", err);
		return done(1, NULL, NULL, NULL);
	}
	return strcmp(argv[1], "plant") == 0 ? plant() : peek(argv[2]);
}
