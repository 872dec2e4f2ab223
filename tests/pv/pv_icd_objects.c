/* SPDX-License-Identifier: Apache-2.0 */
/* Object lifetimes through gpupass PV, kind by kind: retain/release keep
 * the counts the application sees, a handle of another kind is refused
 * with that entry point's CL_INVALID_*, destructor callbacks of contexts
 * and memory objects run once, newest first, after the last release
 * (OpenCL 3.0, 5.4.1 / 5.14), and a sub-buffer keeps its parent alive. */
#include "pvtest.h"

static char order[16];
static int norder;

static void CL_CALLBACK on_mem(cl_mem m, void *data)
{
	(void)m;
	if (norder < (int)sizeof(order) - 1)
		order[norder++] = *(const char *)data;
}

static void CL_CALLBACK on_ctx(cl_context c, void *data)
{
	(void)c;
	if (norder < (int)sizeof(order) - 1)
		order[norder++] = *(const char *)data;
}

static cl_uint refs_mem(cl_mem m)
{
	cl_uint n = 0;

	clGetMemObjectInfo(m, CL_MEM_REFERENCE_COUNT, sizeof(n), &n, NULL);
	return n;
}

int main(void)
{
	static const char *src = "__kernel void k(__global int *a) { a[0] = 1; }";
	static char tag[] = "abcdefgh";
	cl_platform_id p;
	cl_device_id dev;
	cl_context ctx;
	cl_command_queue q;
	cl_program prog;
	cl_kernel kn;
	cl_mem m, sub;
	cl_sampler smp;
	cl_event ev;
	cl_buffer_region reg = { 0, 256 };
	cl_uint n = 0;
	cl_int err;

	t_first(&p, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateContext");
	q = clCreateCommandQueueWithProperties(ctx, dev, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateCommandQueueWithProperties");
	prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	EQ(clBuildProgram(prog, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "clBuildProgram");
	kn = clCreateKernel(prog, "k", &err);
	EQ(err, CL_SUCCESS, "clCreateKernel");
	m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, 4096, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateBuffer");
	smp = clCreateSampler(ctx, CL_FALSE, CL_ADDRESS_CLAMP, CL_FILTER_NEAREST, &err);
	ev = clCreateUserEvent(ctx, &err);
	EQ(err, CL_SUCCESS, "clCreateUserEvent");

	/* Counts: one retain, one release, as the application sees them. */
	EQ(clRetainMemObject(m), CL_SUCCESS, "clRetainMemObject");
	EQ(refs_mem(m), 2, "memory object count after a retain");
	EQ(clReleaseMemObject(m), CL_SUCCESS, "clReleaseMemObject");
	EQ(refs_mem(m), 1, "memory object count after a release");
	EQ(clRetainContext(ctx), CL_SUCCESS, "clRetainContext");
	clGetContextInfo(ctx, CL_CONTEXT_REFERENCE_COUNT, sizeof(n), &n, NULL);
	EQ(n, 7, "context count: ours, the retain, the queue, program, buffer, sampler and event");
	EQ(clReleaseContext(ctx), CL_SUCCESS, "clReleaseContext");
	EQ(clRetainKernel(kn), CL_SUCCESS, "clRetainKernel");
	clGetKernelInfo(kn, CL_KERNEL_REFERENCE_COUNT, sizeof(n), &n, NULL);
	EQ(n, 2, "kernel count after a retain");
	EQ(clReleaseKernel(kn), CL_SUCCESS, "clReleaseKernel");
	EQ(clRetainEvent(ev), CL_SUCCESS, "clRetainEvent");
	clGetEventInfo(ev, CL_EVENT_REFERENCE_COUNT, sizeof(n), &n, NULL);
	EQ(n, 2, "event count after a retain");
	EQ(clReleaseEvent(ev), CL_SUCCESS, "clReleaseEvent");
	EQ(clRetainCommandQueue(q), CL_SUCCESS, "clRetainCommandQueue");
	EQ(clReleaseCommandQueue(q), CL_SUCCESS, "clReleaseCommandQueue");
	EQ(clRetainProgram(prog), CL_SUCCESS, "clRetainProgram");
	EQ(clReleaseProgram(prog), CL_SUCCESS, "clReleaseProgram");
	EQ(clRetainSampler(smp), CL_SUCCESS, "clRetainSampler");
	EQ(clReleaseSampler(smp), CL_SUCCESS, "clReleaseSampler");

	/* A handle of another kind: each entry point's own error. The
	 * loader dispatches through the object, so our ICD sees it. */
	EQ(clRetainContext((cl_context)m), CL_INVALID_CONTEXT, "clRetainContext(a buffer)");
	EQ(clReleaseCommandQueue((cl_command_queue)m), CL_INVALID_COMMAND_QUEUE,
	   "clReleaseCommandQueue(a buffer)");
	EQ(clRetainMemObject((cl_mem)kn), CL_INVALID_MEM_OBJECT, "clRetainMemObject(a kernel)");
	EQ(clReleaseProgram((cl_program)kn), CL_INVALID_PROGRAM, "clReleaseProgram(a kernel)");
	EQ(clRetainKernel((cl_kernel)prog), CL_INVALID_KERNEL, "clRetainKernel(a program)");
	EQ(clReleaseEvent((cl_event)q), CL_INVALID_EVENT, "clReleaseEvent(a queue)");
	EQ(clRetainSampler((cl_sampler)ev), CL_INVALID_SAMPLER, "clRetainSampler(an event)");
	EQ(clRetainDevice((cl_device_id)ctx), CL_INVALID_DEVICE, "clRetainDevice(a context)");
	EQ(refs_mem(m), 1, "the buffer's count is untouched by the refused calls");

	/* Destructor callbacks: newest first, once, at the last release; a
	 * sub-buffer holds its parent. */
	sub = clCreateSubBuffer(m, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &reg, &err);
	EQ(err, CL_SUCCESS, "clCreateSubBuffer");
	EQ(clSetMemObjectDestructorCallback(m, on_mem, &tag[0]), CL_SUCCESS,
	   "first destructor callback");
	EQ(clSetMemObjectDestructorCallback(m, on_mem, &tag[1]), CL_SUCCESS,
	   "second destructor callback");
	EQ(clSetMemObjectDestructorCallback(m, NULL, NULL), CL_INVALID_VALUE,
	   "a NULL destructor callback");
	EQ(clSetMemObjectDestructorCallback(sub, on_mem, &tag[2]), CL_SUCCESS,
	   "sub-buffer destructor callback");
	EQ(clSetContextDestructorCallback(ctx, on_ctx, &tag[3]), CL_SUCCESS,
	   "first context destructor callback");
	EQ(clSetContextDestructorCallback(ctx, on_ctx, &tag[4]), CL_SUCCESS,
	   "second context destructor callback");
	EQ(clReleaseMemObject(m), CL_SUCCESS, "release the parent buffer");
	EQ(norder, 0, "no callback while the sub-buffer holds the parent");
	EQ(clReleaseMemObject(sub), CL_SUCCESS, "release the sub-buffer");
	order[norder] = 0;
	OK(strcmp(order, "cba") == 0, "memory callbacks: sub-buffer's, then the parent's newest first "
	   "(got \"%s\", want \"cba\")", order);

	clReleaseSampler(smp);
	clReleaseEvent(ev);
	clReleaseKernel(kn);
	clReleaseProgram(prog);
	clReleaseCommandQueue(q);
	EQ(norder, 3, "no context callback while objects hold the context");
	EQ(clReleaseContext(ctx), CL_SUCCESS, "release the context");
	order[norder] = 0;
	OK(strcmp(order, "cbaed") == 0, "context callbacks newest first after the last release "
	   "(got \"%s\", want \"cbaed\")", order);
	return t_done();
}
