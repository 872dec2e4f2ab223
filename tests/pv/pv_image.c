/* SPDX-License-Identifier: Apache-2.0 */
/* Images and samplers through gpupass PV: every result is checked against
 * values computed here. */
#include <stdint.h>

#include "pvtest.h"

static const char *src =
	"__kernel void invert(__read_only image2d_t in, __write_only image2d_t out) {\n"
	"  int2 p = (int2)(get_global_id(0), get_global_id(1));\n"
	"  uint4 v = read_imageui(in, p);\n"
	"  write_imageui(out, p, (uint4)(255) - v);\n"
	"}\n"
	"__kernel void sample(__read_only image2d_t in, sampler_t s, __global float *out, int w) {\n"
	"  int x = get_global_id(0), y = get_global_id(1);\n"
	"  out[y * w + x] = read_imagef(in, s, (float2)(x + 0.5f, y + 0.5f)).x;\n"
	"}\n"
	"__kernel void edge(__read_only image2d_t in, sampler_t s, __global float *out) {\n"
	"  out[get_global_id(0)] = read_imagef(in, s, (int2)(-1, 0)).x;\n"
	"}\n";

enum { W = 300, H = 200 };

static int has_format(const cl_image_format *f, cl_uint n, cl_channel_order o, cl_channel_type t)
{
	for (cl_uint i = 0; i < n; i++)
		if (f[i].image_channel_order == o && f[i].image_channel_data_type == t)
			return 1;
	return 0;
}

int main(void)
{
	cl_platform_id plat;
	cl_device_id dev;
	cl_context ctx;
	cl_command_queue q;
	cl_program prog;
	cl_kernel kinv, ksmp, kedge;
	cl_int err;
	cl_bool img_ok = CL_FALSE;
	cl_image_format fmt = { CL_RGBA, CL_UNSIGNED_INT8 }, ffmt = { CL_R, CL_FLOAT }, got_fmt;
	cl_image_format fl[512];
	cl_uint nf = 0;
	cl_image_desc desc = { .image_type = CL_MEM_OBJECT_IMAGE2D, .image_width = W, .image_height = H };
	uint8_t *pix = malloc(W * H * 4), *back = malloc(W * H * 4);
	float *fpix = malloc(W * H * sizeof(float)), *fout = malloc(W * H * sizeof(float));
	size_t org[3] = { 0, 0, 0 }, reg[3] = { W, H, 1 }, gsz[2] = { W, H }, v = 0, rp = 0;
	cl_mem a, b, f, outb, buf, i3;
	cl_sampler s, s2;
	cl_event ev;
	int bad = 0;

	t_first(&plat, &dev);
	clGetDeviceInfo(dev, CL_DEVICE_IMAGE_SUPPORT, sizeof(img_ok), &img_ok, NULL);
	if (!img_ok) {
		printf("1..0 # SKIP the host device has no images\n");
		return 0;
	}
	OK(1, "device reports image support as the host does");
	ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	q = clCreateCommandQueue(ctx, dev, 0, &err);

	EQ(clGetSupportedImageFormats(ctx, CL_MEM_READ_WRITE, CL_MEM_OBJECT_IMAGE2D, 512, fl, &nf),
	   CL_SUCCESS, "clGetSupportedImageFormats");
	OK(nf > 0 && has_format(fl, nf, CL_RGBA, CL_UNSIGNED_INT8) && has_format(fl, nf, CL_R, CL_FLOAT),
	   "formats include RGBA/UINT8 and R/FLOAT (%u formats)", nf);
	EQ(clGetSupportedImageFormats(ctx, 0, 0x1234, 0, NULL, &nf), CL_INVALID_VALUE, "bad image type");

	for (int i = 0; i < W * H * 4; i++)
		pix[i] = (uint8_t)(i * 7 + i / 13);
	a = clCreateImage(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, &fmt, &desc, pix, &err);
	EQ(err, CL_SUCCESS, "2D RGBA image with initial data");
	b = clCreateImage(ctx, CL_MEM_READ_WRITE, &fmt, &desc, NULL, &err);
	EQ(err, CL_SUCCESS, "second 2D image");
	clGetImageInfo(a, CL_IMAGE_WIDTH, sizeof(v), &v, NULL);
	EQ(v, W, "CL_IMAGE_WIDTH");
	clGetImageInfo(a, CL_IMAGE_HEIGHT, sizeof(v), &v, NULL);
	EQ(v, H, "CL_IMAGE_HEIGHT");
	clGetImageInfo(a, CL_IMAGE_ELEMENT_SIZE, sizeof(v), &v, NULL);
	EQ(v, 4, "CL_IMAGE_ELEMENT_SIZE");
	clGetImageInfo(a, CL_IMAGE_FORMAT, sizeof(got_fmt), &got_fmt, NULL);
	OK(got_fmt.image_channel_order == CL_RGBA && got_fmt.image_channel_data_type == CL_UNSIGNED_INT8,
	   "CL_IMAGE_FORMAT");
	clGetImageInfo(a, CL_IMAGE_ROW_PITCH, sizeof(rp), &rp, NULL);
	OK(rp >= W * 4, "CL_IMAGE_ROW_PITCH %zu", rp);
	{
		cl_mem_object_type t = 0;

		clGetMemObjectInfo(a, CL_MEM_TYPE, sizeof(t), &t, NULL);
		EQ(t, CL_MEM_OBJECT_IMAGE2D, "CL_MEM_TYPE of an image");
	}

	/* read back the initial data, then a sub-region with a row pitch */
	memset(back, 0, W * H * 4);
	EQ(clEnqueueReadImage(q, a, CL_TRUE, org, reg, 0, 0, back, 0, NULL, NULL), CL_SUCCESS, "read image");
	OK(memcmp(back, pix, W * H * 4) == 0, "initial data read back equal");
	{
		size_t o2[3] = { 10, 20, 0 }, r2[3] = { 5, 3, 1 };
		uint8_t sub[3][32];

		memset(sub, 0, sizeof(sub));
		EQ(clEnqueueReadImage(q, a, CL_TRUE, o2, r2, 32, 0, sub, 0, NULL, NULL), CL_SUCCESS,
		   "read a region with a row pitch");
		bad = 0;
		for (int y = 0; y < 3; y++)
			bad |= memcmp(sub[y], pix + ((20 + y) * W + 10) * 4, 20) != 0;
		OK(!bad, "region data right");
		/* write a region, read the whole image back */
		for (int y = 0; y < 3; y++)
			memset(sub[y], 0xAB, 20);
		EQ(clEnqueueWriteImage(q, b, CL_FALSE, org, reg, 0, 0, pix, 0, NULL, NULL), CL_SUCCESS, "write image");
		EQ(clEnqueueWriteImage(q, b, CL_TRUE, o2, r2, 32, 0, sub, 0, NULL, NULL), CL_SUCCESS, "write region");
		EQ(clEnqueueReadImage(q, b, CL_TRUE, org, reg, 0, 0, back, 0, NULL, NULL), CL_SUCCESS, "read back");
		bad = 0;
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++)
				for (int c = 0; c < 4; c++) {
					int in = x >= 10 && x < 15 && y >= 20 && y < 23;
					uint8_t want = in ? 0xAB : pix[(y * W + x) * 4 + c];

					bad += back[(y * W + x) * 4 + c] != want;
				}
		EQ(bad, 0, "written region and the rest right");
		size_t big[3] = { W + 1, H, 1 };
		EQ(clEnqueueReadImage(q, a, CL_TRUE, org, big, 0, 0, back, 0, NULL, NULL), CL_INVALID_VALUE,
		   "region beyond the image");
	}

	prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
	EQ(clBuildProgram(prog, 1, &dev, NULL, NULL, NULL), CL_SUCCESS, "build image kernels");
	kinv = clCreateKernel(prog, "invert", &err);
	ksmp = clCreateKernel(prog, "sample", &err);
	kedge = clCreateKernel(prog, "edge", &err);
	EQ(clSetKernelArg(kinv, 0, sizeof(cl_mem), &a), CL_SUCCESS, "image as kernel argument");
	EQ(clSetKernelArg(kinv, 1, sizeof(cl_mem), &b), CL_SUCCESS, "write image argument");
	EQ(clEnqueueNDRangeKernel(q, kinv, 2, NULL, gsz, NULL, 0, NULL, &ev), CL_SUCCESS, "invert kernel");
	EQ(clEnqueueReadImage(q, b, CL_TRUE, org, reg, 0, 0, back, 1, &ev, NULL), CL_SUCCESS, "read result");
	clReleaseEvent(ev);
	bad = 0;
	for (int i = 0; i < W * H * 4; i++)
		bad += (int)back[i] + (int)pix[i] != 255;
	EQ(bad, 0, "kernel wrote 255 - input into every pixel");

	/* samplers */
	s = clCreateSampler(ctx, CL_FALSE, CL_ADDRESS_CLAMP_TO_EDGE, CL_FILTER_NEAREST, &err);
	EQ(err, CL_SUCCESS, "clCreateSampler");
	{
		cl_sampler_properties sp[] = { CL_SAMPLER_NORMALIZED_COORDS, CL_FALSE,
					       CL_SAMPLER_ADDRESSING_MODE, CL_ADDRESS_CLAMP, 0 };
		cl_addressing_mode am = 0;
		cl_bool nc = CL_TRUE;
		cl_uint rc = 0;
		cl_sampler_properties back_p[8];
		size_t n = 0;

		s2 = clCreateSamplerWithProperties(ctx, sp, &err);
		EQ(err, CL_SUCCESS, "clCreateSamplerWithProperties");
		clGetSamplerInfo(s2, CL_SAMPLER_ADDRESSING_MODE, sizeof(am), &am, NULL);
		EQ(am, CL_ADDRESS_CLAMP, "sampler addressing mode");
		clGetSamplerInfo(s2, CL_SAMPLER_NORMALIZED_COORDS, sizeof(nc), &nc, NULL);
		EQ(nc, CL_FALSE, "sampler normalized coords");
		clGetSamplerInfo(s2, CL_SAMPLER_PROPERTIES, sizeof(back_p), back_p, &n);
		EQ(n, sizeof(sp), "sampler properties size");
		clRetainSampler(s2);
		clGetSamplerInfo(s2, CL_SAMPLER_REFERENCE_COUNT, sizeof(rc), &rc, NULL);
		EQ(rc, 2, "sampler reference count after retain");
		EQ(clReleaseSampler(s2), CL_SUCCESS, "release sampler");
		cl_sampler_properties dup[] = { CL_SAMPLER_FILTER_MODE, CL_FILTER_LINEAR,
						CL_SAMPLER_FILTER_MODE, CL_FILTER_LINEAR, 0 };
		clCreateSamplerWithProperties(ctx, dup, &err);
		EQ(err, CL_INVALID_VALUE, "property given twice");
		EQ(clRetainSampler((cl_sampler)ctx), CL_INVALID_SAMPLER, "context passed as sampler");
	}
	for (int i = 0; i < W * H; i++)
		fpix[i] = (float)i * 0.25f;
	f = clCreateImage2D(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, &ffmt, W, H, 0, fpix, &err);
	EQ(err, CL_SUCCESS, "clCreateImage2D (1.1 entry point) R/FLOAT");
	outb = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, W * H * sizeof(float), NULL, &err);
	{
		int w = W;

		clSetKernelArg(ksmp, 0, sizeof(cl_mem), &f);
		EQ(clSetKernelArg(ksmp, 1, sizeof(cl_sampler), &s), CL_SUCCESS, "sampler as kernel argument");
		EQ(clSetKernelArg(ksmp, 1, sizeof(cl_sampler), &outb), CL_INVALID_SAMPLER, "buffer as sampler argument");
		clSetKernelArg(ksmp, 2, sizeof(cl_mem), &outb);
		clSetKernelArg(ksmp, 3, sizeof(int), &w);
	}
	EQ(clEnqueueNDRangeKernel(q, ksmp, 2, NULL, gsz, NULL, 0, NULL, NULL), CL_SUCCESS, "sampling kernel");
	EQ(clEnqueueReadBuffer(q, outb, CL_TRUE, 0, W * H * sizeof(float), fout, 0, NULL, NULL), CL_SUCCESS,
	   "read sampled values");
	bad = 0;
	for (int i = 0; i < W * H; i++)
		bad += fout[i] != fpix[i];
	EQ(bad, 0, "sampled every pixel right");
	/* addressing modes: (-1, 0) clamps to the edge (pixel 0) or to the border (0) */
	clSetKernelArg(kedge, 0, sizeof(cl_mem), &f);
	clSetKernelArg(kedge, 1, sizeof(cl_sampler), &s);
	clSetKernelArg(kedge, 2, sizeof(cl_mem), &outb);
	{
		size_t one = 1;

		fpix[0] = -1.0f;
		clEnqueueWriteImage(q, f, CL_TRUE, org, (size_t[3]){ 1, 1, 1 }, 0, 0, fpix, 0, NULL, NULL);
		clEnqueueNDRangeKernel(q, kedge, 1, NULL, &one, NULL, 0, NULL, NULL);
		clEnqueueReadBuffer(q, outb, CL_TRUE, 0, sizeof(float), fout, 0, NULL, NULL);
		EQ(fout[0], -1, "CLAMP_TO_EDGE reads the edge pixel");
		clSetKernelArg(kedge, 1, sizeof(cl_sampler), &s2);
		clEnqueueNDRangeKernel(q, kedge, 1, NULL, &one, NULL, 0, NULL, NULL);
		clEnqueueReadBuffer(q, outb, CL_TRUE, 0, sizeof(float), fout, 0, NULL, NULL);
		EQ(fout[0], 0, "CLAMP reads the border colour");
	}

	/* copies, fill, image <-> buffer, map */
	{
		size_t o2[3] = { 4, 5, 0 }, r2[3] = { 8, 8, 1 };
		uint32_t col[4] = { 1, 2, 3, 4 };
		uint8_t *bb = malloc(W * H * 4);

		EQ(clEnqueueCopyImage(q, a, b, org, org, reg, 0, NULL, NULL), CL_SUCCESS, "copy image");
		EQ(clEnqueueFillImage(q, b, col, o2, r2, 0, NULL, NULL), CL_SUCCESS, "fill image");
		EQ(clEnqueueReadImage(q, b, CL_TRUE, org, reg, 0, 0, back, 0, NULL, NULL), CL_SUCCESS, "read");
		bad = 0;
		for (int y = 0; y < H; y++)
			for (int x = 0; x < W; x++)
				for (int c = 0; c < 4; c++) {
					int in = x >= 4 && x < 12 && y >= 5 && y < 13;

					bad += back[(y * W + x) * 4 + c] !=
					       (in ? (uint8_t)(c + 1) : pix[(y * W + x) * 4 + c]);
				}
		EQ(bad, 0, "copy then fill: every pixel right");
		buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, W * H * 4 + 64, NULL, &err);
		EQ(clEnqueueCopyImageToBuffer(q, b, buf, org, reg, 64, 0, NULL, NULL), CL_SUCCESS,
		   "copy image to buffer");
		EQ(clEnqueueReadBuffer(q, buf, CL_TRUE, 64, W * H * 4, bb, 0, NULL, NULL), CL_SUCCESS, "read buffer");
		OK(memcmp(bb, back, W * H * 4) == 0, "buffer holds the image");
		EQ(clEnqueueCopyBufferToImage(q, buf, a, 64, org, reg, 0, NULL, NULL), CL_SUCCESS,
		   "copy buffer to image");
		EQ(clEnqueueReadImage(q, a, CL_TRUE, org, reg, 0, 0, bb, 0, NULL, NULL), CL_SUCCESS, "read");
		OK(memcmp(bb, back, W * H * 4) == 0, "image holds the buffer");
		EQ(clEnqueueCopyImage(q, a, buf, org, org, reg, 0, NULL, NULL), CL_INVALID_MEM_OBJECT,
		   "buffer as copy destination image");
		free(bb);
	}
	{
		size_t o2[3] = { 2, 3, 0 }, r2[3] = { 4, 2, 1 }, rpm = 0, spm = 1;
		uint8_t *p = clEnqueueMapImage(q, a, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, o2, r2, &rpm, &spm,
					       0, NULL, NULL, &err);

		EQ(err, CL_SUCCESS, "map image");
		OK(p && rpm >= 16, "map gives a row pitch (%zu)", rpm);
		EQ(spm, 0, "slice pitch 0 for a 2D image");
		bad = 0;
		for (int y = 0; p && y < 2; y++)
			bad |= memcmp(p + y * rpm, back + ((3 + y) * W + 2) * 4, 16) != 0;
		OK(!bad, "mapped data right");
		if (p)
			memset(p + rpm, 0x5A, 16);
		EQ(clEnqueueUnmapMemObject(q, a, p, 0, NULL, NULL), CL_SUCCESS, "unmap image");
		EQ(clEnqueueReadImage(q, a, CL_TRUE, org, reg, 0, 0, back, 0, NULL, NULL), CL_SUCCESS, "read");
		OK(back[(4 * W + 2) * 4] == 0x5A && back[(4 * W + 5) * 4 + 3] == 0x5A &&
		   back[(4 * W + 6) * 4] != 0x5A, "unmap wrote the mapped row back, nothing else");
	}
	/* 3D image bigger than one transfer block: 64x64x40 RGBA float = 2.5 MiB */
	{
		cl_image_format f4 = { CL_RGBA, CL_FLOAT };
		enum { X = 64, Y = 64, Z = 40 };
		float *d3 = malloc(X * Y * Z * 16), *r3 = malloc(X * Y * Z * 16);
		size_t r3reg[3] = { X, Y, Z };

		for (int i = 0; i < X * Y * Z * 4; i++)
			d3[i] = (float)i;
		i3 = clCreateImage3D(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, &f4, X, Y, Z, 0, 0, d3, &err);
		EQ(err, CL_SUCCESS, "clCreateImage3D 2.5 MiB");
		memset(r3, 0, X * Y * Z * 16);
		EQ(clEnqueueReadImage(q, i3, CL_TRUE, org, r3reg, 0, 0, r3, 0, NULL, NULL), CL_SUCCESS, "read 3D");
		OK(memcmp(d3, r3, X * Y * Z * 16) == 0, "3D image read back equal (several blocks)");
		clReleaseMemObject(i3);
		free(d3);
		free(r3);
	}
	/* an image made from a buffer (PoCL 3.1 itself leaks a few bytes per
	 * such image: not run where the server's leaks are checked) */
	if (getenv("PV_LEAK_CHECKED")) {
		printf("# skipped under LeakSanitizer: 1D image from a buffer (PoCL leaks)\n");
	} else {
		cl_image_desc d1 = { .image_type = CL_MEM_OBJECT_IMAGE1D_BUFFER, .image_width = 16,
				     .buffer = buf };
		cl_mem i1 = clCreateImage(ctx, CL_MEM_READ_WRITE, &fmt, &d1, NULL, &err);
		cl_mem assoc = NULL;
		uint8_t row[64];
		size_t r1[3] = { 16, 1, 1 };

		EQ(err, CL_SUCCESS, "1D image from a buffer");
		clGetMemObjectInfo(i1, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof(assoc), &assoc, NULL);
		OK(assoc == buf, "associated memory object is the buffer");
		EQ(clEnqueueReadImage(q, i1, CL_TRUE, org, r1, 0, 0, row, 0, NULL, NULL), CL_SUCCESS, "read it");
		{
			uint8_t want[64];

			clEnqueueReadBuffer(q, buf, CL_TRUE, 0, 64, want, 0, NULL, NULL);
			OK(memcmp(row, want, 64) == 0, "it shows the buffer's bytes");
		}
		clReleaseMemObject(i1);
	}

	/* images count against memory_max (the runner sets 64 MiB) */
	if (getenv("PV_IMAGE_QUOTA")) {
		cl_image_format f4 = { CL_RGBA, CL_FLOAT };
		cl_mem huge = clCreateImage2D(ctx, CL_MEM_READ_WRITE, &f4, 4096, 2048, 0, NULL, &err);

		EQ(err, CL_MEM_OBJECT_ALLOCATION_FAILURE, "a 128 MiB image over a 64 MiB quota");
		OK(huge == NULL, "no image object");
		huge = clCreateImage2D(ctx, CL_MEM_READ_WRITE, &f4, 1024, 1024, 0, NULL, &err);
		EQ(err, CL_SUCCESS, "a 16 MiB image within it");
		clReleaseMemObject(huge);
	}

	clReleaseSampler(s);
	clReleaseSampler(s2);
	clReleaseKernel(kinv);
	clReleaseKernel(ksmp);
	clReleaseKernel(kedge);
	clReleaseProgram(prog);
	clReleaseMemObject(a);
	clReleaseMemObject(b);
	clReleaseMemObject(f);
	clReleaseMemObject(outb);
	clReleaseMemObject(buf);
	clReleaseCommandQueue(q);
	clReleaseContext(ctx);
	free(pix);
	free(back);
	free(fpix);
	free(fout);
	return t_done();
}
