"""VideoMAE speed: pretraining and embedding extraction, with FLOP counts.

Measures, for one configuration:

- pretraining step (90% tube masking, encoder on visible tokens + decoder + AdamW): samples/s
  and peak memory;
- forward+backward over all tokens (no masking), for comparison with the published encoder;
- embedding extraction (``transform``-style forward over all tokens, no grad): samples/s;

each in fp32 and bf16 autocast (bf16 only on CUDA). The analytic FLOP count (linear layers,
attention matmuls, patch embedding) gives model FLOPs utilization against a stated peak.

GPU (the paper's configuration, ViT-S/16, 16x224x224, batch 8, 4 channels)::

    python benchmarks/bench_videomae.py --config paper --device cuda

CPU (a small size)::

    python benchmarks/bench_videomae.py --config cpu-small --device cpu
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import record  # noqa: E402

from skphys._base import autocast, resolve_device  # noqa: E402
from skphys.nn.vit import VideoMAE  # noqa: E402

CONFIGS = {
    # the JEPA paper's VideoMAE ViT-S/16 on the reference input (REFERENCE.md section 4)
    "paper": dict(batch=8, channels=4, frames=16, size=224, patch=16, tubelet=2, dim=384, depth=12,
                  heads=6, dec_dim=192, dec_depth=4, dec_heads=3),
    "cpu-small": dict(batch=4, channels=4, frames=8, size=64, patch=16, tubelet=2, dim=192, depth=4,
                      heads=3, dec_dim=96, dec_depth=2, dec_heads=3),
}

# Published encoder on one H100 (REFERENCE.md section 4), samples/s
REFERENCE = {
    ("extract", "fp32"): 215.0,
    ("extract", "bf16"): 359.0,
    ("fwd+bwd all tokens", "fp32"): 77.0,
    ("fwd+bwd all tokens", "bf16"): 138.0,
}


def encoder_flops(n_tokens, dim, depth, mlp_ratio=4.0, in_per_token=0):
    """Forward FLOPs (2 per multiply-add) of a ViT encoder over ``n_tokens`` tokens.

    Returns ``(linear, attention, patch_embed)``: qkv + proj + MLP matmuls
    ``depth * 2 * L * (4 d^2 + 2 r d^2)``; attention scores and values ``depth * 4 * L^2 * d``;
    patch embedding ``2 * L * d * in_per_token``.
    """
    linear = depth * 2 * n_tokens * (4 * dim * dim + 2 * mlp_ratio * dim * dim)
    attention = depth * 4 * n_tokens * n_tokens * dim
    embed = 2 * n_tokens * dim * in_per_token
    return linear, attention, embed


def pretrain_flops(cfg, n_tokens, n_visible):
    """Forward FLOPs of one masked-pretraining sample: encoder on visible tokens, decoder on all."""
    in_per_token = cfg["channels"] * cfg["tubelet"] * cfg["patch"] ** 2
    lin, att, emb = encoder_flops(n_visible, cfg["dim"], cfg["depth"])
    emb = 2 * n_tokens * cfg["dim"] * in_per_token  # the patch embedding runs on every token
    dlin, datt, _ = encoder_flops(n_tokens, cfg["dec_dim"], cfg["dec_depth"])
    head = 2 * (n_tokens - n_visible) * cfg["dec_dim"] * in_per_token
    proj = 2 * n_visible * cfg["dim"] * cfg["dec_dim"]
    return lin + dlin + head + proj, att + datt, emb


def timed(fn, warmup, iters, device):
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / iters
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return dt, mem


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="override the batch size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak for MFU; default 989 (H100 bf16 dense) on CUDA")
    parser.add_argument("--mask-ratio", type=float, default=0.9)
    args = parser.parse_args(argv)

    cfg = dict(CONFIGS[args.config])
    if args.batch:
        cfg["batch"] = args.batch
    device = resolve_device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # honest fp32
    model = VideoMAE(cfg["channels"], patch_size=cfg["patch"], tubelet_size=cfg["tubelet"],
                     embed_dim=cfg["dim"], depth=cfg["depth"], n_heads=cfg["heads"],
                     decoder_embed_dim=cfg["dec_dim"], decoder_depth=cfg["dec_depth"],
                     decoder_n_heads=cfg["dec_heads"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=device.type == "cuda")
    b = cfg["batch"]
    x = torch.randn(b, cfg["channels"], cfg["frames"], cfg["size"], cfg["size"], device=device)
    grid = (cfg["frames"] // cfg["tubelet"], cfg["size"] // cfg["patch"], cfg["size"] // cfg["patch"])
    n_tok = math.prod(grid)
    n_space = grid[1] * grid[2]
    n_vis = grid[0] * (n_space - min(int(args.mask_ratio * n_space), n_space - 1))
    in_per_token = cfg["channels"] * cfg["tubelet"] * cfg["patch"] ** 2
    lin, att, emb = encoder_flops(n_tok, cfg["dim"], cfg["depth"], in_per_token=in_per_token)
    enc_fwd = lin + att + emb
    p_lin, p_att, p_emb = pretrain_flops(cfg, n_tok, n_vis)
    pre_fwd = p_lin + p_att + p_emb
    peak = args.peak_tflops or (989.0 if device.type == "cuda" else None)

    gen = torch.Generator(device=device)
    gen.manual_seed(0)

    def pretrain_step(amp):
        def step():
            with autocast(device, amp):
                loss = model.loss(x, mask_ratio=args.mask_ratio, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    def fwdbwd(amp):
        def step():
            with autocast(device, amp):
                out = model(x)
            out.float().square().mean().backward()
            model.zero_grad(set_to_none=True)
        return step

    def extract(amp):
        def step():
            with torch.inference_mode(), autocast(device, amp):
                model(x).float().cpu() if device.type == "cpu" else model(x).float()
        return step

    modes = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
    rows = []
    for task, make, flops in [
        ("pretrain (mask 0.9)", pretrain_step, 3 * pre_fwd),
        ("fwd+bwd all tokens", fwdbwd, 3 * enc_fwd),
        ("extract", extract, enc_fwd),
    ]:
        for mode in modes:
            amp = mode == "bf16"
            model.train(task != "extract")
            dt, mem = timed(make(amp), args.warmup, args.iters, device)
            sps = b / dt
            achieved = flops * sps / 1e9
            ref = REFERENCE.get((task, mode)) if args.config == "paper" else None
            rows.append((task, mode, f"{dt * 1e3:.1f}", f"{sps:.1f}",
                         "" if math.isnan(mem) else f"{mem:.1f}", f"{flops / 1e9:.1f}",
                         f"{achieved:.1f}", f"{100 * achieved / (peak * 1e3):.1f}%" if peak and mode == "bf16" else "",
                         f"{ref:.0f}" if ref else ""))

    header = ("| task | precision | step ms | samples/s | peak GiB | GFLOP/sample | achieved GFLOP/s | MFU (bf16 peak) "
              "| published encoder samples/s |\n|---|---|---|---|---|---|---|---|---|\n")
    table = header + "\n".join("| " + " | ".join(r) + " |" for r in rows)
    table += (
        f"\n\nFLOPs per sample (forward, 2 per multiply-add): encoder over all {n_tok} tokens "
        f"{enc_fwd / 1e9:.1f} GFLOP = linear {lin / 1e9:.1f} + attention {att / 1e9:.1f} + patch embedding "
        f"{emb / 1e9:.1f}; masked pretraining ({n_vis} visible tokens, decoder over {n_tok}) "
        f"{pre_fwd / 1e9:.1f} GFLOP = linear {p_lin / 1e9:.1f} + attention {p_att / 1e9:.1f} + embedding "
        f"{p_emb / 1e9:.1f}. Training FLOPs are counted as 3x forward."
    )
    notes = (f"config {args.config}: batch {b}, {cfg['channels']} channels, {cfg['frames']}x{cfg['size']}x{cfg['size']}, "
             f"patch {cfg['patch']}, tubelet {cfg['tubelet']}, width {cfg['dim']}, depth {cfg['depth']}, "
             f"heads {cfg['heads']}; decoder {cfg['dec_dim']}x{cfg['dec_depth']}; "
             f"attention via F.scaled_dot_product_attention; TF32 off for fp32; "
             f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    record("videomae", table, notes)
    return rows


if __name__ == "__main__":
    main()
