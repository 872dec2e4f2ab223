/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking writes through gpupass PV keep the ordering a blocking write
 * promises (OpenCL 3.0, 5.2.2: the data is in the buffer when the call
 * returns) while the server runs them without a round trip each: what is
 * enqueued next on another queue sees the data, the last of many writes
 * wins (in-order and out-of-order queues), runs beyond the server's
 * private-copy bound stay right, and a blocking write behind a command
 * that waits for a user event returns once another thread sets it. */
#include <pthread.h>
#include <time.h>

#include "pvtest.h"

#define SMALL 4096
#define MID (64 * 1024)

static cl_context ctx;
static cl_device_id dev;

static void CL_CALLBACK nop(const char *e, const void *p, size_t n, void *u)
{
	(void)e, (void)p, (void)n, (void)u;
}

static cl_command_queue queue(cl_command_queue_properties props)
{
	cl_queue_properties qp[] = { CL_QUEUE_PROPERTIES, props, 0 };
	cl_int err;
	cl_command_queue q = clCreateCommandQueueWithProperties(ctx, dev, qp, &err);

	if (!q) {
		printf("Bail out! clCreateCommandQueueWithProperties: %d\n", err);
		exit(1);
	}
	return q;
}

struct setter {
	cl_event ev;
	int delay_ms;
};

static void *set_later(void *arg)
{
	struct setter *s = arg;
	struct timespec d = { 0, s->delay_ms * 1000000L };

	nanosleep(&d, NULL);
	clSetUserEventStatus(s->ev, CL_COMPLETE);
	return NULL;
}

int main(void)
{
	static const char *src = "__kernel void fill(__global int *a, int v) { a[get_global_id(0)] = v; }";
	static int in[MID / 4], out[MID / 4];
	cl_platform_id p;
	cl_command_queue q1, q2, qo;
	cl_mem a, b, big;
	cl_int err;
	int bad = 0;

	t_first(&p, &dev);
	ctx = clCreateContext(NULL, 1, &dev, nop, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateContext");
	q1 = queue(0);
	q2 = queue(0);
	qo = queue(CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE);
	a = clCreateBuffer(ctx, CL_MEM_READ_WRITE, SMALL, NULL, &err);
	b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, SMALL, NULL, &err);
	big = clCreateBuffer(ctx, CL_MEM_READ_WRITE, MID, NULL, &err);
	EQ(err, CL_SUCCESS, "buffers");

	/* 1. written on q1, copied on q2 at once, read on q2: every round
	 * sees its own data */
	for (int r = 0; r < 200 && !bad; r++) {
		for (int i = 0; i < SMALL / 4; i++)
			in[i] = r * 100000 + i;
		bad |= clEnqueueWriteBuffer(q1, a, CL_TRUE, 0, SMALL, in, 0, NULL, NULL) != CL_SUCCESS;
		bad |= clEnqueueCopyBuffer(q2, a, b, 0, 0, SMALL, 0, NULL, NULL) != CL_SUCCESS;
		bad |= clEnqueueReadBuffer(q2, b, CL_TRUE, 0, SMALL, out, 0, NULL, NULL) != CL_SUCCESS;
		bad |= memcmp(in, out, SMALL) != 0;
		if (bad)
			printf("# round %d: out[0] = %d, want %d\n", r, out[0], in[0]);
	}
	OK(!bad, "200 rounds: blocking write on one queue, copy and read on another: data right");

	/* 2. many writes to the same place (more than the server's 8 MiB of
	 * private copies), then one read on the same queue: the last wins */
	bad = 0;
	for (int r = 0; r < 300; r++) {
		for (int i = 0; i < MID / 4; i += 1024)
			in[i] = r;
		in[MID / 4 - 1] = -r;
		if (clEnqueueWriteBuffer(q1, big, CL_TRUE, 0, MID, in, 0, NULL, NULL) != CL_SUCCESS)
			bad = 1;
	}
	memset(out, 0, sizeof(out));
	EQ(clEnqueueReadBuffer(q1, big, CL_TRUE, 0, MID, out, 0, NULL, NULL), CL_SUCCESS, "read back");
	OK(!bad && memcmp(in, out, MID) == 0, "300 writes of 64 KiB (19 MiB): the last one's data (%d, %d)",
	   out[0], out[MID / 4 - 1]);

	/* 3. an out-of-order queue: blocking writes still happen one after
	 * the other */
	bad = 0;
	for (int r = 1; r <= 100; r++) {
		in[0] = r;
		if (clEnqueueWriteBuffer(qo, a, CL_TRUE, 0, 4, in, 0, NULL, NULL) != CL_SUCCESS)
			bad = 1;
	}
	out[0] = 0;
	EQ(clEnqueueReadBuffer(qo, a, CL_TRUE, 0, 4, out, 0, NULL, NULL), CL_SUCCESS, "read on the ooo queue");
	OK(!bad && out[0] == 100, "out-of-order queue: the last of 100 blocking writes (%d)", out[0]);

	/* 4. a kernel that waits for a user event, then a blocking write on
	 * the same queue: it returns after another thread sets the event,
	 * and its data follows the kernel's */
	{
		cl_program prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
		cl_kernel k;
		cl_event u = clCreateUserEvent(ctx, &err);
		struct setter st = { u, 150 };
		pthread_t th;
		size_t g = SMALL / 4;
		int v = 7;
		struct timespec t0, t1;
		double ms;

		EQ(clBuildProgram(prog, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "clBuildProgram");
		k = clCreateKernel(prog, "fill", &err);
		clSetKernelArg(k, 0, sizeof(a), &a);
		clSetKernelArg(k, 1, sizeof(v), &v);
		EQ(clEnqueueNDRangeKernel(q1, k, 1, NULL, &g, NULL, 1, &u, NULL), CL_SUCCESS,
		   "kernel waiting for a user event");
		for (int i = 0; i < SMALL / 4; i++)
			in[i] = 1000 + i;
		pthread_create(&th, NULL, set_later, &st);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		EQ(clEnqueueWriteBuffer(q1, a, CL_TRUE, 0, SMALL / 2, in, 0, NULL, NULL), CL_SUCCESS,
		   "blocking write behind it");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_join(th, NULL);
		ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		OK(ms >= 100, "it returned after the event was set (%.0f ms, set at 150 ms)", ms);
		EQ(clEnqueueReadBuffer(q1, a, CL_TRUE, 0, SMALL, out, 0, NULL, NULL), CL_SUCCESS, "read");
		OK(out[0] == 1000 && out[SMALL / 8 - 1] == 1000 + SMALL / 8 - 1 && out[SMALL / 8] == 7 &&
		   out[SMALL / 4 - 1] == 7, "the write's half over the kernel's fill (%d %d %d)", out[0],
		   out[SMALL / 8], out[SMALL / 4 - 1]);
		clReleaseEvent(u);
		clReleaseKernel(k);
		clReleaseProgram(prog);
	}
	clReleaseMemObject(a);
	clReleaseMemObject(b);
	clReleaseMemObject(big);
	clReleaseCommandQueue(q1);
	clReleaseCommandQueue(q2);
	clReleaseCommandQueue(qo);
	clReleaseContext(ctx);
	return t_done();
}
