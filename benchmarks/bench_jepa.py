"""JEPA pretraining throughput: step time, samples/s and peak memory.

One step = encoder on context and target windows + predictor + VICReg + AdamW, exactly the step
``JEPAEmbedder.fit`` runs (``skphys.nn.jepa.jepa_loss`` inside ``skphys._training.train``), on
random inputs already on the device.

GPU (paper configuration, batch 8, 4 channels, 16x224x224, paper architecture):
    python benchmarks/bench_jepa.py --device cuda
compares depthwise formulations and fp32/bf16 beside the reference code's 1.49 s/step,
5.4 samples/s and 44.8 GiB on one H100 (REFERENCE.md section 4).
CPU (small size: batch 8, 4 channels, 16x32x32, paper architecture):
    python benchmarks/bench_jepa.py
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _record import record  # noqa: E402

from skphys._base import resolve_device  # noqa: E402
from skphys.nn.jepa import jepa_loss  # noqa: E402
from skphys._training import train  # noqa: E402
from skphys.nn.convnext3d import ConvNeXtEncoder3d, JEPAPredictor  # noqa: E402


def run_config(device, batch, channels, frames, size, dw_impl, amp, steps, warmup, widths, depths):
    torch.manual_seed(0)
    enc = ConvNeXtEncoder3d(channels, widths, depths, n_frames=frames, dw_impl=dw_impl).to(device)
    pred = JEPAPredictor(widths[-1], 2 * widths[-1], dw_impl=dw_impl).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    win = torch.randn(batch, channels, 2 * frames, size, size, device=device, generator=g)
    params = list(enc.parameters()) + list(pred.parameters())

    def loss_fn(w):
        return jepa_loss(enc, pred, w, frames, generator=g)

    def run(n):
        return train(params, loss_fn, lambda e: [win] * n, max_epochs=1, steps_per_epoch=n, lr=1e-4,
                     weight_decay=0.05, betas=(0.9, 0.95), device=device, amp=amp)

    run(warmup)  # cuFFT plans, cuDNN autotuning, allocator warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    hist = run(steps)  # the loop syncs once at the end of the epoch
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / steps
    if device.type == "cuda":
        mem = torch.cuda.max_memory_allocated() / 2**30
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (GiB)
    return dt, batch / dt, mem, hist[-1]["loss"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=None, help="H = W (default 224 on GPU, 32 on CPU)")
    p.add_argument("--configs", default=None,
                   help="comma-separated dw_impl:precision, e.g. conv3d:fp32,fft:bf16 (default depends on the device)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 5 GPU, 2 CPU)")
    p.add_argument("--widths", default="16,32,64,128,128")
    p.add_argument("--depths", default="3,3,3,9,3")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    size = args.size or (224 if gpu else 32)
    steps = args.steps or (5 if gpu else 2)
    if args.configs:
        configs = [c.split(":") for c in args.configs.split(",")]
    elif gpu:
        configs = [["conv3d", "fp32"], ["fft", "fp32"], ["fft", "bf16"], ["auto", "bf16"]]
    else:
        configs = [["conv3d", "fp32"], ["fft", "fp32"]]
    widths = tuple(int(v) for v in args.widths.split(","))
    depths = tuple(int(v) for v in args.depths.split(","))

    rows = []
    if gpu and (args.batch, args.channels, args.frames, size) == (8, 4, 16, 224):
        rows.append("| reference code (REFERENCE.md sec. 4, H100, fp32) | 1490 | 5.4 | 44.8 | |")
    for impl, prec in configs:
        try:
            dt, sps, mem, loss = run_config(device, args.batch, args.channels, args.frames, size, impl,
                                            prec == "bf16", steps, 1, widths, depths)
            rows.append(f"| skphys, dw_impl={impl}, {prec} | {1e3 * dt:.0f} | {sps:.2f} | {mem:.2f} | {loss:.3f} |")
        except Exception as exc:
            rows.append(f"| skphys, dw_impl={impl}, {prec} | failed: {type(exc).__name__}: {str(exc)[:80]} | | | |")
        print(rows[-1], flush=True)
        if gpu:
            torch.cuda.empty_cache()
    mem_label = "peak GPU memory (GiB)" if gpu else "process peak RSS (GiB)"
    table = (
        f"JEPA pretraining step, batch {args.batch}, {args.channels} channels, {args.frames}x{size}x{size} "
        f"(context + target = {2 * args.frames} frames), widths {widths}, depths {depths}, device {device}, "
        f"mean of {steps} steps after 1 warm-up step\n\n"
        f"| configuration | step (ms) | samples/s | {mem_label} | last loss |\n|---|---|---|---|---|\n" + "\n".join(rows)
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    record("bench_jepa", table, notes=f"1-min load average at the end: {load:.1f}")


if __name__ == "__main__":
    main()
