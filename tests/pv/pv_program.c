/* SPDX-License-Identifier: Apache-2.0 */
/* Separate compilation through gpupass PV: clCompileProgram with an
 * embedded header, clLinkProgram, a kernel from the linked program run and
 * checked; link and compile failures with their codes and logs; built-in
 * kernels as the device lists them. */
#include "pvtest.h"

static const char *hdr = "#define FACTOR 3\nint twice_plus(int x);\n";
static const char *lib_src =
	"#include \"inc/common.h\"\n"
	"int twice_plus(int x) { return 2 * x + FACTOR; }\n";
static const char *main_src =
	"#include \"inc/common.h\"\n"
	"__kernel void apply(__global int *v) { size_t i = get_global_id(0); v[i] = twice_plus(v[i]) * FACTOR; }\n";
static const char *broken_src =
	"int missing(int x);\n"
	"__kernel void k(__global int *v) { v[0] = missing(v[0]); }\n";

static int notified;

static void CL_CALLBACK on_done(cl_program p, void *data)
{
	notified += *(int *)data;
}

int main(void)
{
	enum { N = 1024 };
	cl_platform_id plat;
	cl_device_id dev;
	cl_context ctx;
	cl_command_queue q;
	cl_program h, lib, mainp, linked, broken, bad;
	cl_kernel k;
	cl_mem buf;
	cl_int err;
	int v[N], one = 1;
	size_t g = N, n = 0;
	const char *name = "inc/common.h";
	char log[8192] = "";

	t_first(&plat, &dev);
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	q = clCreateCommandQueue(ctx, dev, 0, &err);
	h = clCreateProgramWithSource(ctx, 1, &hdr, NULL, &err);
	lib = clCreateProgramWithSource(ctx, 1, &lib_src, NULL, &err);
	mainp = clCreateProgramWithSource(ctx, 1, &main_src, NULL, &err);

	EQ(clCompileProgram(lib, 1, &dev, NULL, 1, &h, &name, on_done, &one), CL_SUCCESS,
	   "compile the library source with an embedded header");
	EQ(clCompileProgram(mainp, 0, NULL, "-DUNUSED=1", 1, &h, &name, on_done, &one), CL_SUCCESS,
	   "compile the kernel source");
	EQ(notified, 2, "compile callbacks ran");
	{
		cl_program_binary_type bt = 0;

		clGetProgramBuildInfo(lib, dev, CL_PROGRAM_BINARY_TYPE, sizeof(bt), &bt, NULL);
		EQ(bt, CL_PROGRAM_BINARY_TYPE_COMPILED_OBJECT, "binary type after compile");
	}
	{
		cl_program both[2] = { lib, mainp };

		linked = clLinkProgram(ctx, 1, &dev, NULL, 2, both, on_done, &one, &err);
		EQ(err, CL_SUCCESS, "link the two");
		EQ(notified, 3, "link callback ran");
	}
	k = clCreateKernel(linked, "apply", &err);
	EQ(err, CL_SUCCESS, "kernel from the linked program");
	for (int i = 0; i < N; i++)
		v[i] = i - 100;
	buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof(v), v, &err);
	EQ(clSetKernelArg(k, 0, sizeof(buf), &buf), CL_SUCCESS, "set the argument");
	EQ(clFinish(q), CL_SUCCESS, "argument accepted");
	EQ(clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL), CL_SUCCESS, "run it");
	EQ(clEnqueueReadBuffer(q, buf, CL_TRUE, 0, sizeof(v), v, 0, NULL, NULL), CL_SUCCESS, "read");
	{
		int bad_n = 0;

		for (int i = 0; i < N; i++)
			bad_n += v[i] != (2 * (i - 100) + 3) * 3;
		EQ(bad_n, 0, "every element is (2x + 3) * 3");
	}

	/* a link that cannot resolve a symbol */
	broken = clCreateProgramWithSource(ctx, 1, &broken_src, NULL, &err);
	EQ(clCompileProgram(broken, 0, NULL, NULL, 0, NULL, NULL, NULL, NULL), CL_SUCCESS,
	   "compile a source calling an undefined function");
	bad = clLinkProgram(ctx, 0, NULL, NULL, 1, &broken, NULL, NULL, &err);
	EQ(err, CL_LINK_PROGRAM_FAILURE, "link fails with CL_LINK_PROGRAM_FAILURE");
	if (bad) {
		cl_build_status st = 0;

		clGetProgramBuildInfo(bad, dev, CL_PROGRAM_BUILD_STATUS, sizeof(st), &st, NULL);
		EQ(st, CL_BUILD_ERROR, "its build status is CL_BUILD_ERROR");
		clGetProgramBuildInfo(bad, dev, CL_PROGRAM_BUILD_LOG, sizeof(log), log, &n);
		OK(n > 1 && strstr(log, "missing"), "the link log names the symbol: %.80s", log);
		clReleaseProgram(bad);
	} else {
		/* PoCL returns no program for a failed link (natively too). */
		OK(1, "no program object for the failed link, as the host answers");
	}
	/* a compile error */
	{
		const char *syntax = "__kernel void k(__global int *v) { v[0] = ; }\n";
		cl_program sp = clCreateProgramWithSource(ctx, 1, &syntax, NULL, &err);

		EQ(clCompileProgram(sp, 0, NULL, NULL, 0, NULL, NULL, NULL, NULL), CL_COMPILE_PROGRAM_FAILURE,
		   "compile error: CL_COMPILE_PROGRAM_FAILURE");
		clGetProgramBuildInfo(sp, dev, CL_PROGRAM_BUILD_LOG, sizeof(log), log, NULL);
		OK(strstr(log, "error") != NULL, "compile log has the error");
		clReleaseProgram(sp);
	}
	/* argument checks and refused header names */
	{
		const char *evil = "../../x.h";

		EQ(clCompileProgram(mainp, 0, NULL, NULL, 1, NULL, &name, NULL, NULL), CL_INVALID_VALUE,
		   "headers without programs");
		EQ(clCompileProgram(lib, 0, NULL, NULL, 1, &h, &evil, NULL, NULL), CL_INVALID_VALUE,
		   "header name climbing out of the scratch directory refused");
		EQ(clCompileProgram(lib, 0, NULL, "-Xclang -load", 0, NULL, NULL, NULL, NULL),
		   CL_INVALID_COMPILER_OPTIONS, "host compiler flags refused");
		clLinkProgram(ctx, 0, NULL, NULL, 0, NULL, NULL, NULL, &err);
		EQ(err, CL_INVALID_VALUE, "link of nothing");
		clLinkProgram(ctx, 0, NULL, NULL, 1, (cl_program *)&buf, NULL, NULL, &err);
		EQ(err, CL_INVALID_PROGRAM, "link of a buffer");
		EQ(clUnloadPlatformCompiler(plat), CL_SUCCESS, "clUnloadPlatformCompiler");
		EQ(clUnloadPlatformCompiler((cl_platform_id)ctx), CL_INVALID_PLATFORM, "... on a non-platform");
	}
	/* built-in kernels: only names the device lists */
	{
		char bik[4096] = "";
		cl_program bp;

		clCreateProgramWithBuiltInKernels(ctx, 1, &dev, "no.such.kernel", &err);
		EQ(err, CL_INVALID_VALUE, "built-in kernel the device does not list");
		clGetDeviceInfo(dev, CL_DEVICE_BUILT_IN_KERNELS, sizeof(bik), bik, NULL);
		if (bik[0]) {
			char *semi = strchr(bik, ';');

			if (semi)
				*semi = '\0';
			bp = clCreateProgramWithBuiltInKernels(ctx, 1, &dev, bik, &err);
			EQ(err, CL_SUCCESS, "built-in kernel the device lists");
			if (bp) {
				clReleaseProgram(bp);
			}
		}
	}

	clReleaseMemObject(buf);
	clReleaseKernel(k);
	clReleaseProgram(linked);
	clReleaseProgram(broken);
	clReleaseProgram(h);
	clReleaseProgram(lib);
	clReleaseProgram(mainp);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	return t_done();
}
