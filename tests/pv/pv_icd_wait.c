/* SPDX-License-Identifier: Apache-2.0 */
/* One thread of a guest waits in clWaitForEvents (a user event) or in
 * clFinish (a queue held by a user event) while another thread makes
 * 1000 clGetDeviceInfo round trips (100 µs apart) through gpupass PV: the
 * waiting thread must not hold the connection, so the second thread's
 * median latency stays near the figure of the same calls with nobody
 * waiting (before the fix: about 4 ms, the waiter's poll bound). Prints
 * the measured numbers; an alarm turns a hang into a failure. */
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "pvtest.h"

enum { CALLS = 1000 };
/* Generous: a round trip is a few to tens of µs here; a poller that kept
 * the connection for its whole bound (up to 4 ms) made it milliseconds. */
#define MEDIAN_BOUND_US 1000.0
#define GAP_US 100

static cl_context ctx;
static cl_device_id dev;
static cl_command_queue q;
static cl_event uev;
static cl_int result = 1;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Times CALLS remote clGetDeviceInfo calls; returns the median in µs and
 * the 90th percentile in @p90. */
static double round_trips(double *p90, int *bad)
{
	static double t[CALLS];
	cl_uint cu;

	for (int i = 0; i < CALLS; i++) {
		double t0 = now_us();

		cu = 0;
		if (clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(cu), &cu, NULL) !=
			    CL_SUCCESS ||
		    cu == 0)
			(*bad)++;
		t[i] = now_us() - t0;
		/* As an application's thread would: some work between calls,
		 * so that a waiting thread gets the connection in between. */
		pause_us(GAP_US);
	}
	qsort(t, CALLS, sizeof(t[0]), cmp_double);
	*p90 = t[CALLS * 9 / 10];
	return t[CALLS / 2];
}

static void *wait_events(void *arg)
{
	(void)arg;
	result = clWaitForEvents(1, &uev);
	return NULL;
}

static void *finish_queue(void *arg)
{
	(void)arg;
	result = clFinish(q);
	return NULL;
}

static void on_alarm(int sig)
{
	static const char msg[] = "Bail out! a wait did not end within 120 s\n";

	(void)sig;
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

/* Thread A runs @waiter on a fresh user event; after it has settled into
 * its longest polls, this thread measures; then the event is set. */
static void scenario(const char *name, void *(*waiter)(void *), double single)
{
	double med, p90;
	pthread_t a;
	cl_int err;
	int bad = 0;

	uev = clCreateUserEvent(ctx, &err);
	EQ(err, CL_SUCCESS, "clCreateUserEvent");
	if (waiter == finish_queue)
		EQ(clEnqueueMarkerWithWaitList(q, 1, &uev, NULL), CL_SUCCESS,
		   "a marker that waits for the user event");
	result = 1;
	pthread_create(&a, NULL, waiter, NULL);
	pause_ms(50); /* the waiter's bound has grown to its longest by now */
	med = round_trips(&p90, &bad);
	EQ(bad, 0, "clGetDeviceInfo answers while another thread waits");
	printf("# %s: clGetDeviceInfo while another thread waits: median %.1f us, p90 %.1f us "
	       "(alone: median %.1f us)\n", name, med, p90, single);
	OK(med < MEDIAN_BOUND_US, "%s: median round trip %.1f us < %.0f us while another thread waits",
	   name, med, MEDIAN_BOUND_US);
	EQ(result, 1, "the waiting thread is still waiting");
	EQ(clSetUserEventStatus(uev, CL_COMPLETE), CL_SUCCESS, "set the user event");
	pthread_join(a, NULL);
	EQ(result, CL_SUCCESS, "the wait ended with CL_SUCCESS");
	clReleaseEvent(uev);
}

int main(void)
{
	cl_platform_id p;
	double single, p90;
	cl_int err;
	int bad = 0;

	signal(SIGALRM, on_alarm);
	alarm(120);
	t_first(&p, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateContext");
	q = clCreateCommandQueueWithProperties(ctx, dev, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateCommandQueueWithProperties");
	single = round_trips(&p90, &bad);
	EQ(bad, 0, "clGetDeviceInfo answers");
	printf("# clGetDeviceInfo alone: median %.1f us, p90 %.1f us\n", single, p90);
	scenario("clWaitForEvents", wait_events, single);
	scenario("clFinish", finish_queue, single);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return t_done();
}
