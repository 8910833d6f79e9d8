"""MPP and DISCO speed: pretraining and embedding extraction, FLOPs, and DISCO's solver steps.

Measures, for each model at one configuration:

- pretraining step (the estimator's own objective, forward + backward + AdamW) on a fixed batch:
  samples/s and peak memory; and the FLOPs of the objective's forward counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions and fused attention
  as executed, so DISCO's count includes every forward solver step it took; the adjoint's
  backward solve is not counted: the counter cannot follow its ``autograd.grad`` calls);
- embedding extraction (``transform``'s forward, no grad): samples/s and FLOPs per sample;
- for DISCO, the adaptive solver's steps per sample in the measured steps (its cost grows with
  them).

Inputs are smooth random fields (cumulative sums of noise, then standardized), so DISCO's step
counts are those of an untrained model on such fields; the quick fits in tests/test_disco.py
record 3 to 3.5 steps per sample on shear flow (``history_["solver_steps"]``).

GPU (the paper's configuration: 16 frames of 224x224, 4 channels, MPP-Ti and DISCO at
patch 16)::

    python benchmarks/bench_baselines.py --config paper --device cuda

CPU (tiny)::

    python benchmarks/bench_baselines.py --config tiny --device cpu
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import record  # noqa: E402

from skphys import DISCOEmbedder, MPPEmbedder  # noqa: E402
from skphys._base import autocast, resolve_device  # noqa: E402

CONFIGS = {
    "paper": dict(batch=8, channels=4, frames=16, size=224,
                  mpp=dict(patch_size=16, embed_dim=192, depth=12, n_heads=3),
                  disco=dict(patch_size=16, embed_dim=384, depth=12, n_heads=6)),
    "tiny": dict(batch=4, channels=4, frames=4, size=32,
                 mpp=dict(patch_size=8, embed_dim=48, depth=1, n_heads=4),
                 disco=dict(patch_size=8, embed_dim=48, depth=1, n_heads=4)),
}


def _data(cfg, seed=0):
    rng = np.random.default_rng(seed)
    shape = (cfg["batch"], cfg["frames"] + 1, cfg["size"], cfg["size"], cfg["channels"])
    x = rng.normal(size=shape).astype(np.float32)
    x = np.cumsum(np.cumsum(np.cumsum(x, axis=1), axis=2), axis=3)  # smooth in time and space
    return (x - x.mean()) / x.std()


def _flops(fn):
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _peak_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def bench(name, est, X, device, n_steps, n_warmup=1):
    est._setup(X, None)
    torch.manual_seed(0)
    module = est._build_modules()["module_"].to(device).train()
    modules = {"module_": module}
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    win = torch.from_numpy(X).to(device).movedim(-1, 1)
    logs_all = []

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device):
            loss, logs = est._loss(modules, win, None)
        loss.backward()
        opt.step()
        logs_all.append({k: float(v) for k, v in logs.items()})

    for _ in range(n_warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_sps = n_steps * len(X) / (time.perf_counter() - t0)
    peak = _peak_mb(device)

    def forward_loss():
        with torch.no_grad(), autocast(device):
            est._loss(modules, win, None)

    # forward of the objective only: FlopCounterMode cannot follow the adjoint's autograd.grad
    # calls inside DISCO's backward (a training step is roughly 3x its forward for MPP; for DISCO
    # the backward is the adjoint solve, whose steps are not counted here)
    train_flops = _flops(forward_loss) / len(X)
    module.eval()
    ctx = win[:, :, : est.n_frames]
    tokens = (lambda: module.latent(ctx)) if name == "DISCO" else (lambda: module.tokens(ctx))

    def extract():
        with torch.inference_mode(), autocast(device):
            tokens()

    extract()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n_steps):
        extract()
    if device.type == "cuda":
        torch.cuda.synchronize()
    extract_sps = n_steps * len(X) / (time.perf_counter() - t0)
    extract_flops = _flops(extract) / len(X)
    steps = np.mean([r["solver_steps"] for r in logs_all]) if name == "DISCO" else float("nan")
    n_params = sum(p.numel() for p in module.parameters())
    return dict(model=name, params=n_params, train_sps=train_sps, train_gflop=train_flops / 1e9, peak_mb=peak,
                extract_sps=extract_sps, extract_gflop=extract_flops / 1e9, solver_steps=steps)


def _fmt_steps(steps):
    return "" if np.isnan(steps) else f"{steps:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = CONFIGS[args.config]
    X = _data(cfg)
    rows = []
    common = dict(n_frames=cfg["frames"], batch_size=cfg["batch"], device=str(device), random_state=0)
    rows.append(bench("MPP", MPPEmbedder(**cfg["mpp"], **common), X, device, args.steps))
    rows.append(bench("DISCO", DISCOEmbedder(**cfg["disco"], **common), X, device, args.steps))
    head = ("| model | params | pretrain samples/s | pretrain fwd GFLOP/sample | peak MB | extract samples/s "
            "| extract GFLOP/sample | DISCO solver steps/sample |\n|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['train_sps']:.2f} | {r['train_gflop']:.3f} | "
        f"{r['peak_mb']:.0f} | {r['extract_sps']:.1f} | {r['extract_gflop']:.3f} | "
        f"{_fmt_steps(r['solver_steps'])} |\n"
        for r in rows
    )
    notes = (f"config {args.config}: batch {cfg['batch']}, {cfg['frames']} frames of {cfg['size']}x{cfg['size']}, "
             f"{cfg['channels']} channels; {args.steps} timed steps after 1 warm-up; bf16 autocast on CUDA only; "
             "peak MB is torch's peak allocation on CUDA, the process's peak RSS on the CPU; "
             "DISCO steps are of an untrained model on smooth random fields")
    record("baselines", head + body, notes)


if __name__ == "__main__":
    main()
