/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Big transfers through PV, every byte checked: for 1, 4 and 64 MiB, a
 * blocking write, a non-blocking write, a device-side copy, a blocking
 * read, a read of a region at an odd offset, and map/unmap both ways.
 * Run with the ivshmem region and without it: the results must be the
 * same. Last, a 1 MiB buffer of a marker pattern is written, so that the
 * test can look for it in the region's file (proof the data went there).
 *
 * Usage: pv_bulk [MiB...]   (default 1 4 64); prints TAP and the time of
 * each size's transfers as comments.
 */
#include <stdint.h>
#include <time.h>

#include "pvtest.h"

static uint32_t pat(uint64_t i, uint32_t seed)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;

	return (uint32_t)(x >> 29);
}

static void fill(uint32_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(i, seed);
}

/* Index of the first word that differs from the pattern, or n. */
static size_t check(const uint32_t *p, size_t n, uint64_t first, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(first + i, seed))
			return i;
	return n;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void one_size(cl_context ctx, cl_command_queue q, size_t mib)
{
	size_t bytes = mib << 20, n = bytes / 4, off = 12345 * 4, part = n / 3;
	uint32_t *src = malloc(bytes), *dst = malloc(bytes), seed = (uint32_t)mib * 7919u;
	cl_mem a, b;
	cl_int err;
	cl_event ev;
	double t0;
	void *m;

	if (!src || !dst) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	fill(src, n, seed);
	a = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateBuffer A");
	b = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateBuffer B");

	t0 = now();
	EQ(clEnqueueWriteBuffer(q, a, CL_TRUE, 0, bytes, src, 0, NULL, NULL), CL_SUCCESS,
	   "blocking write");
	printf("# %zu MiB write: %.3f s\n", mib, now() - t0);
	memset(dst, 0, bytes);
	t0 = now();
	EQ(clEnqueueReadBuffer(q, a, CL_TRUE, 0, bytes, dst, 0, NULL, NULL), CL_SUCCESS,
	   "blocking read");
	printf("# %zu MiB read: %.3f s\n", mib, now() - t0);
	EQ(check(dst, n, 0, seed), n, "read back after the write (first differing word)");

	/* device-side copy A -> B, then read B */
	EQ(clEnqueueCopyBuffer(q, a, b, 0, 0, bytes, 0, NULL, NULL), CL_SUCCESS, "copy A -> B");
	memset(dst, 0, bytes);
	EQ(clEnqueueReadBuffer(q, b, CL_TRUE, 0, bytes, dst, 0, NULL, NULL), CL_SUCCESS, "read B");
	EQ(check(dst, n, 0, seed), n, "B after the copy (first differing word)");

	/* a non-blocking write of the middle third of B from another pattern,
	 * an event, then a read at an odd offset across it */
	fill(src, n, seed ^ 0x55aa55aau);
	EQ(clEnqueueWriteBuffer(q, b, CL_FALSE, part * 4, part * 4, src + part, 0, NULL, &ev),
	   CL_SUCCESS, "non-blocking write of the middle third");
	EQ(clWaitForEvents(1, &ev), CL_SUCCESS, "its event completes");
	clReleaseEvent(ev);
	memset(dst, 0, bytes);
	EQ(clEnqueueReadBuffer(q, b, CL_TRUE, off, bytes - off, dst, 0, NULL, NULL), CL_SUCCESS,
	   "read from an odd offset");
	{
		size_t first = off / 4, bad = n;

		for (size_t i = first; i < n && bad == n; i++) {
			uint32_t want = i >= part && i < 2 * part ? pat(i, seed ^ 0x55aa55aau) : pat(i, seed);

			if (dst[i - first] != want)
				bad = i;
		}
		EQ(bad, n, "old and new thirds where they belong (first differing word)");
	}

	/* map for writing (invalidate), unmap, then map for reading */
	m = clEnqueueMapBuffer(q, a, CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION, 0, bytes, 0, NULL, NULL,
			       &err);
	EQ(err, CL_SUCCESS, "map A for writing");
	if (m) {
		fill(m, n, seed ^ 0x12345678u);
		EQ(clEnqueueUnmapMemObject(q, a, m, 0, NULL, NULL), CL_SUCCESS, "unmap A");
	}
	m = clEnqueueMapBuffer(q, a, CL_TRUE, CL_MAP_READ, 0, bytes, 0, NULL, NULL, &err);
	EQ(err, CL_SUCCESS, "map A for reading");
	if (m) {
		EQ(check(m, n, 0, seed ^ 0x12345678u), n, "mapped A holds what was written through a map");
		clEnqueueUnmapMemObject(q, a, m, 0, NULL, NULL);
	}
	EQ(clFinish(q), CL_SUCCESS, "clFinish");
	clReleaseMemObject(a);
	clReleaseMemObject(b);
	free(src);
	free(dst);
}

int main(int argc, char **argv)
{
	static const size_t defaults[] = { 1, 4, 64 };
	cl_platform_id p;
	cl_device_id d;
	cl_context ctx;
	cl_command_queue q;
	cl_int err;

	t_first(&p, &d);
	ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateContext");
	q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
	EQ(err, CL_SUCCESS, "clCreateCommandQueueWithProperties");
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			one_size(ctx, q, (size_t)strtoul(argv[i], NULL, 10));
	} else {
		for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
			one_size(ctx, q, defaults[i]);
	}
	{
		/* The marker: "GPUPASS-BULK-MARKER-" repeated over 1 MiB. */
		static const char mark[] = "GPUPASS-BULK-MARKER-";
		size_t bytes = 1u << 20;
		char *buf = malloc(bytes);
		cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);

		for (size_t i = 0; buf && i < bytes; i++)
			buf[i] = mark[i % (sizeof(mark) - 1)];
		EQ(buf && clEnqueueWriteBuffer(q, m, CL_TRUE, 0, bytes, buf, 0, NULL, NULL) == CL_SUCCESS,
		   1, "marker written");
		clReleaseMemObject(m);
		free(buf);
	}
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return t_done();
}
