/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pv_quota MIB COUNT EXPECT_FAIL_AT: allocates COUNT buffers of MIB MiB
 * (each touched by a write) and checks that allocation number
 * EXPECT_FAIL_AT (1-based; 0: none) fails with
 * CL_MEM_OBJECT_ALLOCATION_FAILURE and every other one succeeds. Then
 * frees one and checks that an allocation fits again.
 */
#include <unistd.h>

#include "pvtest.h"

int main(int argc, char **argv)
{
	cl_platform_id p;
	cl_device_id d;
	cl_context ctx;
	cl_command_queue q;
	cl_mem m[64] = { 0 };
	cl_int err;
	int mib, count, fail_at;
	char *host;

	if (argc != 4) {
		fprintf(stderr, "usage: pv_quota MIB COUNT EXPECT_FAIL_AT\n");
		return 2;
	}
	mib = atoi(argv[1]);
	count = atoi(argv[2]);
	fail_at = atoi(argv[3]);
	if (count > 64)
		count = 64;
	host = calloc((size_t)mib, 1 << 20);
	t_first(&p, &d);
	ctx = clCreateContext(NULL, 1, &d, NULL, NULL, &err);
	q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
	for (int i = 0; i < count; i++) {
		m[i] = clCreateBuffer(ctx, CL_MEM_READ_WRITE, (size_t)mib << 20, NULL, &err);
		if (i + 1 == fail_at) {
			EQ(err, CL_MEM_OBJECT_ALLOCATION_FAILURE, "allocation over memory_max refused");
			OK(m[i] == NULL, "no object for the refused allocation");
		} else {
			EQ(err, CL_SUCCESS, "allocation within memory_max");
			if (m[i])
				EQ(clEnqueueWriteBuffer(q, m[i], CL_TRUE, 0, (size_t)mib << 20, host, 0, NULL, NULL),
				   CL_SUCCESS, "write into it");
		}
	}
	if (fail_at > 1) {
		clReleaseMemObject(m[0]);
		m[0] = clCreateBuffer(ctx, CL_MEM_READ_WRITE, (size_t)mib << 20, NULL, &err);
		EQ(err, CL_SUCCESS, "after a release the quota has room again");
	}
	/* Hold the memory a moment so a concurrent guest's run overlaps. */
	if (getenv("PV_QUOTA_HOLD"))
		usleep(300000);
	for (int i = 0; i < count; i++)
		if (m[i])
			clReleaseMemObject(m[i]);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	free(host);
	return t_done();
}
