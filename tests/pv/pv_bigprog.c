/* SPDX-License-Identifier: Apache-2.0 */
/* Program sources and binaries larger than one PV message (1 MiB): a
 * 1.7 MB source with a 300 000-entry constant table builds and runs with
 * checked results, comes back whole from CL_PROGRAM_SOURCE, its ~2 MB
 * binary comes back from CL_PROGRAM_BINARIES and builds and runs again
 * through clCreateProgramWithBinary; a source beyond the server's 64 MiB
 * staging limit is refused with CL_OUT_OF_RESOURCES, and the connection
 * serves the next program. */
#include "pvtest.h"

#define ENTRIES 300000
#define N 4096

static int entry(int i)
{
	return (int)(((long long)i * 7919) % 100003);
}

static char *table_source(size_t *len)
{
	size_t cap = (size_t)ENTRIES * 8 + 4096, n = 0;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	n += (size_t)snprintf(s + n, cap - n, "__constant int table[%d] = {", ENTRIES);
	for (int i = 0; i < ENTRIES; i++)
		n += (size_t)snprintf(s + n, cap - n, "%d,", entry(i));
	n += (size_t)snprintf(s + n, cap - n,
			      "};\n__kernel void k(__global int *a) {\n"
			      "  size_t i = get_global_id(0);\n"
			      "  a[i] = table[(i * 97) %% %d] + (int)i; }\n", ENTRIES);
	*len = n;
	return s;
}

/* Runs kernel k of @prog over N items; 0 when every result is right. */
static int run_check(cl_context ctx, cl_command_queue q, cl_program prog)
{
	static int out[N];
	size_t g = N;
	cl_int err;
	cl_kernel k = clCreateKernel(prog, "k", &err);
	cl_mem m = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, sizeof(out), NULL, &err);
	int bad = 0;

	if (!k || !m)
		return -1;
	clSetKernelArg(k, 0, sizeof(m), &m);
	memset(out, 0, sizeof(out));
	if (clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL) != CL_SUCCESS ||
	    clEnqueueReadBuffer(q, m, CL_TRUE, 0, sizeof(out), out, 0, NULL, NULL) != CL_SUCCESS)
		bad = -1;
	for (int i = 0; i < N && !bad; i++)
		bad = out[i] != entry((int)(((long long)i * 97) % ENTRIES)) + i;
	clReleaseMemObject(m);
	clReleaseKernel(k);
	return bad;
}

int main(void)
{
	cl_platform_id p;
	cl_device_id dev;
	cl_context ctx;
	cl_command_queue q;
	cl_program prog, again;
	cl_int err, status = 1;
	size_t len = 0, got = 0, bsize = 0;
	char *src = table_source(&len), *back;
	const char *csrc;
	unsigned char *bin;
	const unsigned char *cbin;

	t_first(&p, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	q = clCreateCommandQueueWithProperties(ctx, dev, NULL, &err);
	EQ(err, CL_SUCCESS, "context and queue");
	OK(src && len > (1u << 20), "source of %zu bytes (more than one 1 MiB message)", len);

	csrc = src;
	prog = clCreateProgramWithSource(ctx, 1, &csrc, &len, &err);
	EQ(err, CL_SUCCESS, "clCreateProgramWithSource of the big source");
	EQ(clBuildProgram(prog, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "clBuildProgram");
	EQ(run_check(ctx, q, prog), 0, "kernel reading the 300 000-entry table: results");

	EQ(clGetProgramInfo(prog, CL_PROGRAM_SOURCE, 0, NULL, &got), CL_SUCCESS, "source size");
	EQ(got, len + 1, "CL_PROGRAM_SOURCE size (with its NUL)");
	back = malloc(got);
	EQ(clGetProgramInfo(prog, CL_PROGRAM_SOURCE, got, back, NULL), CL_SUCCESS, "source back");
	OK(back && memcmp(back, src, len) == 0 && back[len] == '\0', "the source came back whole");
	free(back);

	EQ(clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof(bsize), &bsize, NULL), CL_SUCCESS,
	   "binary size");
	OK(bsize > (1u << 20), "binary of %zu bytes (more than one message)", bsize);
	bin = malloc(bsize);
	EQ(clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof(bin), &bin, NULL), CL_SUCCESS,
	   "CL_PROGRAM_BINARIES");
	cbin = bin;
	again = clCreateProgramWithBinary(ctx, 1, &dev, &bsize, &cbin, &status, &err);
	EQ(err, CL_SUCCESS, "clCreateProgramWithBinary of the big binary");
	EQ(status, CL_SUCCESS, "its binary status");
	EQ(clBuildProgram(again, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "build from the binary");
	EQ(run_check(ctx, q, again), 0, "kernel of the program made from the binary: results");
	clReleaseProgram(again);
	free(bin);
	clReleaseProgram(prog);

	/* beyond the server's staging limit: refused here, nothing sent */
	{
		size_t huge = (64u << 20) + 1;
		char *h = malloc(huge);
		const char *hs = h;
		cl_program hp;

		OK(h != NULL, "a %zu-byte source", huge);
		if (h) {
			memset(h, ' ', huge);
			hp = clCreateProgramWithSource(ctx, 1, &hs, &huge, &err);
			EQ(err, CL_OUT_OF_RESOURCES, "a source over 64 MiB");
			OK(hp == NULL, "and no program");
			free(h);
		}
	}
	/* the connection serves the next program */
	{
		static const char *small = "__kernel void k(__global int *a) { a[get_global_id(0)] = 5; }";
		int v = 0;
		size_t one = 1;
		cl_kernel k;
		cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof(int), NULL, &err);

		prog = clCreateProgramWithSource(ctx, 1, &small, NULL, &err);
		EQ(clBuildProgram(prog, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "a small program after");
		k = clCreateKernel(prog, "k", &err);
		clSetKernelArg(k, 0, sizeof(m), &m);
		clEnqueueNDRangeKernel(q, k, 1, NULL, &one, NULL, 0, NULL, NULL);
		clEnqueueReadBuffer(q, m, CL_TRUE, 0, sizeof(v), &v, 0, NULL, NULL);
		EQ(v, 5, "its result");
		clReleaseKernel(k);
		clReleaseMemObject(m);
		clReleaseProgram(prog);
	}
	free(src);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return t_done();
}
