/* SPDX-License-Identifier: Apache-2.0 */
/* A 3D launch with a global offset and a local size through gpupass PV:
 * every work-item writes its global and local ids, and each one is
 * checked, so that every size field of the launch message is proved to
 * reach the host in its place. Then the same with 1 and 2 dimensions. */
#include "pvtest.h"

static const char *src =
	"__kernel void ids(__global uint *out, uint gx, uint gy) {\n"
	"  size_t x = get_global_id(0) - get_global_offset(0);\n"
	"  size_t y = get_global_id(1) - get_global_offset(1);\n"
	"  size_t z = get_global_id(2) - get_global_offset(2);\n"
	"  size_t i = (z * gy + y) * gx + x;\n"
	"  out[4 * i + 0] = get_global_id(0);\n"
	"  out[4 * i + 1] = get_global_id(1);\n"
	"  out[4 * i + 2] = get_global_id(2);\n"
	"  out[4 * i + 3] = get_local_size(0) * 100 + get_local_size(1) * 10 + get_local_size(2);\n"
	"}\n";

static void launch(cl_context ctx, cl_command_queue q, cl_kernel k, cl_uint dim, const size_t *off,
		   const size_t *glob, const size_t *loc, const char *what)
{
	size_t g[3] = { 1, 1, 1 }, o[3] = { 0, 0, 0 }, l[3] = { 1, 1, 1 }, n;
	cl_uint gx, gy, *out;
	cl_mem m;
	cl_int err;
	int bad = 0;

	for (cl_uint i = 0; i < dim; i++) {
		g[i] = glob[i];
		o[i] = off ? off[i] : 0;
		l[i] = loc ? loc[i] : 0;
	}
	n = g[0] * g[1] * g[2];
	out = calloc(4 * n, sizeof(*out));
	m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 4 * n * sizeof(*out), NULL, &err);
	gx = (cl_uint)g[0];
	gy = (cl_uint)g[1];
	clSetKernelArg(k, 0, sizeof(m), &m);
	clSetKernelArg(k, 1, sizeof(gx), &gx);
	clSetKernelArg(k, 2, sizeof(gy), &gy);
	EQ(clEnqueueNDRangeKernel(q, k, dim, off, glob, loc, 0, NULL, NULL), CL_SUCCESS, what);
	EQ(clEnqueueReadBuffer(q, m, CL_TRUE, 0, 4 * n * sizeof(*out), out, 0, NULL, NULL),
	   CL_SUCCESS, "read the ids back");
	for (size_t z = 0; z < g[2]; z++)
		for (size_t y = 0; y < g[1]; y++)
			for (size_t x = 0; x < g[0]; x++) {
				const cl_uint *e = out + 4 * ((z * g[1] + y) * g[0] + x);

				bad += e[0] != x + o[0] || e[1] != y + o[1] || e[2] != z + o[2];
				if (loc)
					bad += e[3] != l[0] * 100 + l[1] * 10 + l[2];
			}
	OK(bad == 0, "%s: %zu work-items with the right global ids%s (%d wrong)", what, n,
	   loc ? " and local sizes" : "", bad);
	clReleaseMemObject(m);
	free(out);
}

int main(void)
{
	static const size_t off3[3] = { 1, 2, 3 }, glob3[3] = { 4, 3, 2 }, loc3[3] = { 2, 3, 1 };
	static const size_t off2[2] = { 5, 7 }, glob2[2] = { 6, 4 }, loc2[2] = { 3, 2 };
	static const size_t glob1[1] = { 17 };
	cl_platform_id p;
	cl_device_id dev;
	cl_context ctx;
	cl_command_queue q;
	cl_program prog;
	cl_kernel k;
	cl_int err;

	t_first(&p, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	q = clCreateCommandQueueWithProperties(ctx, dev, NULL, &err);
	prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	EQ(clBuildProgram(prog, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "clBuildProgram");
	k = clCreateKernel(prog, "ids", &err);
	EQ(err, CL_SUCCESS, "clCreateKernel");
	launch(ctx, q, k, 3, off3, glob3, loc3, "3D launch, offset (1,2,3), local (2,3,1)");
	launch(ctx, q, k, 2, off2, glob2, loc2, "2D launch, offset (5,7), local (3,2)");
	launch(ctx, q, k, 1, NULL, glob1, NULL, "1D launch, no offset, no local size");
	clReleaseKernel(k);
	clReleaseProgram(prog);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return t_done();
}
