/* SPDX-License-Identifier: Apache-2.0 */
/* The errors OpenCL 3.0 says a call reports itself, checked through the
 * ICD (issue 12, points 2-4): calls the ICD posts without waiting must
 * still find them before sending. Everything here also holds natively on
 * PoCL (run it without OCL_ICD_VENDORS to compare); each case names the
 * rule of the specification it checks. */
#include "pvtest.h"

static cl_context ctx;
static cl_device_id dev;
static cl_command_queue q;

static cl_kernel build(const char *src, const char *opts, const char *name)
{
	cl_int err;
	cl_program p = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	cl_kernel k;

	if (!p || clBuildProgram(p, 1, &dev, opts, NULL, NULL) != CL_SUCCESS) {
		printf("Bail out! build of %s failed\n", name);
		exit(1);
	}
	k = clCreateKernel(p, name, &err);
	clReleaseProgram(p); /* the kernel keeps it */
	if (!k) {
		printf("Bail out! kernel %s: %d\n", name, err);
		exit(1);
	}
	return k;
}

/* Point 2: host access flags with a host pointer; size limits. */
static void mem_flags(void)
{
	static const cl_mem_flags hosts[] = { CL_MEM_HOST_READ_ONLY, CL_MEM_HOST_NO_ACCESS,
					      CL_MEM_HOST_WRITE_ONLY };
	cl_int data[64], back[64], err;
	cl_ulong max_alloc = 0;
	cl_kernel copy = build("kernel void cp(global const int *a, global int *b)"
			       "{ b[get_global_id(0)] = a[get_global_id(0)]; }",
			       "", "cp");
	size_t n = 64;

	for (int i = 0; i < 64; i++)
		data[i] = i * 7 + 1;
	for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++) {
		for (int use = 0; use < 2; use++) {
			cl_mem_flags f = hosts[h] | (use ? CL_MEM_USE_HOST_PTR : CL_MEM_COPY_HOST_PTR);
			cl_mem a = clCreateBuffer(ctx, f, sizeof(data), data, &err);
			cl_mem b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof(back), NULL, NULL);

			EQ(err, CL_SUCCESS, "clCreateBuffer with host flags and a host pointer");
			if (!a)
				continue;
			memset(back, 0, sizeof(back));
			clSetKernelArg(copy, 0, sizeof(a), &a);
			clSetKernelArg(copy, 1, sizeof(b), &b);
			clEnqueueNDRangeKernel(q, copy, 1, NULL, &n, NULL, 0, NULL, NULL);
			clEnqueueReadBuffer(q, b, CL_TRUE, 0, sizeof(back), back, 0, NULL, NULL);
			OK(memcmp(back, data, sizeof(data)) == 0,
			   "flags 0x%llx: the device sees the host data",
			   (unsigned long long)f);
			err = clEnqueueReadBuffer(q, a, CL_TRUE, 0, 4, back, 0, NULL, NULL);
			EQ(err, hosts[h] == CL_MEM_HOST_READ_ONLY ? CL_SUCCESS : CL_INVALID_OPERATION,
			   "clEnqueueReadBuffer of a host-read-forbidden buffer");
			err = clEnqueueWriteBuffer(q, a, CL_TRUE, 0, 4, data, 0, NULL, NULL);
			EQ(err, hosts[h] == CL_MEM_HOST_WRITE_ONLY ? CL_SUCCESS : CL_INVALID_OPERATION,
			   "clEnqueueWriteBuffer of a host-write-forbidden buffer");
			clEnqueueMapBuffer(q, a, CL_TRUE, CL_MAP_READ, 0, 4, 0, NULL, NULL, &err);
			if (err == CL_SUCCESS)
				clFinish(q); /* unmapped at release */
			else
				EQ(err, CL_INVALID_OPERATION, "map for reading a no-read buffer");
			OK((err == CL_SUCCESS) == (hosts[h] == CL_MEM_HOST_READ_ONLY),
			   "clEnqueueMapBuffer(CL_MAP_READ) follows the host flags");
			clReleaseMemObject(a);
			clReleaseMemObject(b);
		}
	}
	/* A sub-buffer may not ask for host access its parent forbids. */
	{
		cl_mem p = clCreateBuffer(ctx, CL_MEM_HOST_NO_ACCESS, 4096, NULL, &err);
		cl_buffer_region r = { 0, 1024 };
		cl_mem s = clCreateSubBuffer(p, CL_MEM_HOST_READ_ONLY, CL_BUFFER_CREATE_TYPE_REGION, &r,
					     &err);

		OK(!s && err == CL_INVALID_VALUE,
		   "HOST_READ_ONLY sub-buffer of a HOST_NO_ACCESS buffer: %d", err);
		s = clCreateSubBuffer(p, 0, CL_BUFFER_CREATE_TYPE_REGION, &r, &err);
		EQ(err, CL_SUCCESS, "sub-buffer inheriting HOST_NO_ACCESS");
		EQ(clEnqueueReadBuffer(q, s, CL_TRUE, 0, 4, back, 0, NULL, NULL), CL_INVALID_OPERATION,
		   "read of a sub-buffer that inherited HOST_NO_ACCESS");
		clReleaseMemObject(s);
		clReleaseMemObject(p);
	}
	clGetDeviceInfo(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof(max_alloc), &max_alloc, NULL);
	OK(!clCreateBuffer(ctx, CL_MEM_READ_WRITE, (size_t)max_alloc + 1, NULL, &err) &&
		   err == CL_INVALID_BUFFER_SIZE,
	   "a buffer above CL_DEVICE_MAX_MEM_ALLOC_SIZE: %d, want CL_INVALID_BUFFER_SIZE", err);
	/* Point 4: CL_MEM_PROPERTIES is the list given, nothing if none was. */
	{
		cl_mem_properties none[] = { 0 }, got[2] = { 7, 7 };
		cl_mem a = clCreateBufferWithProperties(ctx, none, 0, 64, NULL, &err);
		cl_mem b = clCreateBuffer(ctx, 0, 64, NULL, &err);
		size_t sz = 99;

		EQ(clGetMemObjectInfo(a, CL_MEM_PROPERTIES, sizeof(got), got, &sz), CL_SUCCESS,
		   "CL_MEM_PROPERTIES");
		OK(sz == sizeof(cl_mem_properties) && got[0] == 0,
		   "CL_MEM_PROPERTIES of a buffer made with {0}: %zu bytes", sz);
		clGetMemObjectInfo(b, CL_MEM_PROPERTIES, 0, NULL, &sz);
		EQ(sz, 0, "CL_MEM_PROPERTIES of a buffer made without properties");
		clReleaseMemObject(a);
		clReleaseMemObject(b);
	}
	clReleaseKernel(copy);
}

static void CL_CALLBACK native_fn(void *args)
{
	*(int *)args = 1;
}

/* Point 3: properties, queue flags, images, migration. */
static void objects(cl_platform_id plat)
{
	cl_context_properties dup[] = { CL_CONTEXT_PLATFORM, (cl_context_properties)plat,
					CL_CONTEXT_PLATFORM, (cl_context_properties)plat, 0 };
	cl_int err;
	cl_context other;

	OK(!clCreateContext(dup, 1, &dev, NULL, NULL, &err) && err == CL_INVALID_PROPERTY,
	   "a context property given twice: %d, want CL_INVALID_PROPERTY", err);
	OK(!clCreateCommandQueue(ctx, dev, (cl_command_queue_properties)1 << 40, &err) &&
		   err == CL_INVALID_VALUE,
	   "undefined queue property bits: %d, want CL_INVALID_VALUE", err);
	{
		cl_image_format fmt = { CL_RGBA, CL_UNSIGNED_INT8 };
		cl_image_desc d = { .image_type = CL_MEM_OBJECT_IMAGE2D, .image_width = 16,
				    .image_height = 16 };
		unsigned char px[16 * 16 * 4];
		cl_mem im;
		cl_uint col[4] = { 1, 2, 3, 4 };
		size_t org[3] = { 0, 0, 0 }, reg[3] = { 16, 16, 1 };

		memset(px, 9, sizeof(px));
		im = clCreateImage(ctx, CL_MEM_HOST_NO_ACCESS | CL_MEM_COPY_HOST_PTR, &fmt, &d, px,
				   &err);
		EQ(err, CL_SUCCESS, "a HOST_NO_ACCESS image with COPY_HOST_PTR");
		EQ(clEnqueueReadImage(q, im, CL_TRUE, org, reg, 0, 0, px, 0, NULL, NULL),
		   CL_INVALID_OPERATION, "clEnqueueReadImage of a HOST_NO_ACCESS image");
		org[0] = 10;
		EQ(clEnqueueFillImage(q, im, col, org, reg, 0, NULL, NULL), CL_INVALID_VALUE,
		   "clEnqueueFillImage past the image (origin)");
		org[0] = 0;
		reg[2] = 0;
		EQ(clEnqueueFillImage(q, im, col, org, reg, 0, NULL, NULL), CL_INVALID_VALUE,
		   "clEnqueueFillImage with a zero region");
		reg[2] = 1;
		org[2] = 1;
		EQ(clEnqueueFillImage(q, im, col, org, reg, 0, NULL, NULL), CL_INVALID_VALUE,
		   "clEnqueueFillImage of a 2D image at z = 1");
		clReleaseMemObject(im);
	}
	other = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	{
		cl_mem m = clCreateBuffer(other, 0, 64, NULL, &err);

		EQ(clEnqueueMigrateMemObjects(q, 1, &m, 0, 0, NULL, NULL), CL_INVALID_CONTEXT,
		   "clEnqueueMigrateMemObjects of another context's buffer");
		clReleaseMemObject(m);
	}
	clReleaseContext(other);
	/* Native kernels: run when the device says it can, refused as the
	 * specification says when it says it cannot. */
	{
		cl_device_exec_capabilities caps = 0;
		int arg = 0;

		clGetDeviceInfo(dev, CL_DEVICE_EXECUTION_CAPABILITIES, sizeof(caps), &caps, NULL);
		err = clEnqueueNativeKernel(q, native_fn, &arg, sizeof(arg), 0, NULL, NULL, 0, NULL,
					    NULL);
		clFinish(q);
		if (caps & CL_EXEC_NATIVE_KERNEL)
			EQ(err, CL_SUCCESS, "clEnqueueNativeKernel on a device with native kernels");
		else
			EQ(err, CL_INVALID_OPERATION,
			   "clEnqueueNativeKernel on a device without CL_EXEC_NATIVE_KERNEL");
	}
	OK(clGetExtensionFunctionAddressForPlatform(plat, "clIcdGetPlatformIDsKHR") != NULL,
	   "clGetExtensionFunctionAddressForPlatform finds clIcdGetPlatformIDsKHR");
}

/* Point 3: clSetKernelArg and clGetKernelArgInfo. */
static void kernel_args(void)
{
	const char *src = "typedef struct { int a; float b; } pair;"
			  "kernel void k(global int *g, int i, float4 v, local int *l, sampler_t s,"
			  " pair p) { if (g) g[0] = i + (int)v.x + p.a; }";
	cl_kernel k = build(src, "", "k"), ki = build(src, "-cl-kernel-arg-info", "k");
	cl_int i = 3, err;
	cl_float v[4] = { 1, 2, 3, 4 };
	struct {
		cl_int a;
		cl_float b;
	} pr = { 1, 2 };
	cl_sampler smp = clCreateSampler(ctx, CL_FALSE, CL_ADDRESS_NONE, CL_FILTER_NEAREST, &err);
	char name[32];
	size_t sz = 0;

	EQ(clSetKernelArg(k, 1, sizeof(i), NULL), CL_INVALID_ARG_VALUE,
	   "clSetKernelArg: NULL value for a private argument");
	EQ(clSetKernelArg(k, 1, 2, &i), CL_INVALID_ARG_SIZE, "clSetKernelArg: int given 2 bytes");
	EQ(clSetKernelArg(k, 2, 8, v), CL_INVALID_ARG_SIZE, "clSetKernelArg: float4 given 8 bytes");
	EQ(clSetKernelArg(k, 2, sizeof(v), v), CL_SUCCESS, "clSetKernelArg: float4");
	EQ(clSetKernelArg(k, 3, 16, &i), CL_INVALID_ARG_VALUE,
	   "clSetKernelArg: a value for a local argument");
	EQ(clSetKernelArg(k, 3, 0, NULL), CL_INVALID_ARG_SIZE,
	   "clSetKernelArg: size 0 for a local argument");
	EQ(clSetKernelArg(k, 4, 4, &smp), CL_INVALID_ARG_SIZE,
	   "clSetKernelArg: a sampler of the wrong size");
	EQ(clSetKernelArg(k, 5, sizeof(pr), &pr), CL_SUCCESS, "clSetKernelArg: a structure");
	EQ(clSetKernelArg(k, 9, 4, &i), CL_INVALID_ARG_INDEX, "clSetKernelArg: no such argument");
	EQ(clGetKernelArgInfo(k, 0, CL_KERNEL_ARG_NAME, sizeof(name), name, &sz),
	   CL_KERNEL_ARG_INFO_NOT_AVAILABLE, "argument info without -cl-kernel-arg-info");
	EQ(clGetKernelArgInfo(ki, 1, CL_KERNEL_ARG_NAME, sizeof(name), name, &sz), CL_SUCCESS,
	   "argument info with -cl-kernel-arg-info");
	OK(strcmp(name, "i") == 0, "argument 1 is named \"%s\"", name);
	clReleaseKernel(k);
	clReleaseKernel(ki);
	clReleaseSampler(smp);
}

/* Point 3 and 4: clEnqueueNDRangeKernel's work-group rules. */
static void ndrange(void)
{
	cl_kernel k = build("kernel void k(global int *g) { g[get_global_id(0)] = 5; }", "", "k");
	cl_kernel r = build("kernel __attribute__((reqd_work_group_size(4, 1, 1)))"
			    " void r(global int *g) { g[get_global_id(0)] = 6; }",
			    "", "r");
	cl_kernel nu = build("kernel void k(global int *g) { g[get_global_id(0)] = 5; }",
			     "-cl-std=CL2.0", "k");
	cl_mem b = clCreateBuffer(ctx, 0, 4096, NULL, NULL);
	size_t g = 10, l = 4, l8 = 8, g16 = 16, zero = 0, big[3], wg = 0;
	cl_bool nonuni = CL_FALSE;
	char ver[1024] = "";
	cl_event ev = NULL;
	cl_int st = -1, err;

	EQ(clEnqueueNDRangeKernel(q, k, 1, NULL, &g16, NULL, 0, NULL, NULL), CL_INVALID_KERNEL_ARGS,
	   "clEnqueueNDRangeKernel with an argument not set");
	clSetKernelArg(k, 0, sizeof(b), &b);
	clSetKernelArg(r, 0, sizeof(b), &b);
	clSetKernelArg(nu, 0, sizeof(b), &b);
	EQ(clEnqueueNDRangeKernel(q, k, 1, NULL, &g, &l, 0, NULL, NULL), CL_INVALID_WORK_GROUP_SIZE,
	   "non-uniform work-groups in an OpenCL C 1.2 program");
	clGetDeviceInfo(dev, CL_DEVICE_VERSION, sizeof(ver) - 1, ver, NULL);
	clGetDeviceInfo(dev, CL_DEVICE_NON_UNIFORM_WORK_GROUP_SUPPORT, sizeof(nonuni), &nonuni, NULL);
	err = clEnqueueNDRangeKernel(q, nu, 1, NULL, &g, &l, 0, NULL, NULL);
	EQ(err, nonuni ? CL_SUCCESS : CL_INVALID_WORK_GROUP_SIZE,
	   "non-uniform work-groups in an OpenCL C 2.0 program");
	EQ(clEnqueueNDRangeKernel(q, r, 1, NULL, &g16, &l8, 0, NULL, NULL), CL_INVALID_WORK_GROUP_SIZE,
	   "a local size other than reqd_work_group_size");
	EQ(clEnqueueNDRangeKernel(q, r, 1, NULL, &g16, NULL, 0, NULL, NULL), CL_INVALID_WORK_GROUP_SIZE,
	   "no local size for a kernel with reqd_work_group_size");
	EQ(clEnqueueNDRangeKernel(q, r, 1, NULL, &g16, &l, 0, NULL, NULL), CL_SUCCESS,
	   "the required local size");
	clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof(big), big, NULL);
	big[0] += 1;
	g = big[0];
	/* Above the work-group size too on most devices: either error is
	 * the specification's. */
	err = clEnqueueNDRangeKernel(q, k, 1, NULL, &g, big, 0, NULL, NULL);
	OK(err == CL_INVALID_WORK_ITEM_SIZE || err == CL_INVALID_WORK_GROUP_SIZE,
	   "a local size above CL_DEVICE_MAX_WORK_ITEM_SIZES: %d", err);
	clGetKernelWorkGroupInfo(k, dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof(wg), &wg, NULL);
	{
		size_t gl[2] = { wg * 2, 2 }, lo[2] = { wg, 2 };

		if (lo[0] <= big[0] - 1)
			EQ(clEnqueueNDRangeKernel(q, k, 2, NULL, gl, lo, 0, NULL, NULL),
			   CL_INVALID_WORK_GROUP_SIZE, "a work-group above CL_KERNEL_WORK_GROUP_SIZE");
	}
	/* A global size of 0 is valid on OpenCL 2.1 and later devices: the
	 * command runs nothing but completes. */
	err = clEnqueueNDRangeKernel(q, k, 1, NULL, &zero, NULL, 0, NULL, &ev);
	if (strncmp(ver, "OpenCL 1.", 9) == 0 || strncmp(ver, "OpenCL 2.0", 10) == 0) {
		EQ(err, CL_INVALID_GLOBAL_WORK_SIZE, "a global size of 0 before OpenCL 2.1");
	} else {
		EQ(err, CL_SUCCESS, "a global size of 0 on an OpenCL 2.1+ device");
		clWaitForEvents(1, &ev);
		clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st, NULL);
		EQ(st, CL_COMPLETE, "its event completes");
		clReleaseEvent(ev);
	}
	EQ(clFinish(q), CL_SUCCESS, "the queue drains");
	clReleaseMemObject(b);
	clReleaseKernel(k);
	clReleaseKernel(r);
	clReleaseKernel(nu);
}

int main(void)
{
	cl_platform_id plat;
	cl_int err;

	t_first(&plat, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	q = clCreateCommandQueue(ctx, dev, 0, &err);
	if (!q) {
		printf("Bail out! no queue: %d\n", err);
		return 1;
	}
	mem_flags();
	objects(plat);
	kernel_args();
	ndrange();
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return t_done();
}
