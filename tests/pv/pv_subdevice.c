/* SPDX-License-Identifier: Apache-2.0 */
/* Sub-devices through gpupass PV (OpenCL 3.0, 4.3): the host device is
 * partitioned on the server; the guest's sub-devices name their parent,
 * count their references, run kernels with checked results in contexts of
 * their own, and nest; malformed partitions fail with the spec's errors. */
#include "pvtest.h"

#define N 1024

static cl_uint dev_uint(cl_device_id d, cl_device_info what)
{
	cl_uint v = 0;

	clGetDeviceInfo(d, what, sizeof(v), &v, NULL);
	return v;
}

/* out[i] = a[i] * 3 + i on device @d of a context holding @devs: 0 when
 * every value is right. */
static int run_on(cl_uint ndev, const cl_device_id *devs, cl_device_id d)
{
	static const char *src =
		"__kernel void k(__global const int *a, __global int *o) {\n"
		"  size_t i = get_global_id(0); o[i] = a[i] * 3 + (int)i; }\n";
	static int a[N], o[N];
	size_t g = N;
	cl_int err;
	int bad = 0;
	cl_context ctx = clCreateContext(NULL, ndev, devs, NULL, NULL, &err);
	cl_command_queue q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err);
	cl_program prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	cl_kernel k;
	cl_mem ma, mo;

	for (int i = 0; i < N; i++)
		a[i] = i * 7 - 100;
	if (!ctx || !q || !prog || clBuildProgram(prog, 1, &d, NULL, NULL, NULL) != CL_SUCCESS)
		return -1;
	k = clCreateKernel(prog, "k", &err);
	ma = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof(a), a, &err);
	mo = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, sizeof(o), NULL, &err);
	clSetKernelArg(k, 0, sizeof(ma), &ma);
	clSetKernelArg(k, 1, sizeof(mo), &mo);
	memset(o, 0, sizeof(o));
	if (clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL) != CL_SUCCESS ||
	    clEnqueueReadBuffer(q, mo, CL_TRUE, 0, sizeof(o), o, 0, NULL, NULL) != CL_SUCCESS)
		bad = -1;
	for (int i = 0; i < N && !bad; i++)
		bad = o[i] != a[i] * 3 + i;
	clReleaseMemObject(ma);
	clReleaseMemObject(mo);
	clReleaseKernel(k);
	clReleaseProgram(prog);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return bad;
}

int main(void)
{
	cl_platform_id p;
	cl_device_id dev, sub[8], subsub[4];
	cl_device_partition_property types[8] = { 0 }, got[8] = { 0 };
	cl_uint n = 0, cus, maxsub;
	cl_device_id parent = NULL;
	size_t len = 0;
	int can_equally = 0;

	t_first(&p, &dev);
	cus = dev_uint(dev, CL_DEVICE_MAX_COMPUTE_UNITS);
	maxsub = dev_uint(dev, CL_DEVICE_PARTITION_MAX_SUB_DEVICES);
	clGetDeviceInfo(dev, CL_DEVICE_PARTITION_PROPERTIES, sizeof(types), types, &len);
	for (size_t i = 0; i < len / sizeof(types[0]); i++)
		can_equally |= types[i] == CL_DEVICE_PARTITION_EQUALLY;
	if (!can_equally || maxsub < 2 || cus < 2) {
		printf("1..0 # SKIP the host device cannot be partitioned (%u compute units, "
		       "max %u sub-devices)\n", cus, maxsub);
		return 0;
	}
	OK(1, "host device: %u compute units, up to %u sub-devices, equally supported", cus, maxsub);

	/* Malformed requests: the errors of OpenCL 3.0, 4.3.1. */
	{
		cl_device_partition_property unknown[] = { 0x4242, 1, 0 };
		cl_device_partition_property eq1[] = { CL_DEVICE_PARTITION_EQUALLY, 1, 0 };
		cl_device_partition_property counts0[] = { CL_DEVICE_PARTITION_BY_COUNTS, 0,
							   CL_DEVICE_PARTITION_BY_COUNTS_LIST_END, 0 };
		cl_device_partition_property eq_trail[] = { CL_DEVICE_PARTITION_EQUALLY, 1, 7, 0 };

		EQ(clCreateSubDevices(dev, NULL, 0, NULL, &n), CL_INVALID_VALUE, "no properties");
		EQ(clCreateSubDevices(dev, unknown, 0, NULL, &n), CL_INVALID_VALUE,
		   "an unknown partition type");
		EQ(clCreateSubDevices(NULL, eq1, 0, NULL, &n), CL_INVALID_DEVICE, "no device");
		EQ(clCreateSubDevices((cl_device_id)p, eq1, 0, NULL, &n), CL_INVALID_DEVICE,
		   "a platform for a device");
		EQ(clCreateSubDevices(dev, eq1, 1, sub, &n), CL_INVALID_VALUE,
		   "room for 1 of the sub-devices only");
		EQ(clCreateSubDevices(dev, eq_trail, 0, NULL, &n), CL_INVALID_VALUE,
		   "a property list not ended where its type says");
		OK(clCreateSubDevices(dev, counts0, 0, NULL, &n) != CL_SUCCESS,
		   "a partition by counts {0} is refused");
	}

	/* How many, without creating any. */
	{
		cl_device_partition_property eq1[] = { CL_DEVICE_PARTITION_EQUALLY, 1, 0 };

		n = 0;
		EQ(clCreateSubDevices(dev, eq1, 0, NULL, &n), CL_SUCCESS, "count only");
		EQ(n, cus, "equally by 1: one sub-device per compute unit");
		n = 0;
		EQ(clCreateSubDevices(dev, eq1, 2, sub, &n), CL_SUCCESS, "two sub-devices, equally 1");
		EQ(n, 2, "sub-devices made");
	}
	for (int i = 0; i < 2; i++) {
		parent = NULL;
		clGetDeviceInfo(sub[i], CL_DEVICE_PARENT_DEVICE, sizeof(parent), &parent, NULL);
		OK(parent == dev, "sub-device %d names the host device as its parent", i);
		EQ(dev_uint(sub[i], CL_DEVICE_MAX_COMPUTE_UNITS), 1, "a sub-device's compute units");
		EQ(dev_uint(sub[i], CL_DEVICE_REFERENCE_COUNT), 1, "a new sub-device's references");
		len = 0;
		clGetDeviceInfo(sub[i], CL_DEVICE_PARTITION_TYPE, sizeof(got), got, &len);
		OK(len == 3 * sizeof(got[0]) && got[0] == CL_DEVICE_PARTITION_EQUALLY && got[1] == 1 &&
		   got[2] == 0, "its partition type is the request {EQUALLY, 1, 0} (%zu bytes)", len);
	}
	parent = (cl_device_id)1;
	clGetDeviceInfo(dev, CL_DEVICE_PARENT_DEVICE, sizeof(parent), &parent, NULL);
	OK(parent == NULL, "the host device has no parent");
	OK(sub[0] != sub[1] && sub[0] != dev, "distinct handles");

	/* Work on each, in a context of one and of both. */
	EQ(run_on(1, &sub[0], sub[0]), 0, "vector kernel on sub-device 0, own context: results");
	EQ(run_on(2, sub, sub[1]), 0, "vector kernel on sub-device 1, context of both: results");

	/* References: counted; a context keeps its sub-devices. */
	EQ(clRetainDevice(sub[0]), CL_SUCCESS, "clRetainDevice");
	EQ(dev_uint(sub[0], CL_DEVICE_REFERENCE_COUNT), 2, "references after a retain");
	EQ(clReleaseDevice(sub[0]), CL_SUCCESS, "clReleaseDevice");
	EQ(dev_uint(sub[0], CL_DEVICE_REFERENCE_COUNT), 1, "references after the release");
	EQ(clRetainDevice(dev), CL_SUCCESS, "clRetainDevice on the host device");
	EQ(clReleaseDevice(dev), CL_SUCCESS, "clReleaseDevice on the host device");
	EQ(dev_uint(dev, CL_DEVICE_REFERENCE_COUNT), 1, "a root device's count stays 1");

	/* Nested: a sub-device of a sub-device keeps its parent alive. */
	{
		cl_device_partition_property eq1[] = { CL_DEVICE_PARTITION_EQUALLY, 1, 0 };
		cl_device_partition_property eq2[] = { CL_DEVICE_PARTITION_EQUALLY, 2, 0 };
		cl_device_id big;

		n = 0;
		EQ(clCreateSubDevices(dev, eq2, 1, &big, &n), CL_SUCCESS, "equally by 2");
		EQ(n, cus / 2, "sub-devices of 2 compute units");
		n = 0;
		EQ(clCreateSubDevices(big, eq1, 4, subsub, &n), CL_SUCCESS,
		   "partition that sub-device again, equally by 1");
		EQ(n, 2, "two sub-sub-devices");
		parent = NULL;
		clGetDeviceInfo(subsub[1], CL_DEVICE_PARENT_DEVICE, sizeof(parent), &parent, NULL);
		OK(parent == big, "their parent is the first sub-device");
		EQ(clReleaseDevice(big), CL_SUCCESS, "the first sub-device released by the application");
		EQ(run_on(2, subsub, subsub[1]), 0, "kernel on a sub-sub-device: results");
		EQ(dev_uint(subsub[1], CL_DEVICE_MAX_COMPUTE_UNITS), 1, "its compute units");
		EQ(clReleaseDevice(subsub[0]), CL_SUCCESS, "sub-sub-device 0 released");
		EQ(clReleaseDevice(subsub[1]), CL_SUCCESS, "sub-sub-device 1 released (and its parent)");
	}

	/* By counts. */
	{
		cl_device_partition_property counts[] = { CL_DEVICE_PARTITION_BY_COUNTS, 1, 1,
							  CL_DEVICE_PARTITION_BY_COUNTS_LIST_END, 0 };
		cl_device_id two[2];

		n = 0;
		EQ(clCreateSubDevices(dev, counts, 2, two, &n), CL_SUCCESS, "by counts {1, 1}");
		EQ(n, 2, "two sub-devices by counts");
		EQ(dev_uint(two[1], CL_DEVICE_MAX_COMPUTE_UNITS), 1, "compute units of the second");
		EQ(run_on(1, &two[1], two[1]), 0, "kernel on a by-counts sub-device: results");
		EQ(clReleaseDevice(two[0]), CL_SUCCESS, "released");
		EQ(clReleaseDevice(two[1]), CL_SUCCESS, "released");
	}
	/* A context keeps its sub-devices (OpenCL 3.0, 4.4): released by the
	 * application, sub-device 1 still serves the context made with it. */
	{
		cl_int err;
		cl_context ctx = clCreateContext(NULL, 1, &sub[1], NULL, NULL, &err);
		cl_device_id in_ctx = NULL;
		cl_command_queue q;
		cl_mem m;
		int w[64], r[64];

		EQ(err, CL_SUCCESS, "a context of sub-device 1");
		EQ(clReleaseDevice(sub[0]), CL_SUCCESS, "sub-device 0 released");
		EQ(clReleaseDevice(sub[1]), CL_SUCCESS, "sub-device 1 released, its context alive");
		clGetContextInfo(ctx, CL_CONTEXT_DEVICES, sizeof(in_ctx), &in_ctx, NULL);
		OK(in_ctx == sub[1], "the context still names it");
		q = clCreateCommandQueueWithProperties(ctx, in_ctx, NULL, &err);
		EQ(err, CL_SUCCESS, "a queue on it");
		for (int i = 0; i < 64; i++)
			w[i] = i * i;
		m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof(w), NULL, &err);
		EQ(clEnqueueWriteBuffer(q, m, CL_TRUE, 0, sizeof(w), w, 0, NULL, NULL), CL_SUCCESS,
		   "write");
		memset(r, 0, sizeof(r));
		EQ(clEnqueueReadBuffer(q, m, CL_TRUE, 0, sizeof(r), r, 0, NULL, NULL), CL_SUCCESS,
		   "read");
		OK(memcmp(w, r, sizeof(w)) == 0, "data back through a queue on the released sub-device");
		clReleaseMemObject(m);
		clReleaseCommandQueue(q);
		EQ(clReleaseContext(ctx), CL_SUCCESS, "context released (and the sub-device with it)");
	}
	return t_done();
}
