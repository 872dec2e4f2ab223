/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/pv: the same OpenCL work natively (the host platform) and through
 * gpupass PV, in one process and one run, printed as PV/native ratios.
 * Both platforms come through the real loader: OCL_ICD_VENDORS must name a
 * directory holding the host's .icd and gpupass.icd (bench/pv/run does it).
 *
 * PV_BENCH_ONLY=native|pv (bench/pv-vm): one platform only, printed as
 * "name value" lines for a driver that puts runs of different machines
 * side by side; PV_BENCH_MAX=MiB caps the transfer sizes, PV_BENCH_QUICK=1
 * runs a tenth of the round-trip and launch loops (a TCG guest is slow).
 * Every row of the table is the median of 3 pairs native/PV (9 for launch
 * + clFinish, 5 for the compute-bound kernel), the order swapped every pair, its ratio the
 * median of the pairs' ratios: a drift of the machine's speed (other jobs,
 * the CPU's clock) hits both sides alike. PV_BENCH_ROW=compute|launch|
 * async|roundtrip [PV_BENCH_PAIRS=N]: only that row, N pairs (default 7),
 * each printed.
 */
#define CL_TARGET_OPENCL_VERSION 300
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct env {
	const char *label;
	cl_device_id dev;
	cl_context ctx;
	cl_command_queue q;
	cl_program prog;
	cl_kernel empty, busy;
};

static const char *src =
	"__kernel void empty(__global int *x) { }\n"
	"__kernel void busy(__global float *x, int iters) {\n"
	"  size_t i = get_global_id(0); float v = x[i];\n"
	"  for (int k = 0; k < iters; k++) v = v * 1.000001f + 0.5f;\n"
	"  x[i] = v;\n"
	"}\n";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int setup(struct env *e, cl_platform_id p, const char *label)
{
	cl_int err;
	cl_mem dummy;

	e->label = label;
	if (clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &e->dev, NULL) != CL_SUCCESS)
		return -1;
	e->ctx = clCreateContext(NULL, 1, &e->dev, NULL, NULL, &err);
	if (!e->ctx)
		return -1;
	e->q = clCreateCommandQueue(e->ctx, e->dev, 0, &err);
	e->prog = clCreateProgramWithSource(e->ctx, 1, &src, NULL, &err);
	if (!e->q || !e->prog || clBuildProgram(e->prog, 1, &e->dev, NULL, NULL, NULL) != CL_SUCCESS)
		return -1;
	e->empty = clCreateKernel(e->prog, "empty", &err);
	e->busy = clCreateKernel(e->prog, "busy", &err);
	dummy = clCreateBuffer(e->ctx, CL_MEM_READ_WRITE, 4096, NULL, &err);
	clSetKernelArg(e->empty, 0, sizeof(dummy), &dummy);
	return e->empty && e->busy ? 0 : -1;
}

/* Seconds per clGetEventInfo on a completed event. */
static int quick = 1;
/* Pairs native/PV per row of the table. */
#define PAIRS 3 /* loop divisor: 10 with PV_BENCH_QUICK */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return n & 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double b_roundtrip(struct env *e)
{
	size_t one = 1;
	cl_event ev;
	cl_int st;
	double t0;
	int n = 20000 / quick;

	clEnqueueNDRangeKernel(e->q, e->empty, 1, NULL, &one, NULL, 0, NULL, &ev);
	clWaitForEvents(1, &ev);
	t0 = now();
	for (int i = 0; i < n; i++)
		clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st), &st, NULL);
	t0 = (now() - t0) / n;
	clReleaseEvent(ev);
	return t0;
}

/* Launch + clFinish of an empty kernel: the median of 3000 (a mean would
 * be the machine's: one descheduled wake-up of a vCPU costs as much as
 * a hundred launches). */
static double b_launch_finish(struct env *e)
{
	enum { MAXN = 3000 };
	static double t[MAXN];
	size_t one = 1;
	int n = MAXN / quick;

	for (int i = 0; i < 100; i++) {
		clEnqueueNDRangeKernel(e->q, e->empty, 1, NULL, &one, NULL, 0, NULL, NULL);
		clFinish(e->q);
	}
	for (int i = 0; i < n; i++) {
		double t0 = now();

		clEnqueueNDRangeKernel(e->q, e->empty, 1, NULL, &one, NULL, 0, NULL, NULL);
		clFinish(e->q);
		t[i] = now() - t0;
	}
	return median(t, n);
}

/* 10 000 enqueues without waiting, then one clFinish: time per enqueue,
 * the median of 7 such batches (one batch is ~30 ms: a hiccup of the
 * machine would be most of it). */
static double b_async(struct env *e)
{
	size_t one = 1;
	int n = 10000;
	double t[7];

	clFinish(e->q);
	for (int b = 0; b < 7; b++) {
		double t0 = now();

		for (int i = 0; i < n; i++)
			clEnqueueNDRangeKernel(e->q, e->empty, 1, NULL, &one, NULL, 0, NULL, NULL);
		clFinish(e->q);
		t[b] = (now() - t0) / n;
	}
	return median(t, 7);
}

/* Bytes per second of blocking writes (or reads) of @size. */
static double b_bw(struct env *e, size_t size, int write)
{
	cl_int err;
	cl_mem m = clCreateBuffer(e->ctx, CL_MEM_READ_WRITE, size, NULL, &err);
	char *host = malloc(size);
	double t0, t;
	int n = 0;

	if (!m || !host) {
		free(host);
		return 0;
	}
	memset(host, 1, size);
	clEnqueueWriteBuffer(e->q, m, CL_TRUE, 0, size, host, 0, NULL, NULL);
	t0 = now();
	do {
		if (write)
			clEnqueueWriteBuffer(e->q, m, CL_TRUE, 0, size, host, 0, NULL, NULL);
		else
			clEnqueueReadBuffer(e->q, m, CL_TRUE, 0, size, host, 0, NULL, NULL);
		n++;
		t = now() - t0;
	} while (t < 0.25 || n < 3);
	clReleaseMemObject(m);
	free(host);
	return (double)size * n / t;
}

static double b_compute(struct env *e)
{
	size_t g = 1 << 16;
	int iters = 20000;
	cl_int err;
	cl_mem m = clCreateBuffer(e->ctx, CL_MEM_READ_WRITE, g * sizeof(float), NULL, &err);
	float zero = 0;
	double t0;

	clEnqueueFillBuffer(e->q, m, &zero, sizeof(zero), 0, g * sizeof(float), 0, NULL, NULL);
	clSetKernelArg(e->busy, 0, sizeof(m), &m);
	clSetKernelArg(e->busy, 1, sizeof(iters), &iters);
	clEnqueueNDRangeKernel(e->q, e->busy, 1, NULL, &g, NULL, 0, NULL, NULL);
	clFinish(e->q);
	t0 = now();
	for (int i = 0; i < 3; i++)
		clEnqueueNDRangeKernel(e->q, e->busy, 1, NULL, &g, NULL, 0, NULL, NULL);
	clFinish(e->q);
	clReleaseMemObject(m);
	return (now() - t0) / 3;
}

/* @n pairs native/PV of @f, the order swapped every pair; the median of
 * each side and of the pairs' ratios (@verbose: every pair printed). */
static void paired(double (*f)(struct env *), struct env *nat, struct env *pv, int n,
		   bool verbose, double *nat_v, double *pv_v, double *ratio)
{
	double a[64], b[64], r[64];

	if (n < 1 || n > 64)
		n = 5;
	for (int i = 0; i < n; i++) {
		if (i & 1) {
			b[i] = f(pv);
			a[i] = f(nat);
		} else {
			a[i] = f(nat);
			b[i] = f(pv);
		}
		r[i] = b[i] / a[i];
		if (verbose) {
			printf("pair %d: native %.4g, PV %.4g, %.3fx\n", i + 1, a[i], b[i], r[i]);
			fflush(stdout);
		}
	}
	*nat_v = median(a, n);
	*pv_v = median(b, n);
	*ratio = median(r, n);
	if (verbose)
		printf("median of %d pairs: %.3fx (range %.3f-%.3fx)\n", n, *ratio, r[0], r[n - 1]);
}

/* b_bw for paired(): the size and direction of the row being measured. */
static size_t bw_size;
static int bw_write;

static double b_bw_row(struct env *e)
{
	return b_bw(e, bw_size, bw_write);
}

static void row(const char *what, double (*f)(struct env *), struct env *nat, struct env *pv,
		int n, double scale, const char *target)
{
	double a, b, r;

	paired(f, nat, pv, n, false, &a, &b, &r);
	printf("%-34s %12.2f %12.2f %8.3fx   %s\n", what, a * scale, b * scale, r, target);
	fflush(stdout);
}

/* PV_BENCH_ONLY: the numbers of one platform, "name value" per line. */
static int only_one(struct env *e, size_t max)
{
	printf("roundtrip_us %.3f\n", b_roundtrip(e) * 1e6);
	printf("launch_finish_us %.3f\n", b_launch_finish(e) * 1e6);
	printf("async_us %.3f\n", b_async(e) * 1e6);
	fflush(stdout);
	for (size_t s = 4096; s <= max; s *= 4) {
		printf("write_%zu_gbps %.4f\n", s >> 10, b_bw(e, s, 1) / 1e9);
		printf("read_%zu_gbps %.4f\n", s >> 10, b_bw(e, s, 0) / 1e9);
		fflush(stdout);
	}
	printf("compute_ms %.3f\n", b_compute(e) * 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	cl_platform_id plats[8], pn = NULL, pp = NULL;
	cl_uint np = 0;
	struct env nat, pv;
	char name[256];

	clGetPlatformIDs(8, plats, &np);
	for (cl_uint i = 0; i < np; i++) {
		clGetPlatformInfo(plats[i], CL_PLATFORM_NAME, sizeof(name), name, NULL);
		if (strncmp(name, "gpupass", 7) == 0)
			pp = plats[i];
		else if (!pn)
			pn = plats[i];
	}
	{
		const char *only = getenv("PV_BENCH_ONLY"), *mx = getenv("PV_BENCH_MAX");
		size_t max = mx ? (size_t)strtoul(mx, NULL, 10) << 20 : 256u << 20;

		if (getenv("PV_BENCH_QUICK"))
			quick = 10;
		if (only && (strcmp(only, "pv") == 0 ? pp : pn)) {
			if (setup(&pv, strcmp(only, "pv") == 0 ? pp : pn, only) < 0) {
				fprintf(stderr, "pv_bench: OpenCL set-up failed\n");
				return 1;
			}
			return only_one(&pv, max);
		}
		if (only) {
			fprintf(stderr, "pv_bench: PV_BENCH_ONLY=%s: no such platform here\n", only);
			return 1;
		}
	}
	if (!pn || !pp) {
		fprintf(stderr, "pv_bench: need both the host platform and gpupass PV "
			"(OCL_ICD_VENDORS with both .icd files, gpupass-pvd running)\n");
		return 1;
	}
	if (setup(&nat, pn, "native") < 0 || setup(&pv, pp, "pv") < 0) {
		fprintf(stderr, "pv_bench: OpenCL set-up failed\n");
		return 1;
	}
	if (getenv("PV_BENCH_ROW")) {
		static const struct {
			const char *name;
			double (*f)(struct env *);
		} rows[] = { { "compute", b_compute }, { "launch", b_launch_finish },
			     { "async", b_async }, { "roundtrip", b_roundtrip } };
		const char *want = getenv("PV_BENCH_ROW"), *pairs = getenv("PV_BENCH_PAIRS");
		double x, y, r;

		for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
			if (strcmp(want, rows[i].name) == 0) {
				paired(rows[i].f, &nat, &pv, pairs ? atoi(pairs) : 7, true, &x, &y, &r);
				return 0;
			}
		}
		fprintf(stderr, "pv_bench: PV_BENCH_ROW=%s: compute, launch, async or roundtrip\n", want);
		return 2;
	}
	printf("each row: the median of %d pairs native/PV (%d for launch + clFinish, 5 for the "
	       "compute-bound kernel), the ratio the median of the pairs' ratios\n", PAIRS, 3 * PAIRS);
	printf("%-34s %12s %12s %9s   %s\n", "benchmark", "native", "PV", "PV/nat", "target");
	row("clGetEventInfo round trip (us)", b_roundtrip, &nat, &pv, PAIRS, 1e6, "");
	/* Native launch + finish is bimodal here (~25 or ~60 us, by where
	 * the scheduler puts PoCL's thread): more pairs for this row. */
	row("launch + clFinish, median (us)", b_launch_finish, &nat, &pv, 3 * PAIRS, 1e6, "<= 1.15x");
	row("async enqueue, 10000 (us each)", b_async, &nat, &pv, PAIRS, 1e6, "<= 1.5x");
	for (size_t sz = 4096; sz <= (256u << 20); sz *= 4) {
		char what[64];

		bw_size = sz;
		for (bw_write = 1; bw_write >= 0; bw_write--) {
			snprintf(what, sizeof(what), "%s %7zu KiB (GB/s)", bw_write ? "write" : "read ",
				 sz >> 10);
			row(what, b_bw_row, &nat, &pv, PAIRS, 1e-9, sz >= (1u << 20) ? ">= 0.9x" : "");
		}
	}
	row("compute-bound kernel (ms)", b_compute, &nat, &pv, 5, 1e3, "<= 1.02x");
	return 0;
}
