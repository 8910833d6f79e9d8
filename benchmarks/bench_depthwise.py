"""Forward and backward time of the exact depthwise 3-D convolution formulations.

CPU default: batch 16 x 8 channels x 16x32x32, kernel 7 (REFERENCE.md section 5).
GPU default: the JEPA stage-0 shape, batch 8 x 16 channels x 16x224x224 (section 4: cuDNN takes
145 ms per fwd+bwd there).

    python benchmarks/bench_depthwise.py                     # CPU
    python benchmarks/bench_depthwise.py --device cuda       # GPU
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _record import record  # noqa: E402

from skphys._base import resolve_device  # noqa: E402
from skphys.nn.depthwise import depthwise_conv3d  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, repeats):
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--shape", default=None, help="N,C,T,H,W (default depends on the device)")
    p.add_argument("--kernel", type=int, default=7)
    p.add_argument("--impls", default=None, help="comma-separated (default: all available)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats, best kept (default 1 CPU, 5 GPU)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    shape = tuple(int(s) for s in args.shape.split(",")) if args.shape else ((8, 16, 16, 224, 224) if gpu else (16, 8, 16, 32, 32))
    impls = args.impls.split(",") if args.impls else ["conv3d", "conv2d", "fft"]
    repeats = args.repeats or (5 if gpu else 1)
    dtype = getattr(torch, args.dtype)

    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, device=device, generator=g).to(dtype).requires_grad_(True)
    w = (0.05 * torch.randn(shape[1], 1, *(args.kernel,) * 3, device=device, generator=g)).to(dtype).requires_grad_(True)
    grad = torch.randn(shape, device=device, generator=g).to(dtype)
    with torch.no_grad():
        ref = F.conv3d(x.double(), w.double(), padding=args.kernel // 2, groups=shape[1])

    rows = []
    for impl in impls:
        try:
            depthwise_conv3d(x, w, None, impl)  # warm up (cuFFT plans)
            t_fwd, y = _time(lambda: depthwise_conv3d(x, w, None, impl), device, repeats)

            def bwd():
                x.grad = w.grad = None
                out = depthwise_conv3d(x, w, None, impl)
                out.backward(grad)
                return out

            bwd()
            t_fb, _ = _time(bwd, device, repeats)
            err = ((y.double() - ref).abs().max() / ref.abs().max()).item()
            rows.append(f"| {impl} | {1e3 * t_fwd:.1f} | {1e3 * max(t_fb - t_fwd, 0):.1f} | {1e3 * t_fb:.1f} | {err:.1e} |")
        except Exception as exc:  # report rather than abort the table
            rows.append(f"| {impl} | failed: {type(exc).__name__}: {str(exc)[:80]} | | | |")
        print(rows[-1], flush=True)
    table = (
        f"Depthwise {args.kernel}^3 conv, 'same' zero padding, shape {shape}, {args.dtype}, device {device}, best of {repeats}\n\n"
        "| impl | forward (ms) | backward (ms, fwd+bwd minus fwd) | fwd+bwd (ms) | max rel. error vs float64 conv3d |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    record("bench_depthwise", table, notes=f"1-min load average at the end: {load:.1f}")


if __name__ == "__main__":
    main()
