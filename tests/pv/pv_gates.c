/* SPDX-License-Identifier: Apache-2.0 */
/* Work gated on user events that other threads complete (issue 12): N
 * threads each enqueue a chain (write, kernel, non-blocking read) behind
 * a user event owned by the next thread; completion callbacks enqueue
 * more work and set further user events; several threads wait on the
 * same events at once. Every result is checked, every call bounded by
 * the test's alarm: a hang fails. Passes natively too; pv-wait runs it
 * under ASan as well. */
#include <pthread.h>
#include <unistd.h>

#include "pvtest.h"

#define THREADS 4
#define ROUNDS 20
#define N 1024

static cl_context ctx;
static cl_device_id dev;
static cl_program prog;
static cl_event gate[THREADS]; /* gate[i] is set by thread (i + 1) % THREADS */
static pthread_barrier_t made, done;

struct job {
	int id;
	int bad;
	int cb_ran;
	cl_command_queue q;
	cl_kernel k;
	cl_mem m;
	cl_event follow; /* a user event the callback sets */
	cl_int cb_err;
};

/* Runs on a completion callback thread: enqueues more work on the
 * finished chain's queue (allowed: OpenCL 3.0, 5.11, callbacks may call
 * the API, not wait), then opens the follow-up gate. */
static void CL_CALLBACK on_done(cl_event e, cl_int st, void *data)
{
	struct job *j = data;
	size_t g = N;
	cl_int k = 1000;

	if (st != CL_COMPLETE) {
		j->cb_err = st;
	} else {
		j->cb_err = clSetKernelArg(j->k, 1, sizeof(k), &k);
		if (j->cb_err == CL_SUCCESS)
			j->cb_err = clEnqueueNDRangeKernel(j->q, j->k, 1, NULL, &g, NULL, 0, NULL, NULL);
		if (j->cb_err == CL_SUCCESS)
			j->cb_err = clFlush(j->q);
	}
	__atomic_store_n(&j->cb_ran, 1, __ATOMIC_RELEASE);
	clSetUserEventStatus(j->follow, CL_COMPLETE);
}

static void *worker(void *arg)
{
	struct job *j = arg;
	int host[N], out[N];
	cl_int err, add;
	size_t g = N;

	for (int r = 0; r < ROUNDS && !j->bad; r++) {
		cl_event w, kev, rev;

		/* Each round's gates are made by their owners, then used. */
		gate[j->id] = clCreateUserEvent(ctx, &err);
		pthread_barrier_wait(&made);
		for (int i = 0; i < N; i++)
			host[i] = i + r;
		memset(out, 0, sizeof(out));
		add = j->id + 1;
		clEnqueueWriteBuffer(j->q, j->m, CL_FALSE, 0, sizeof(host), host, 1, &gate[j->id], &w);
		clSetKernelArg(j->k, 0, sizeof(j->m), &j->m);
		clSetKernelArg(j->k, 1, sizeof(add), &add);
		clEnqueueNDRangeKernel(j->q, j->k, 1, NULL, &g, NULL, 1, &w, &kev);
		err = clEnqueueReadBuffer(j->q, j->m, CL_FALSE, 0, sizeof(out), out, 1, &kev, &rev);
		if (err != CL_SUCCESS)
			j->bad++;
		/* Open the previous thread's gate: its chain may run now. */
		clSetUserEventStatus(gate[(j->id + THREADS - 1) % THREADS], CL_COMPLETE);
		err = clWaitForEvents(1, &rev);
		for (int i = 0; i < N && err == CL_SUCCESS; i++)
			if (out[i] != i + r + j->id + 1) {
				j->bad++;
				break;
			}
		if (err != CL_SUCCESS)
			j->bad++;
		clReleaseEvent(w);
		clReleaseEvent(kev);
		clReleaseEvent(rev);
		/* Everyone waits for every gate, from every thread at once. */
		if (clWaitForEvents(THREADS, gate) != CL_SUCCESS)
			j->bad++;
		pthread_barrier_wait(&done);
		clReleaseEvent(gate[j->id]);
		pthread_barrier_wait(&done);
	}
	return NULL;
}

static void gated_chains(void)
{
	struct job jobs[THREADS];
	pthread_t th[THREADS];
	int bad = 0;

	for (int i = 0; i < THREADS; i++) {
		jobs[i] = (struct job){ .id = i };
		jobs[i].q = clCreateCommandQueue(ctx, dev, 0, NULL);
		jobs[i].k = clCreateKernel(prog, "addk", NULL);
		jobs[i].m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, N * sizeof(int), NULL, NULL);
		pthread_create(&th[i], NULL, worker, &jobs[i]);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		bad += jobs[i].bad;
		clReleaseMemObject(jobs[i].m);
		clReleaseKernel(jobs[i].k);
		clReleaseCommandQueue(jobs[i].q);
	}
	EQ(bad, 0, "4 threads x 20 rounds of chains gated on the next thread's user event");
}

/* Callbacks that enqueue more work and open the next gate. */
static void callback_chains(void)
{
	struct job j = { 0 };
	cl_int err, add = 5;
	int host[N];
	size_t g = N;
	cl_event kev;

	j.q = clCreateCommandQueue(ctx, dev, 0, NULL);
	j.k = clCreateKernel(prog, "addk", NULL);
	j.m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, N * sizeof(int), NULL, NULL);
	j.follow = clCreateUserEvent(ctx, &err);
	for (int i = 0; i < N; i++)
		host[i] = i;
	clEnqueueWriteBuffer(j.q, j.m, CL_TRUE, 0, sizeof(host), host, 0, NULL, NULL);
	clSetKernelArg(j.k, 0, sizeof(j.m), &j.m);
	clSetKernelArg(j.k, 1, sizeof(add), &add);
	clEnqueueNDRangeKernel(j.q, j.k, 1, NULL, &g, NULL, 0, NULL, &kev);
	EQ(clSetEventCallback(kev, CL_COMPLETE, on_done, &j), CL_SUCCESS, "clSetEventCallback");
	/* The follow-up gate opens from the callback; a read behind it. */
	err = clWaitForEvents(1, &j.follow);
	EQ(err, CL_SUCCESS, "the callback opened the follow-up gate");
	OK(__atomic_load_n(&j.cb_ran, __ATOMIC_ACQUIRE) && j.cb_err == CL_SUCCESS,
	   "the callback enqueued a kernel (%d)", j.cb_err);
	clEnqueueReadBuffer(j.q, j.m, CL_TRUE, 0, sizeof(host), host, 1, &j.follow, NULL);
	{
		int bad = 0;

		for (int i = 0; i < N; i++)
			bad += host[i] != i + 5 + 1000;
		EQ(bad, 0, "the callback's kernel ran after the first one, before the read");
	}
	clReleaseEvent(kev);
	clReleaseEvent(j.follow);
	clReleaseMemObject(j.m);
	clReleaseKernel(j.k);
	clReleaseCommandQueue(j.q);
}

int main(void)
{
	cl_platform_id plat;
	const char *src = "kernel void addk(global int *m, int k) { m[get_global_id(0)] += k; }";
	cl_int err;

	alarm(120); /* a hang is a failure, not a stuck CI job */
	t_first(&plat, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	if (clBuildProgram(prog, 1, &dev, "", NULL, NULL) != CL_SUCCESS) {
		printf("Bail out! build failed\n");
		return 1;
	}
	pthread_barrier_init(&made, NULL, THREADS);
	pthread_barrier_init(&done, NULL, THREADS);
	callback_chains();
	gated_chains();
	clReleaseProgram(prog);
	clReleaseContext(ctx);
	return t_done();
}
