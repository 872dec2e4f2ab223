/* SPDX-License-Identifier: Apache-2.0 */
/* Non-blocking reads and maps gated on a user event that this same thread
 * sets only after they returned (issue 12: they blocked forever through
 * gpupass). Each one must return at once, keep its place in the queue (a
 * fill queued after it does not show in its data), and deliver the data
 * before any wait, finish, status query or callback says it is complete.
 * Buffer reads (small, inline; big, shared memory), rectangular reads,
 * image reads, maps, a failed user event, and threads: one waits while
 * another sets the event. Runs natively as well (the same results). An
 * alarm turns a hang into a failure. */
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "pvtest.h"

enum { SMALL = 4096, BIG = 1 << 20 }; /* ints: 16 KiB, 4 MiB (shared memory) */

static cl_context ctx;
static cl_device_id dev;
static cl_command_queue q;

static void on_alarm(int sig)
{
	static const char msg[] = "not ok - a non-blocking call or a wait hung (20 s)\n"
				  "Bail out! hang\n";

	(void)sig;
	(void)!write(1, msg, sizeof(msg) - 1);
	_exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static cl_mem buffer_of(size_t n, cl_int base)
{
	cl_int *init = malloc(n * sizeof(cl_int)), err;
	cl_mem m;

	for (size_t i = 0; i < n; i++)
		init[i] = base + (cl_int)i;
	m = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * sizeof(cl_int), init,
			   &err);
	free(init);
	if (err != CL_SUCCESS) {
		printf("Bail out! clCreateBuffer of %zu ints: %d\n", n, err);
		exit(1);
	}
	return m;
}

static size_t wrong(const cl_int *h, size_t n, cl_int base)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += h[i] != base + (cl_int)i;
	return bad;
}

static cl_int status_of(cl_event e)
{
	cl_int st = 1;

	clGetEventInfo(e, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st, NULL);
	return st;
}

/* A read of @n ints gated on a user event, a fill queued behind it; the
 * event set afterwards by this thread. @how: 0 wait for the event, 1
 * clFinish, 2 poll the status until complete. */
static void read_gated(size_t n, int how, const char *what)
{
	cl_mem m = buffer_of(n, 7);
	cl_int *h = calloc(n, sizeof(cl_int)), err, st;
	cl_event u = clCreateUserEvent(ctx, &err), e = NULL;
	cl_command_type type = 0;
	double t0 = now_s();

	err = clEnqueueReadBuffer(q, m, CL_FALSE, 0, n * sizeof(cl_int), h, 1, &u, &e);
	OK(err == CL_SUCCESS && now_s() - t0 < 2.0,
	   "%s: non-blocking read gated on a user event returns at once (%d, %.3f s)", what, err,
	   now_s() - t0);
	st = status_of(e);
	OK(st > CL_COMPLETE, "%s: not complete before the user event is set (status %d)", what, st);
	clGetEventInfo(e, CL_EVENT_COMMAND_TYPE, sizeof(type), &type, NULL);
	EQ(type, CL_COMMAND_READ_BUFFER, "event command type");
	{
		cl_int pat = -1;

		EQ(clEnqueueFillBuffer(q, m, &pat, sizeof(pat), 0, n * sizeof(cl_int), 0, NULL, NULL),
		   CL_SUCCESS, "a fill queued behind the read");
	}
	EQ(clSetUserEventStatus(u, CL_COMPLETE), CL_SUCCESS, "user event set by the same thread");
	if (how == 0) {
		EQ(clWaitForEvents(1, &e), CL_SUCCESS, "clWaitForEvents on the read");
	} else if (how == 1) {
		EQ(clFinish(q), CL_SUCCESS, "clFinish");
	} else {
		while ((st = status_of(e)) > CL_COMPLETE)
			usleep(200);
		EQ(st, CL_COMPLETE, "status polled to complete");
	}
	EQ(wrong(h, n, 7), 0, "ints of the read wrong (the fill behind it must not show)");
	clFinish(q);
	clReleaseEvent(e);
	clReleaseEvent(u);
	clReleaseMemObject(m);
	free(h);
}

static void rect_gated(void)
{
	/* A 16 x 8 x 2 region of a 64-byte-row buffer into a host array with
	 * 40-byte rows and 400-byte slices, at host origin (4, 1, 0). */
	enum { W = 64, H = 16, D = 2 };
	cl_uchar init[W * H * D], host[1000];
	size_t bo[3] = { 8, 2, 0 }, ho[3] = { 4, 1, 0 }, reg[3] = { 16, 8, 2 };
	cl_int err, bad = 0;
	cl_event u, e = NULL;
	cl_mem m;

	for (size_t i = 0; i < sizeof(init); i++)
		init[i] = (cl_uchar)(i * 7 + 3);
	memset(host, 0xee, sizeof(host));
	m = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof(init), init, &err);
	u = clCreateUserEvent(ctx, &err);
	err = clEnqueueReadBufferRect(q, m, CL_FALSE, bo, ho, reg, W, W * H, 40, 400, host, 1, &u,
				      &e);
	EQ(err, CL_SUCCESS, "rect: non-blocking clEnqueueReadBufferRect gated on a user event");
	OK(status_of(e) > CL_COMPLETE, "rect: not complete yet");
	EQ(clSetUserEventStatus(u, CL_COMPLETE), CL_SUCCESS, "rect: user event set");
	EQ(clWaitForEvents(1, &e), CL_SUCCESS, "rect: wait");
	for (size_t z = 0; z < 2; z++)
		for (size_t y = 0; y < 8; y++)
			for (size_t x = 0; x < 16; x++)
				bad += host[(z + ho[2]) * 400 + (y + ho[1]) * 40 + x + ho[0]] !=
				       init[(z + bo[2]) * W * H + (y + bo[1]) * W + x + bo[0]];
	bad += host[0] != 0xee || host[43] != 0xee || host[40 + 4 + 16] != 0xee;
	EQ(bad, 0, "rect: bytes wrong or written outside the region");
	clReleaseEvent(e);
	clReleaseEvent(u);
	clReleaseMemObject(m);
}

static void image_gated(void)
{
	cl_image_format f = { CL_RGBA, CL_UNSIGNED_INT8 };
	cl_image_desc d = { .image_type = CL_MEM_OBJECT_IMAGE2D, .image_width = 32,
			    .image_height = 16 };
	cl_uchar px[32 * 16 * 4], host[12 * 8 * 4 * 2];
	size_t org[3] = { 4, 2, 0 }, reg[3] = { 12, 8, 1 };
	cl_int err, bad = 0;
	cl_event u, e = NULL;
	cl_mem img;
	cl_bool has = CL_FALSE;

	clGetDeviceInfo(dev, CL_DEVICE_IMAGE_SUPPORT, sizeof(has), &has, NULL);
	if (!has) {
		OK(1, "image: # SKIP the device has no images");
		return;
	}
	for (size_t i = 0; i < sizeof(px); i++)
		px[i] = (cl_uchar)(i * 13 + 1);
	memset(host, 0, sizeof(host));
	img = clCreateImage(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, &f, &d, px, &err);
	EQ(err, CL_SUCCESS, "image: created");
	u = clCreateUserEvent(ctx, &err);
	/* Host rows of 96 bytes: twice the region's 48. */
	err = clEnqueueReadImage(q, img, CL_FALSE, org, reg, 96, 0, host, 1, &u, &e);
	EQ(err, CL_SUCCESS, "image: non-blocking clEnqueueReadImage gated on a user event");
	OK(status_of(e) > CL_COMPLETE, "image: not complete yet");
	EQ(clSetUserEventStatus(u, CL_COMPLETE), CL_SUCCESS, "image: user event set");
	EQ(clFinish(q), CL_SUCCESS, "image: clFinish");
	for (size_t y = 0; y < 8; y++)
		for (size_t x = 0; x < 48; x++)
			bad += host[y * 96 + x] != px[(y + 2) * 128 + 16 + x];
	EQ(bad, 0, "image: bytes wrong");
	clReleaseEvent(e);
	clReleaseEvent(u);
	/* A non-blocking image map gated on a user event (the CTS
	 * test_events 'callbacks' hung here through PV). */
	{
		size_t rp = 0;
		cl_uchar *mp;

		u = clCreateUserEvent(ctx, &err);
		e = NULL;
		mp = clEnqueueMapImage(q, img, CL_FALSE, CL_MAP_READ, org, reg, &rp, NULL, 1, &u, &e,
				       &err);
		OK(err == CL_SUCCESS && mp, "image: non-blocking map gated on a user event returns (%d)",
		   err);
		OK(status_of(e) > CL_COMPLETE, "image: map not complete yet");
		EQ(clSetUserEventStatus(u, CL_COMPLETE), CL_SUCCESS, "image map: user event set");
		EQ(clWaitForEvents(1, &e), CL_SUCCESS, "image map: wait");
		bad = 0;
		for (size_t y = 0; mp && y < 8; y++)
			for (size_t x = 0; x < 48; x++)
				bad += mp[y * rp + x] != px[(y + 2) * 128 + 16 + x];
		EQ(mp ? bad : 1, 0, "image map: bytes wrong");
		if (mp)
			EQ(clEnqueueUnmapMemObject(q, img, mp, 0, NULL, NULL), CL_SUCCESS,
			   "image map: unmap");
		clFinish(q);
		clReleaseEvent(e);
		clReleaseEvent(u);
	}
	clReleaseMemObject(img);
}

static void map_gated(size_t n, const char *what)
{
	cl_mem m = buffer_of(n, 11);
	cl_int err;
	cl_event u = clCreateUserEvent(ctx, &err), e = NULL;
	cl_int *p;

	p = clEnqueueMapBuffer(q, m, CL_FALSE, CL_MAP_READ, 0, n * sizeof(cl_int), 1, &u, &e, &err);
	OK(err == CL_SUCCESS && p, "%s: non-blocking map gated on a user event returns (%d)", what,
	   err);
	OK(status_of(e) > CL_COMPLETE, "%s: map not complete yet", what);
	EQ(clSetUserEventStatus(u, CL_COMPLETE), CL_SUCCESS, "map: user event set");
	EQ(clWaitForEvents(1, &e), CL_SUCCESS, "map: wait");
	EQ(p ? wrong(p, n, 11) : n, 0, "map: ints wrong");
	if (p)
		EQ(clEnqueueUnmapMemObject(q, m, p, 0, NULL, NULL), CL_SUCCESS, "unmap");
	clFinish(q);
	clReleaseEvent(e);
	clReleaseEvent(u);
	clReleaseMemObject(m);
}

/* The user event fails: the read fails with it, the wait says so, the
 * host memory is left alone. */
static void read_failed(void)
{
	cl_mem m = buffer_of(SMALL, 5);
	cl_int *h = calloc(SMALL, sizeof(cl_int)), err, st;
	cl_event u = clCreateUserEvent(ctx, &err), e = NULL;
	size_t touched = 0;

	for (size_t i = 0; i < SMALL; i++)
		h[i] = -7;
	err = clEnqueueReadBuffer(q, m, CL_FALSE, 0, SMALL * sizeof(cl_int), h, 1, &u, &e);
	EQ(err, CL_SUCCESS, "failed: read enqueued");
	EQ(clSetUserEventStatus(u, -1234), CL_SUCCESS, "failed: user event set to an error");
	err = clWaitForEvents(1, &e);
	EQ(err, CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, "failed: the wait reports it");
	st = status_of(e);
	OK(st < 0, "failed: the read's status is an error (%d)", st);
	for (size_t i = 0; i < SMALL; i++)
		touched += h[i] != -7;
	EQ(touched, 0, "failed: host ints written");
	clReleaseEvent(e);
	clReleaseEvent(u);
	clReleaseMemObject(m);
	/* The queue goes on (a failed command does not stop it on PoCL,
	 * nor through gpupass). */
	clFinish(q);
	free(h);
}

struct setter {
	cl_event u;
	int delay_ms;
};

static void *set_later(void *arg)
{
	struct setter *s = arg;

	usleep((useconds_t)s->delay_ms * 1000);
	clSetUserEventStatus(s->u, CL_COMPLETE);
	return NULL;
}

struct cb_seen {
	pthread_mutex_t mu;
	int calls;
	size_t bad;
	const cl_int *h;
	size_t n;
};

static void CL_CALLBACK on_done(cl_event e, cl_int st, void *data)
{
	struct cb_seen *s = data;

	(void)e;
	pthread_mutex_lock(&s->mu);
	s->calls++;
	s->bad = st == CL_COMPLETE ? wrong(s->h, s->n, 3) : s->n;
	pthread_mutex_unlock(&s->mu);
}

/* Another thread sets the event while this one waits; a callback on the
 * read sees the data in place when it runs. */
static void threads_and_callback(void)
{
	cl_mem m = buffer_of(SMALL, 3);
	cl_int *h = calloc(SMALL, sizeof(cl_int)), err;
	cl_event u = clCreateUserEvent(ctx, &err), e = NULL;
	struct setter s = { u, 100 };
	struct cb_seen seen = { PTHREAD_MUTEX_INITIALIZER, 0, 0, h, SMALL };
	pthread_t t;

	err = clEnqueueReadBuffer(q, m, CL_FALSE, 0, SMALL * sizeof(cl_int), h, 1, &u, &e);
	EQ(err, CL_SUCCESS, "threads: read enqueued");
	EQ(clSetEventCallback(e, CL_COMPLETE, on_done, &seen), CL_SUCCESS, "threads: callback set");
	pthread_create(&t, NULL, set_later, &s);
	EQ(clWaitForEvents(1, &e), CL_SUCCESS, "threads: wait while another thread sets the event");
	EQ(wrong(h, SMALL, 3), 0, "threads: ints wrong after the wait");
	pthread_join(t, NULL);
	for (int i = 0; i < 2000; i++) {
		int c;

		pthread_mutex_lock(&seen.mu);
		c = seen.calls;
		pthread_mutex_unlock(&seen.mu);
		if (c)
			break;
		usleep(1000);
	}
	EQ(seen.calls, 1, "threads: completion callback called once");
	EQ(seen.bad, 0, "threads: ints wrong when the callback ran");
	clReleaseEvent(e);
	clReleaseEvent(u);
	clReleaseMemObject(m);
	free(h);
}

int main(int argc, char **argv)
{
	cl_platform_id p;
	cl_int err;

	signal(SIGALRM, on_alarm);
	alarm(20);
	t_first(&p, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	q = clCreateCommandQueue(ctx, dev, 0, &err);
	if (err != CL_SUCCESS) {
		printf("Bail out! no queue: %d\n", err);
		return 1;
	}
	/* argv[1], when given: only the parts whose letters it names. */
#define PART(c) (argc < 2 || strchr(argv[1], c))
	if (PART('r')) {
		read_gated(SMALL, 0, "small read, wait");
		read_gated(SMALL, 1, "small read, clFinish");
		read_gated(SMALL, 2, "small read, status polled");
	}
	if (PART('b')) {
		read_gated(BIG, 0, "4 MiB read, wait");
		read_gated(BIG, 1, "4 MiB read, clFinish");
	}
	if (PART('x'))
		rect_gated();
	if (PART('i'))
		image_gated();
	if (PART('m')) {
		map_gated(SMALL, "small map");
		map_gated(BIG, "4 MiB map");
	}
	if (PART('f'))
		read_failed();
	if (PART('t'))
		threads_and_callback();
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return t_done();
}
