/* SPDX-License-Identifier: Apache-2.0 */
/* Waits from several threads of one process through gpupass PV: a thread
 * blocked in clWaitForEvents, clFinish or a blocking read never stops the
 * others, and a user event set by another thread releases it. An alarm
 * turns a deadlock into a failure. */
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "pvtest.h"

enum { N = 4096 };

static cl_context ctx;
static cl_command_queue q, q2;
static cl_event uev;
static cl_mem buf;
static int data[N];
static volatile int finished;
static cl_int result;

static void *wait_thread(void *arg)
{
	result = clWaitForEvents(1, &uev);
	__atomic_store_n(&finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *read_thread(void *arg)
{
	cl_event *dep = arg;

	result = clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof(data), data, dep ? 1 : 0, dep, NULL);
	__atomic_store_n(&finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *finish_thread(void *arg)
{
	result = clFinish(q);
	__atomic_store_n(&finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void on_alarm(int sig)
{
	static const char msg[] = "Bail out! deadlock: a wait did not end within 60 s\n";

	if (write(1, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(1);
}

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* While another thread waits: calls from this one still work, quickly. */
static void others_go_on(const char *what)
{
	cl_uint units = 0;
	int one = 1, got = 0;
	cl_mem b2;
	cl_int err;

	EQ(clGetDeviceInfo(NULL, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(units), &units, NULL),
	   CL_INVALID_DEVICE, "argument check while waiting");
	b2 = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof(int), NULL, &err);
	EQ(err, CL_SUCCESS, "create a buffer while another thread waits");
	EQ(clEnqueueWriteBuffer(q2, b2, CL_TRUE, 0, sizeof(int), &one, 0, NULL, NULL), CL_SUCCESS,
	   "blocking write on another queue");
	EQ(clEnqueueReadBuffer(q2, b2, CL_TRUE, 0, sizeof(int), &got, 0, NULL, NULL), CL_SUCCESS,
	   "blocking read on another queue");
	EQ(got, 1, what);
	EQ(clFinish(q2), CL_SUCCESS, "clFinish of another queue");
	clReleaseMemObject(b2);
	EQ(__atomic_load_n(&finished, __ATOMIC_ACQUIRE), 0, "the waiting thread is still waiting");
}

int main(void)
{
	cl_platform_id plat;
	cl_device_id dev;
	cl_int err;
	pthread_t t;
	cl_event wev;
	static int fresh[N];
	int bad;

	signal(SIGALRM, on_alarm);
	alarm(60);
	t_first(&plat, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	q = clCreateCommandQueue(ctx, dev, 0, &err);
	q2 = clCreateCommandQueue(ctx, dev, 0, &err);
	buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof(data), NULL, &err);
	for (int i = 0; i < N; i++)
		fresh[i] = i * 3 + 1;

	/* 1: clWaitForEvents on a user event another thread sets */
	uev = clCreateUserEvent(ctx, &err);
	finished = 0;
	pthread_create(&t, NULL, wait_thread, NULL);
	pause_ms(50);
	others_go_on("others' calls work during clWaitForEvents");
	EQ(clSetUserEventStatus(uev, CL_COMPLETE), CL_SUCCESS, "set the user event from another thread");
	pthread_join(t, NULL);
	EQ(result, CL_SUCCESS, "clWaitForEvents returned once the event was set");
	clReleaseEvent(uev);

	/* 2: a blocking read whose wait list depends on a user event */
	uev = clCreateUserEvent(ctx, &err);
	EQ(clEnqueueWriteBuffer(q, buf, CL_FALSE, 0, sizeof(fresh), fresh, 1, &uev, &wev), CL_SUCCESS,
	   "write waiting for the user event");
	memset(data, 0, sizeof(data));
	finished = 0;
	pthread_create(&t, NULL, read_thread, &wev);
	pause_ms(50);
	others_go_on("others' calls work during a blocking read");
	EQ(clSetUserEventStatus(uev, CL_COMPLETE), CL_SUCCESS, "set the user event");
	pthread_join(t, NULL);
	EQ(result, CL_SUCCESS, "the blocking read completed");
	bad = memcmp(data, fresh, sizeof(data)) != 0;
	EQ(bad, 0, "and read the data written after the event");
	clReleaseEvent(wev);
	clReleaseEvent(uev);

	/* 3: a blocking read behind queued work that waits (no wait list) */
	uev = clCreateUserEvent(ctx, &err);
	for (int i = 0; i < N; i++)
		fresh[i] = -i;
	clEnqueueWriteBuffer(q, buf, CL_FALSE, 0, sizeof(fresh), fresh, 1, &uev, NULL);
	finished = 0;
	pthread_create(&t, NULL, read_thread, NULL);
	pause_ms(50);
	others_go_on("others' calls work during a read behind waiting work");
	clSetUserEventStatus(uev, CL_COMPLETE);
	pthread_join(t, NULL);
	EQ(result, CL_SUCCESS, "the in-order read completed");
	EQ(memcmp(data, fresh, sizeof(data)) != 0, 0, "with the data of the command before it");
	clReleaseEvent(uev);

	/* 4: clFinish of a queue whose work waits for a user event */
	uev = clCreateUserEvent(ctx, &err);
	clEnqueueMarkerWithWaitList(q, 1, &uev, NULL);
	finished = 0;
	pthread_create(&t, NULL, finish_thread, NULL);
	pause_ms(50);
	others_go_on("others' calls work during clFinish");
	clSetUserEventStatus(uev, CL_COMPLETE);
	pthread_join(t, NULL);
	EQ(result, CL_SUCCESS, "clFinish returned");
	clReleaseEvent(uev);

	/* 5: a failed user event fails the wait, with the spec's code */
	uev = clCreateUserEvent(ctx, &err);
	finished = 0;
	pthread_create(&t, NULL, wait_thread, NULL);
	pause_ms(20);
	clSetUserEventStatus(uev, -1234);
	pthread_join(t, NULL);
	EQ(result, CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, "wait on a failed user event");
	clReleaseEvent(uev);

	clReleaseMemObject(buf);
	clReleaseCommandQueue(q);
	clReleaseCommandQueue(q2);
	clReleaseContext(ctx);
	return t_done();
}
