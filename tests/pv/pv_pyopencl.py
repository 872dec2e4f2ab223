# SPDX-License-Identifier: Apache-2.0
"""pyopencl through gpupass PV: arrays, a reduction, a custom kernel,
events and profiling, sub-buffers, map/unmap, images and samplers. Results are checked against
numpy on the host. Run with /usr/bin/python3 (Debian's pyopencl)."""
import sys

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pyopencl.reduction as clr

n_ok = 0


def check(cond, what):
    global n_ok
    n_ok += 1
    print(("ok %d - " if cond else "not ok %d - ") % n_ok + what, flush=True)
    if not cond:
        sys.exit(1)


plats = cl.get_platforms()
check(len(plats) == 1 and plats[0].name.startswith("gpupass PV"), "only the PV platform: %s" % [p.name for p in plats])
ctx = cl.Context(plats[0].get_devices())
q = cl.CommandQueue(ctx, properties=cl.command_queue_properties.PROFILING_ENABLE)

rng = np.random.default_rng(7)
a = rng.random(1 << 18, dtype=np.float32)
b = rng.random(1 << 18, dtype=np.float32)
da, db = cla.to_device(q, a), cla.to_device(q, b)
check(np.allclose((da + db).get(), a + b), "array add")
check(np.allclose((da * 3 - db).get(), a * 3 - b), "array arithmetic")
check(abs(cla.sum(da).get() - a.sum()) / a.sum() < 1e-4, "array sum")
dot = clr.ReductionKernel(ctx, np.float32, neutral="0", reduce_expr="a+b",
                          map_expr="x[i]*y[i]", arguments="__global float *x, __global float *y")
check(abs(dot(da, db).get() - np.dot(a, b)) / np.dot(a, b) < 1e-4, "dot-product reduction kernel")

prg = cl.Program(ctx, """
__kernel void saxpy(float k, __global const float *x, __global float *y) {
    int i = get_global_id(0); y[i] = k * x[i] + y[i];
}""").build()
y = b.copy()
dy = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=y)
ev = prg.saxpy(q, a.shape, None, np.float32(2.0), da.data, dy)
ev.wait()
check(ev.command_execution_status == cl.command_execution_status.COMPLETE, "event complete")
check(ev.profile.end > ev.profile.start > 0, "profiling times")
out = np.empty_like(y)
cl.enqueue_copy(q, out, dy)
check(np.allclose(out, 2 * a + b), "custom kernel (saxpy)")

sub = dy.get_sub_region(4096 * 4, 1024 * 4)
part = np.empty(1024, dtype=np.float32)
cl.enqueue_copy(q, part, sub)
check(np.allclose(part, (2 * a + b)[4096:5120]), "sub-buffer read")

mapped, _ = cl.enqueue_map_buffer(q, dy, cl.map_flags.READ | cl.map_flags.WRITE, 0, y.shape, y.dtype)
check(np.allclose(mapped, 2 * a + b), "mapped contents")
mapped[:10] = -1
mapped.base.release(q)
cl.enqueue_copy(q, out, dy)
check(np.all(out[:10] == -1) and np.allclose(out[10:], (2 * a + b)[10:]), "writes through the map")

# images (the device has them): a 2D float image, a sampler, a kernel
dev = plats[0].get_devices()[0]
check(dev.image_support, "the device reports image support")
img_h = rng.random((48, 64), dtype=np.float32)
fmt = cl.ImageFormat(cl.channel_order.R, cl.channel_type.FLOAT)
img = cl.Image(ctx, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, fmt, shape=(64, 48), hostbuf=img_h)
smp = cl.Sampler(ctx, False, cl.addressing_mode.CLAMP_TO_EDGE, cl.filter_mode.NEAREST)
iprg = cl.Program(ctx, """
__kernel void twice(__read_only image2d_t im, sampler_t s, __global float *out) {
    int x = get_global_id(0), y = get_global_id(1);
    out[y * get_global_size(0) + x] = 2.0f * read_imagef(im, s, (int2)(x, y)).x;
}""").build()
dout = cl.Buffer(ctx, cl.mem_flags.WRITE_ONLY, img_h.nbytes)
iprg.twice(q, (64, 48), None, img, smp, dout)
res = np.empty_like(img_h)
cl.enqueue_copy(q, res, dout)
check(np.array_equal(res, 2 * img_h), "image + sampler kernel")
back = np.empty_like(img_h)
cl.enqueue_copy(q, back, img, origin=(0, 0), region=(64, 48))
check(np.array_equal(back, img_h), "image read back")
q.finish()
print("1..%d" % n_ok)
