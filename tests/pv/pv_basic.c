/* SPDX-License-Identifier: Apache-2.0 */
/* Every object kind through gpupass PV, results checked against values
 * computed here. */
#include <pthread.h>
#include <unistd.h>

#include "pvtest.h"

static const char *src =
	"__kernel void vadd(__global const float *a, __global const float *b,\n"
	"                   __global float *c, const unsigned n) {\n"
	"  size_t i = get_global_id(0); if (i < n) c[i] = a[i] + b[i];\n"
	"}\n"
	"__kernel void reduce(__global const int *in, __global int *out,\n"
	"                     __local int *tmp) {\n"
	"  size_t l = get_local_id(0), g = get_global_id(0), n = get_local_size(0);\n"
	"  tmp[l] = in[g]; barrier(CLK_LOCAL_MEM_FENCE);\n"
	"  for (size_t s = n / 2; s > 0; s /= 2) { if (l < s) tmp[l] += tmp[l + s];\n"
	"    barrier(CLK_LOCAL_MEM_FENCE); }\n"
	"  if (l == 0) out[get_group_id(0)] = tmp[0];\n"
	"}\n"
	"__kernel void scale(__global int *x, int k) { x[get_global_id(0)] *= k; }\n";

static int cb_status = 1;
static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;

static void CL_CALLBACK on_event(cl_event e, cl_int st, void *data)
{
	/* The data first: the main thread stops waiting once it sees the
	 * status (the guest VM's slow clock made the race show). */
	pthread_mutex_lock(&cb_lock);
	*(int *)data = 42;
	cb_status = st;
	pthread_mutex_unlock(&cb_lock);
}

static int ctx_dtor_called;

static void CL_CALLBACK on_ctx_dtor(cl_context c, void *d)
{
	ctx_dtor_called = 1;
}

int main(void)
{
	enum { N = 1 << 20, LN = 256 };
	cl_platform_id plat;
	cl_device_id dev;
	cl_context ctx;
	cl_command_queue q;
	cl_program prog, prog2;
	cl_kernel kadd, kred, kscale;
	cl_mem a, b, c, r, sub;
	cl_int err;
	cl_event ev, uev, ev2;
	char name[256] = "", log[4096];
	float *fa = malloc(N * sizeof(float)), *fb = malloc(N * sizeof(float)),
	      *fc = malloc(N * sizeof(float));
	int *ia = malloc(N * sizeof(int)), *ir = malloc(N / LN * sizeof(int));
	size_t g = N, l = LN, sz;
	unsigned n = N;
	long long want = 0, got = 0;
	int bad = 0, cbdata = 0;

	t_first(&plat, &dev);
	clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof(name), name, NULL);
	OK(strncmp(name, "gpupass PV (remote: ", 20) == 0, "platform name '%s' says it is remoted", name);

	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateContext");
	OK(clSetContextDestructorCallback(ctx, on_ctx_dtor, NULL) == CL_SUCCESS, "context destructor callback set");
	q = clCreateCommandQueue(ctx, dev, CL_QUEUE_PROFILING_ENABLE, &err);
	EQ(err, CL_SUCCESS, "clCreateCommandQueue (profiling)");

	/* programs: build, log, info, binaries */
	prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateProgramWithSource");
	EQ(clBuildProgram(prog, 1, &dev, "", NULL, NULL), CL_SUCCESS, "clBuildProgram");
	{
		cl_build_status bs = CL_BUILD_NONE;
		cl_uint nk = 0;

		clGetProgramBuildInfo(prog, dev, CL_PROGRAM_BUILD_STATUS, sizeof(bs), &bs, NULL);
		EQ(bs, CL_BUILD_SUCCESS, "build status");
		clGetProgramInfo(prog, CL_PROGRAM_NUM_KERNELS, sizeof(size_t), &sz, NULL);
		EQ(sz, 3, "CL_PROGRAM_NUM_KERNELS");
		clGetProgramInfo(prog, CL_PROGRAM_KERNEL_NAMES, sizeof(log), log, NULL);
		OK(strstr(log, "vadd") && strstr(log, "reduce") && strstr(log, "scale"), "kernel names '%s'", log);
		clGetProgramInfo(prog, CL_PROGRAM_NUM_DEVICES, sizeof(nk), &nk, NULL);
		EQ(nk, 1, "CL_PROGRAM_NUM_DEVICES");
	}
	{
		const char *bad_src = "__kernel void broken(void) { this is not C; }";
		cl_program pb = clCreateProgramWithSource(ctx, 1, &bad_src, NULL, &err);

		EQ(clBuildProgram(pb, 1, &dev, NULL, NULL, NULL), CL_BUILD_PROGRAM_FAILURE, "broken program fails to build");
		EQ(clBuildProgram(prog, 1, &dev, "-Xclang -load -Xclang /tmp/x.so", NULL, NULL),
		   CL_INVALID_BUILD_OPTIONS, "compiler options outside OpenCL's set are refused");
		EQ(clBuildProgram(prog, 1, &dev, "-DN=4 -cl-fast-relaxed-math -w -cl-kernel-arg-info", NULL, NULL), CL_SUCCESS,
		   "OpenCL build options pass");
		log[0] = '\0';
		clGetProgramBuildInfo(pb, dev, CL_PROGRAM_BUILD_LOG, sizeof(log), log, &sz);
		OK(sz > 1 && strstr(log, "error"), "build log has the error (%zu bytes)", sz);
		clReleaseProgram(pb);
	}
	{
		size_t bsz = 0;
		unsigned char *bin;
		const unsigned char *cbin;
		cl_int bst = -1;

		clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof(bsz), &bsz, NULL);
		OK(bsz > 0, "binary size %zu", bsz);
		bin = malloc(bsz);
		EQ(clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof(bin), &bin, NULL), CL_SUCCESS, "CL_PROGRAM_BINARIES");
		cbin = bin;
		prog2 = clCreateProgramWithBinary(ctx, 1, &dev, &bsz, &cbin, &bst, &err);
		EQ(err, CL_SUCCESS, "clCreateProgramWithBinary");
		EQ(bst, CL_SUCCESS, "binary status");
		EQ(clBuildProgram(prog2, 1, &dev, "-cl-kernel-arg-info", NULL, NULL), CL_SUCCESS, "build from binary");
		free(bin);
	}

	/* kernels */
	kadd = clCreateKernel(prog2, "vadd", &err);
	EQ(err, CL_SUCCESS, "clCreateKernel vadd (from the binary)");
	kred = clCreateKernel(prog, "reduce", &err);
	kscale = clCreateKernel(prog, "scale", &err);
	clCreateKernel(prog, "nope", &err);
	EQ(err, CL_INVALID_KERNEL_NAME, "unknown kernel name");
	{
		cl_uint na = 0;
		cl_kernel ks[3];
		cl_uint nk = 0;

		clGetKernelInfo(kadd, CL_KERNEL_NUM_ARGS, sizeof(na), &na, NULL);
		EQ(na, 4, "vadd has 4 args");
		clGetKernelInfo(kadd, CL_KERNEL_FUNCTION_NAME, sizeof(name), name, NULL);
		OK(strcmp(name, "vadd") == 0, "function name '%s'", name);
		EQ(clCreateKernelsInProgram(prog, 3, ks, &nk), CL_SUCCESS, "clCreateKernelsInProgram");
		EQ(nk, 3, "3 kernels");
		for (cl_uint i = 0; i < nk; i++)
			clReleaseKernel(ks[i]);
	}
	{
		cl_kernel_arg_address_qualifier aq = 0;
		size_t wg = 0;

		EQ(clGetKernelArgInfo(kadd, 2, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof(aq), &aq, NULL),
		   CL_SUCCESS, "clGetKernelArgInfo");
		EQ(aq, CL_KERNEL_ARG_ADDRESS_GLOBAL, "arg 2 is __global");
		EQ(clGetKernelArgInfo(kadd, 9, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof(aq), &aq, NULL),
		   CL_INVALID_ARG_INDEX, "arg info of a bad index");
		EQ(clGetKernelWorkGroupInfo(kadd, dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof(wg), &wg, NULL),
		   CL_SUCCESS, "clGetKernelWorkGroupInfo");
		OK(wg >= 1, "work-group size %zu", wg);
	}

	/* vector add */
	for (int i = 0; i < N; i++) {
		fa[i] = (float)i;
		fb[i] = (float)(2 * i + 1);
	}
	a = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, N * sizeof(float), fa, &err);
	EQ(err, CL_SUCCESS, "buffer a (COPY_HOST_PTR, 4 MiB: through the bulk region)");
	b = clCreateBuffer(ctx, CL_MEM_READ_ONLY, N * sizeof(float), NULL, &err);
	c = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, N * sizeof(float), NULL, &err);
	EQ(clEnqueueWriteBuffer(q, b, CL_TRUE, 0, N * sizeof(float), fb, 0, NULL, NULL), CL_SUCCESS, "write b");
	clSetKernelArg(kadd, 0, sizeof(cl_mem), &a);
	clSetKernelArg(kadd, 1, sizeof(cl_mem), &b);
	clSetKernelArg(kadd, 2, sizeof(cl_mem), &c);
	clSetKernelArg(kadd, 3, sizeof(unsigned), &n);
	EQ(clSetKernelArg(kadd, 7, sizeof(unsigned), &n), CL_INVALID_ARG_INDEX, "set arg of a bad index");
	EQ(clEnqueueNDRangeKernel(q, kadd, 1, NULL, &g, NULL, 0, NULL, &ev), CL_SUCCESS, "enqueue vadd");
	EQ(clWaitForEvents(1, &ev), CL_SUCCESS, "wait for vadd");
	{
		cl_int st = 1;
		cl_ulong t0 = 0, t1 = 0;
		cl_command_type ct = 0;

		clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st, NULL);
		EQ(st, CL_COMPLETE, "vadd event complete");
		clGetEventInfo(ev, CL_EVENT_COMMAND_TYPE, sizeof(ct), &ct, NULL);
		EQ(ct, CL_COMMAND_NDRANGE_KERNEL, "event command type");
		clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof(t0), &t0, NULL);
		clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof(t1), &t1, NULL);
		OK(t1 > t0 && t0 > 0, "profiling start %llu < end %llu", (unsigned long long)t0,
		   (unsigned long long)t1);
		clReleaseEvent(ev);
	}
	memset(fc, 0, N * sizeof(float));
	EQ(clEnqueueReadBuffer(q, c, CL_TRUE, 0, N * sizeof(float), fc, 0, NULL, NULL), CL_SUCCESS, "read c");
	for (int i = 0; i < N; i++)
		bad += fc[i] != (float)(3 * i + 1);
	EQ(bad, 0, "vadd results wrong");
	{
		/* a clone keeps the arguments (a, b, n): only the output changes */
		cl_kernel kc = clCloneKernel(kadd, &err);
		cl_mem dd = clCreateBuffer(ctx, CL_MEM_READ_WRITE, N * sizeof(float), NULL, &err);

		EQ(err, CL_SUCCESS, "clCloneKernel");
		clSetKernelArg(kc, 2, sizeof(cl_mem), &dd);
		EQ(clEnqueueNDRangeKernel(q, kc, 1, NULL, &g, NULL, 0, NULL, NULL), CL_SUCCESS, "enqueue the clone");
		memset(fc, 0, N * sizeof(float));
		EQ(clEnqueueReadBuffer(q, dd, CL_TRUE, 0, N * sizeof(float), fc, 0, NULL, NULL), CL_SUCCESS, "read the clone's output");
		bad = 0;
		for (int i = 0; i < N; i++)
			bad += fc[i] != (float)(3 * i + 1);
		EQ(bad, 0, "clone results wrong");
		clReleaseKernel(kc);
		clReleaseMemObject(dd);
	}

	/* reduction with local memory */
	for (int i = 0; i < N; i++) {
		ia[i] = (i * 7) % 1000 - 300;
		want += ia[i];
	}
	r = clCreateBuffer(ctx, CL_MEM_READ_WRITE, N / LN * sizeof(int), NULL, &err);
	{
		cl_mem in = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_USE_HOST_PTR, N * sizeof(int), ia, &err);

		EQ(err, CL_SUCCESS, "buffer with USE_HOST_PTR");
		clSetKernelArg(kred, 0, sizeof(cl_mem), &in);
		clSetKernelArg(kred, 1, sizeof(cl_mem), &r);
		clSetKernelArg(kred, 2, LN * sizeof(int), NULL);
		EQ(clEnqueueNDRangeKernel(q, kred, 1, NULL, &g, &l, 0, NULL, NULL), CL_SUCCESS, "enqueue reduce");
		EQ(clEnqueueReadBuffer(q, r, CL_TRUE, 0, N / LN * sizeof(int), ir, 0, NULL, NULL), CL_SUCCESS, "read partial sums");
		for (int i = 0; i < N / LN; i++)
			got += ir[i];
		EQ(got, want, "reduction sum");
		clReleaseMemObject(in);
	}

	/* fill, copy, sub-buffers, map/unmap, rect */
	{
		int pat = 5, k = 3, *m;
		cl_buffer_region reg = { 4096 * sizeof(int), 1024 * sizeof(int) };
		size_t off = 0;

		EQ(clEnqueueFillBuffer(q, r, &pat, sizeof(pat), 0, N / LN * sizeof(int), 0, NULL, NULL), CL_SUCCESS, "fill");
		EQ(clEnqueueReadBuffer(q, r, CL_TRUE, 0, N / LN * sizeof(int), ir, 0, NULL, NULL), CL_SUCCESS, "read filled");
		bad = 0;
		for (int i = 0; i < N / LN; i++)
			bad += ir[i] != 5;
		EQ(bad, 0, "fill values wrong");
		for (int i = 0; i < N; i++)
			ia[i] = i;
		cl_mem x = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, N * sizeof(int), ia, &err);
		cl_mem y = clCreateBuffer(ctx, CL_MEM_READ_WRITE, N * sizeof(int), NULL, &err);

		EQ(clEnqueueCopyBuffer(q, x, y, 0, 0, N * sizeof(int), 0, NULL, NULL), CL_SUCCESS, "copy");
		EQ(clEnqueueCopyBuffer(q, x, x, 0, 8, 64, 0, NULL, NULL), CL_MEM_COPY_OVERLAP, "overlapping copy");
		sub = clCreateSubBuffer(y, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &reg, &err);
		EQ(err, CL_SUCCESS, "clCreateSubBuffer");
		clGetMemObjectInfo(sub, CL_MEM_OFFSET, sizeof(off), &off, NULL);
		EQ(off, 4096 * sizeof(int), "sub-buffer offset");
		clSetKernelArg(kscale, 0, sizeof(cl_mem), &sub);
		clSetKernelArg(kscale, 1, sizeof(int), &k);
		g = 1024;
		EQ(clEnqueueNDRangeKernel(q, kscale, 1, NULL, &g, NULL, 0, NULL, NULL), CL_SUCCESS, "scale the sub-buffer");
		m = clEnqueueMapBuffer(q, y, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, N * sizeof(int), 0, NULL, NULL, &err);
		EQ(err, CL_SUCCESS, "map");
		bad = 0;
		for (int i = 0; m && i < N; i++)
			bad += m[i] != ((i >= 4096 && i < 5120) ? 3 * i : i);
		EQ(bad, 0, "mapped values after copy + scale of the sub-buffer");
		{
			cl_uint mc = 0;

			clGetMemObjectInfo(y, CL_MEM_MAP_COUNT, sizeof(mc), &mc, NULL);
			EQ(mc, 1, "map count");
		}
		for (int i = 0; m && i < 16; i++)
			m[i] = -i;
		EQ(clEnqueueUnmapMemObject(q, y, m, 0, NULL, NULL), CL_SUCCESS, "unmap");
		EQ(clEnqueueUnmapMemObject(q, y, m, 0, NULL, NULL), CL_INVALID_VALUE, "second unmap");
		{
			int row[4] = { 0 };
			size_t bo[3] = { 8 * sizeof(int), 0, 0 }, ho[3] = { 0, 0, 0 };
			size_t reg3[3] = { 4 * sizeof(int), 1, 1 };

			EQ(clEnqueueReadBufferRect(q, y, CL_TRUE, bo, ho, reg3, 0, 0, 0, 0, row, 0, NULL, NULL),
			   CL_SUCCESS, "read rect");
			OK(row[0] == -8 && row[3] == -11, "rect values %d..%d (written through the map)", row[0], row[3]);
		}
		clReleaseMemObject(sub);
		clReleaseMemObject(x);
		clReleaseMemObject(y);
	}

	/* user events, callbacks, markers, barriers */
	uev = clCreateUserEvent(ctx, &err);
	EQ(err, CL_SUCCESS, "clCreateUserEvent");
	{
		int v = 7;

		EQ(clEnqueueWriteBuffer(q, r, CL_FALSE, 0, sizeof(v), &v, 1, &uev, &ev2), CL_SUCCESS,
		   "write waiting for a user event");
		EQ(clSetEventCallback(ev2, CL_COMPLETE, on_event, &cbdata), CL_SUCCESS, "clSetEventCallback");
		EQ(clSetUserEventStatus(uev, CL_COMPLETE), CL_SUCCESS, "clSetUserEventStatus");
		EQ(clSetUserEventStatus(uev, CL_COMPLETE), CL_INVALID_OPERATION, "second clSetUserEventStatus");
		EQ(clEnqueueMarkerWithWaitList(q, 1, &ev2, &ev), CL_SUCCESS, "marker");
		EQ(clEnqueueBarrierWithWaitList(q, 0, NULL, NULL), CL_SUCCESS, "barrier");
		EQ(clWaitForEvents(1, &ev), CL_SUCCESS, "wait for the marker");
		EQ(clFinish(q), CL_SUCCESS, "clFinish");
		for (int i = 0; i < 400; i++) {
			pthread_mutex_lock(&cb_lock);
			int st = cb_status;
			pthread_mutex_unlock(&cb_lock);
			if (st == CL_COMPLETE)
				break;
			usleep(5000);
		}
		pthread_mutex_lock(&cb_lock);
		EQ(cb_status, CL_COMPLETE, "event callback ran with CL_COMPLETE");
		EQ(cbdata, 42, "callback user data");
		pthread_mutex_unlock(&cb_lock);
		clReleaseEvent(ev);
		clReleaseEvent(ev2);
		clReleaseEvent(uev);
	}

	/* retain / release and reference counts */
	{
		cl_uint rc = 0;

		clRetainMemObject(r);
		clGetMemObjectInfo(r, CL_MEM_REFERENCE_COUNT, sizeof(rc), &rc, NULL);
		EQ(rc, 2, "reference count after retain");
		clReleaseMemObject(r);
		clGetMemObjectInfo(r, CL_MEM_REFERENCE_COUNT, sizeof(rc), &rc, NULL);
		EQ(rc, 1, "reference count after release");
	}

	/* error codes */
	EQ(clEnqueueNDRangeKernel(q, kadd, 0, NULL, &g, NULL, 0, NULL, NULL), CL_INVALID_WORK_DIMENSION, "work dim 0");
	EQ(clEnqueueReadBuffer(q, c, CL_TRUE, N * sizeof(float), 4, fc, 0, NULL, NULL), CL_INVALID_VALUE, "read past the end");
	EQ(clEnqueueReadBuffer(q, (cl_mem)kadd, CL_TRUE, 0, 4, fc, 0, NULL, NULL), CL_INVALID_MEM_OBJECT, "kernel passed as a buffer");
	clCreateBuffer(ctx, 0, 0, NULL, &err);
	EQ(err, CL_INVALID_BUFFER_SIZE, "zero-size buffer");
	clCreateBuffer(ctx, CL_MEM_USE_HOST_PTR, 16, NULL, &err);
	EQ(err, CL_INVALID_HOST_PTR, "USE_HOST_PTR without a pointer");
	clCreateImage2D(ctx, 0, NULL, 4, 4, 0, NULL, &err);
	EQ(err, CL_INVALID_IMAGE_FORMAT_DESCRIPTOR, "image without a format");
	EQ(clEnqueueReadBuffer(q, NULL, CL_TRUE, 0, 4, fc, 0, NULL, NULL), CL_INVALID_MEM_OBJECT, "NULL buffer");
	/* A kernel launched with an argument missing: the ICD knows, the
	 * call says so (OpenCL 3.0, clEnqueueNDRangeKernel). */
	{
		cl_kernel kx = clCreateKernel(prog, "vadd", &err);

		g = 16;
		EQ(clEnqueueNDRangeKernel(q, kx, 1, NULL, &g, NULL, 0, NULL, NULL),
		   CL_INVALID_KERNEL_ARGS, "a launch with arguments not set");
		clReleaseKernel(kx);
	}
	/* What only the server can check comes back at the next
	 * synchronising call (pipelined error): local memory beyond the
	 * device's, refused by the server's clSetKernelArg. */
	{
		cl_kernel kx = clCreateKernel(prog, "reduce", &err);
		cl_ulong lmem = 0;

		clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof(lmem), &lmem, NULL);
		EQ(clSetKernelArg(kx, 2, (size_t)lmem * 4, NULL), CL_SUCCESS,
		   "pipelined clSetKernelArg returns at once");
		err = clFinish(q);
		OK(err == CL_INVALID_ARG_SIZE, "its error surfaces at clFinish (%d)", err);
		EQ(clFinish(q), CL_SUCCESS, "and only once");
		clReleaseKernel(kx);
	}

	clReleaseKernel(kadd);
	clReleaseKernel(kred);
	clReleaseKernel(kscale);
	clReleaseProgram(prog);
	clReleaseProgram(prog2);
	clReleaseMemObject(a);
	clReleaseMemObject(b);
	clReleaseMemObject(c);
	clReleaseMemObject(r);
	clReleaseCommandQueue(q);
	EQ(ctx_dtor_called, 0, "context alive while objects hold it");
	clReleaseContext(ctx);
	EQ(ctx_dtor_called, 1, "context destructor ran at the last release");
	free(fa);
	free(fb);
	free(fc);
	free(ia);
	free(ir);
	return t_done();
}
