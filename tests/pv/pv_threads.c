/* SPDX-License-Identifier: Apache-2.0 */
/* Several threads of one guest, each with its own queue and buffers, use
 * one context at once through gpupass PV; every result is checked. */
#include <pthread.h>

#include "pvtest.h"

#define THREADS 4
#define ROUNDS 100
#define N 4096

static cl_context ctx;
static cl_device_id dev;
static cl_program prog;

struct job {
	int id;
	int bad;
	cl_int err;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	cl_command_queue q = clCreateCommandQueueWithProperties(ctx, dev, NULL, &j->err);
	cl_kernel k = clCreateKernel(prog, "addk", &j->err);
	cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, N * sizeof(int), NULL, &j->err);
	int host[N];
	size_t g = N;

	for (int r = 0; r < ROUNDS && !j->bad; r++) {
		int add = j->id * 1000 + r;
		cl_event ev;

		for (int i = 0; i < N; i++)
			host[i] = i;
		clEnqueueWriteBuffer(q, m, CL_FALSE, 0, sizeof(host), host, 0, NULL, NULL);
		clSetKernelArg(k, 0, sizeof(m), &m);
		clSetKernelArg(k, 1, sizeof(add), &add);
		clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, &ev);
		clWaitForEvents(1, &ev);
		clReleaseEvent(ev);
		j->err = clEnqueueReadBuffer(q, m, CL_TRUE, 0, sizeof(host), host, 0, NULL, NULL);
		for (int i = 0; i < N; i++)
			j->bad += host[i] != i + add;
	}
	clReleaseMemObject(m);
	clReleaseKernel(k);
	clReleaseCommandQueue(q);
	return NULL;
}

int main(void)
{
	static const char *src = "__kernel void addk(__global int *a, int k) { a[get_global_id(0)] += k; }";
	struct job jobs[THREADS];
	pthread_t t[THREADS];
	cl_platform_id p;
	cl_int err;

	t_first(&p, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	EQ(clBuildProgram(prog, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "build");
	for (int i = 0; i < THREADS; i++) {
		jobs[i] = (struct job){ .id = i };
		pthread_create(&t[i], NULL, worker, &jobs[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		EQ(jobs[i].err, CL_SUCCESS, "thread's last call");
		EQ(jobs[i].bad, 0, "thread's wrong results");
	}
	clReleaseProgram(prog);
	clReleaseContext(ctx);
	return t_done();
}
