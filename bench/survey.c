/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/survey [RUNS] [DIR]: the survey of a generated host with 512 PCI
 * devices and 16 GPUs (each behind its own root port, with an audio
 * companion), RUNS times (default 31); prints the median, min and max in
 * milliseconds, and the median against the 20 ms target. The tree is made in
 * DIR (default: a new temporary directory, removed at the end).
 * A benchmark, not a test: it never fails on a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fakesys.h"
#include "host/context.h"
#include "host/survey.h"

#define NDEV 512
#define NGPU 16
#define TARGET_MS 20.0

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 31;
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	double *t;
	size_t gpus = 0, devs = 0;
	int r;

	if (runs < 1 || runs > 100000) {
		fprintf(stderr, "Usage: %s [RUNS] [DIR]\n", argv[0]);
		return 2;
	}
	/* sysfs lives in memory: build the tree on tmpfs when there is one,
	 * so the disk's file system does not weigh in. */
	char shm[] = "/dev/shm/gp-bench-XXXXXX";
	const char *dir = argc > 2 ? argv[2] : mkdtemp(shm);

	r = gp_fake_new(dir, &fake);
	if (r == 0)
		r = gp_fake_build_many(fake, NDEV, NGPU);
	if (r < 0) {
		fprintf(stderr, "bench/survey: cannot build the tree: %s\n", strerror(-r));
		return 1;
	}
	r = gp_ctx_new(gp_fake_root(fake), NULL, &ctx);
	t = calloc((size_t)runs, sizeof(*t));
	if (r < 0 || !t) {
		fprintf(stderr, "bench/survey: %s\n", strerror(r < 0 ? -r : ENOMEM));
		return 1;
	}
	for (int i = 0; i < runs; i++) {
		struct gp_survey *s;
		double t0 = now_ms();

		r = gp_survey_run(ctx, NULL, &s);
		t[i] = now_ms() - t0;
		if (r < 0) {
			fprintf(stderr, "bench/survey: survey failed: %s\n", strerror(-r));
			return 1;
		}
		gpus = gp_survey_gpu_count(s);
		devs = gp_survey_host(s)->pci_devices;
		gp_survey_free(s);
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	printf("survey: %zu PCI devices, %zu GPUs, %d runs: median %.2f ms (min %.2f, max %.2f); "
	       "%.2fx the %.0f ms target\n", devs, gpus, runs, t[runs / 2], t[0], t[runs - 1],
	       t[runs / 2] / TARGET_MS, TARGET_MS);
	free(t);
	gp_ctx_free(ctx);
	gp_fake_free(fake, argc <= 2);
	if (argc <= 2 && dir)
		rmdir(dir);
	return 0;
}
