"""Training throughput of DynamicsVAE against the published code's speed.

Configuration of REFERENCE.md section 4 (KS): batch 50, encoder crop 64x94, target crop 32 frames
(31 propagation steps) x 76 points, 5 latents, 16 hidden decoder channels. One timed step =
random crop gather on the device + encoder + 31 decoder steps + MSE/KL + backward + Adam step.

Variants (timed in interleaved rounds, one step of each per round, median reported, so that a
change in the machine's load affects all alike):

- ``published code``: the published repository's own ``models/pde1d.py`` (``PDEAutoEncoder``,
  loaded at run time from a checkout or git directory of peterparity/PDE-VAE-pytorch, see
  ``_published_vae.py``; nothing of it is copied into skphys) with ``run.py``'s loss and Adam, its
  weights copied from skphys's module so that loss and gradients can be compared; its crops are
  contiguous (N, C, T, X) tensors, as its ``.npz`` data loader delivers them. Without the
  repository the row is left out and its recorded speed (REFERENCE.md) is quoted instead;
- ``reference``: skphys's module with the dynamic convolution by unfold + bmm (the published
  code's formulation), fp32;
- ``strided-view bmm``: kernel windows as a strided view, one copy and one ``baddbmm`` per layer
  (``skphys.nn.dynamics_vae.dynamic_conv``); ``F.unfold`` and cuDNN's grouped convolution loop
  over the batch internally. skphys gathers its crops from (N, T, X, C) data, so the encoder's
  convolutions run channels-last (oneDNN's fast layout on the CPU). Since 2026-12-02 both skphys
  rows train the encoder through its CPU path (``DynamicsEncoder.forward``): convolution and
  in-place ReLU as one autograd function whose backward computes the input and the weight
  gradients in two oneDNN calls (one joint call ran 1.07-1.45x slower), and both heads as one GEMM;
- ``single backward``: the same, with the loss built inside
  ``skphys.nn.dynamics_vae.single_backward()``, as ``DynamicsVAE.fit`` does since 2026-12-03: each
  encoder layer's backward writes its activation gradient into the layer's saved output instead of
  a new tensor (at this configuration 51 + 28 MB fewer freshly faulted pages per step);
- on CUDA: the same with the whole step (forward, backward, AdamW) captured as a CUDA graph and
  replayed (``skphys._training.train(cuda_graph=True)``, what ``DynamicsVAE.fit`` does), fp32
  and bf16;
- (CPU, tried and dropped: a channels-last encoder (1.3x on the encoder alone with contiguous
  NCHW inputs, but no gain in the whole training step: 950-990 ms either way, each in its own
  process; crops gathered from (N, T, X, C) data already lead oneDNN to channels-last when C=1),
  FFT convolution for the encoder (2.4-3.4x fewer multiply-adds, but
  2-3x slower: 2050 batched 50x64x64 complex products run at a third of the GEMM rate),
  space-to-batch for the dilations (slower), a hand-written backward for the dynamic convolution
  (~20% of the decoder, ~2% of the step));
- ``--compile``: ``torch.compile`` variants, for comparison.

The notes also give the FLOPs of one step (convolutions and matmuls, forward and backward,
counted by ``torch.utils.flop_counter``) and, on the CPU, the machine's measured fp32 GEMM rate:
their ratio is the arithmetic floor of a step on that machine, whatever the implementation.

The "equal results" column compares the loss and all gradients of each variant with the
reference on the same parameters and inputs (max relative difference of the gradient vectors).

Usage::

    python benchmarks/bench_dynamics_vae.py --device auto          # GPU if present
    python benchmarks/bench_dynamics_vae.py --device cpu --steps 3
    python benchmarks/bench_dynamics_vae.py --fit-scaling 3       # fit, 1 x 2 threads vs torchrun 2 x 1
    python benchmarks/bench_dynamics_vae.py --small --threads 1 --compile yes  # BetaPathVAE's model
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _published_vae import find_repo, grads_in_published_order, load_pde1d, published_like, published_loss  # noqa: E402
from _record import record  # noqa: E402

from skphys._base import autocast, resolve_device  # noqa: E402
from skphys._training import _CapturedStep  # noqa: E402
import skphys.nn.dynamics_vae as dv  # noqa: E402
from skphys.nn.dynamics_vae import DynamicsVAEModule, kl_standard_normal, single_backward  # noqa: E402

REF_GPU = 656.0  # samples/s, published code on one H100 (REFERENCE.md section 4)
REF_CPU = 76.0  # samples/s, published code on 2 CPU cores


def crop_sampler(data, device, batch, contiguous=False):
    """``crops(size)``: ``batch`` random (N, C, t, x) crops of ``size`` from ``data`` (N, T, X, C),
    periodic in x, from a generator seeded with 0; ``contiguous`` copies them to the NCHW layout
    (the published loader's) instead of the channels-last view skphys's sampler gives."""
    n, T, X, _ = data.shape
    gen = torch.Generator(device=device)
    gen.manual_seed(0)

    def crops(size):
        idx = torch.randint(0, n, (batch,), device=device, generator=gen)
        t0 = torch.randint(0, T - size[0] + 1, (batch,), device=device, generator=gen)
        x0 = torch.randint(0, X, (batch,), device=device, generator=gen)
        ti = (t0[:, None] + torch.arange(size[0], device=device))[:, :, None]
        xi = ((x0[:, None] + torch.arange(size[1], device=device)) % X)[:, None, :]
        out = data[idx[:, None, None], ti, xi].movedim(-1, 1)
        return out.contiguous() if contiguous else out

    return crops


def make_step(module, data, *, bf16, compiled, device, compile_mode=None, graph=False, single=False,
              batch=50, enc=(64, 94), dec=(32, 76), beta=0.02):
    crops = crop_sampler(data, device, batch)

    def loss_fn(x, t):
        return _loss(module, x, t, dec, beta, single)

    fn = torch.compile(loss_fn, mode=compile_mode) if compiled else loss_fn
    if graph:  # exactly what skphys._training.train(cuda_graph=True) does for DynamicsVAE.fit
        opt = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=0.0, fused=True, capturable=True)

        def inner(b):
            opt.zero_grad(set_to_none=False)
            with autocast(device, bf16):
                loss = fn(*b)
            loss.backward()
            opt.step()
            return loss, {}

        side = torch.cuda.Stream(device)
        for _ in range(3):
            b = (crops(enc), crops(dec))
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                inner(b)
            torch.cuda.current_stream().wait_stream(side)
        captured = _CapturedStep(inner, (crops(enc), crops(dec)))

        def step():
            return captured.replay((crops(enc), crops(dec)))[0]

        return step, fn
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)

    def step():
        x, t = crops(enc), crops(dec)
        with autocast(device, bf16):
            loss = fn(x, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step, fn


def _loss(module, x, t, dec=(32, 76), beta=0.02, single=False):
    """The PDE-VAE loss on one batch; ``single``: built inside ``single_backward()``, as
    ``DynamicsVAE.fit`` builds it (the graph gets one backward)."""
    with single_backward() if single else contextlib.nullcontext():
        pred, target, mu, logvar = module(x, t, dec[0] - 1, boundary="crop")
    return torch.mean((pred.float() - target.float()) ** 2) + beta * kl_standard_normal(mu, logvar).mean()


def step_flops(module, x, t):
    """FLOPs of one forward + backward (convolutions and matmuls), by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        _loss(module, x, t).backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def widest_layer_rates(device, n=3):
    """Best-of-``n`` fp32 rates (FLOP/s) of the encoder's widest layer (64 -> 64, 3x3, dilation 8,
    batch 50 of 50 x 80 inputs, channels-last) with oneDNN: forward, input gradient alone,
    weight gradient alone, and both gradients in one ``convolution_backward`` call."""
    x = torch.randn(50, 64, 50, 80, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3, device=device)
    g = torch.randn(50, 64, 34, 64, device=device).contiguous(memory_format=torch.channels_last)
    flops = 2 * 50 * 34 * 64 * 64 * 64 * 9
    args = (g, x, w, None, [1, 1], [0, 0], [8, 8], False, [0, 0], 1)
    cb = torch.ops.aten.convolution_backward
    calls = {
        "forward": (lambda: F.conv2d(x, w, dilation=8), flops),
        "input gradient": (lambda: cb(*args, [True, False, False]), flops),
        "weight gradient": (lambda: cb(*args, [False, True, False]), flops),
        "both gradients, one call": (lambda: cb(*args, [True, True, False]), 2 * flops),
    }
    rates = {}
    for name, (fn, fl) in calls.items():
        best = float("inf")
        for _ in range(n + 1):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        rates[name] = fl / best
    return rates


def winograd_bound(device, n=3):
    """A lower bound, in seconds (best of ``n``), for the widest layer's forward and backward
    by Winograd F(2x2, 3x3), which needs 2.25x fewer multiplies than the direct convolution.

    Its 34 x 64 outputs per sample form 17 x 32 tiles of 2 x 2 (on the dilation-8 lattice), so
    a batch of 50 has P = 27,200 tiles. The forward is 16 batched GEMMs (16 x [P x 64] @ [64 x
    64]) between an input transform that writes a (16, P, 64) tensor and an output transform
    that reads one back; the backward is two such GEMM sets (input gradient: [P x 64] @ [64 x 64];
    weight gradient: [64 x P] @ [P x 64]) with the same traffic for the gradient's transforms.
    Any implementation that is not fused (torch operations, not a hand-written kernel) moves at
    least one read and one write of that 111 MB tensor per transform pair, timed here as a copy.
    Returns ``{"forward GEMMs", "backward GEMMs", "one 111 MB copy", "direct forward", "direct
    backward"}``; the last two are oneDNN's channels-last forward and backward (both gradients,
    one call) of the same layer, for comparison."""
    P = 50 * 17 * 32
    u = torch.randn(16, P, 64, device=device)
    m = torch.randn(16, P, 64, device=device)
    w = torch.randn(16, 64, 64, device=device)
    out = torch.empty_like(u)
    x = torch.randn(50, 64, 50, 80, device=device).contiguous(memory_format=torch.channels_last)
    wc = torch.randn(64, 64, 3, 3, device=device)
    g = torch.randn(50, 64, 34, 64, device=device).contiguous(memory_format=torch.channels_last)
    calls = {
        "forward GEMMs": lambda: torch.bmm(u, w, out=out),
        "backward GEMMs": lambda: (torch.bmm(m, w.transpose(1, 2), out=out), torch.bmm(u.transpose(1, 2), m)),
        "one 111 MB copy": lambda: out.copy_(u),
        "direct forward": lambda: F.conv2d(x, wc, dilation=8),
        "direct backward": lambda: torch.ops.aten.convolution_backward(
            g, x, wc, None, [1, 1], [0, 0], [8, 8], False, [0, 0], 1, [True, True, False]),
    }
    best = {}
    for name, fn in calls.items():
        best[name] = float("inf")
        for _ in range(n + 1):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def gemm_rate(device, n=3):
    """Best-of-``n`` fp32 GEMM rate (FLOP/s) of a convolution-sized product on ``device``."""
    a = torch.randn(4096, 576, device=device)
    b = torch.randn(576, 2048, device=device)
    best = float("inf")
    for _ in range(n + 1):
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * 4096 * 576 * 2048 / best


def square_gemm_rates(n=15):
    """fp32 ``torch.matmul`` of two 2048 x 2048 matrices on the CPU with the current thread count
    and with one thread: ``{threads: (median, best)}`` in FLOP/s over ``n`` calls after 3 warm-up
    calls (the method the docs use for this machine's peak)."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    threads = torch.get_num_threads()
    out = {}
    for k in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(k)
        for _ in range(3):
            a @ b
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            a @ b
            ts.append(time.perf_counter() - t0)
        out[k] = (2 * 2048**3 / statistics.median(ts), 2 * 2048**3 / min(ts))
    torch.set_num_threads(threads)
    return out


def grads_of(module, loss_fn, x, t, bf16, device):
    module.zero_grad(set_to_none=True)
    with autocast(device, bf16):
        loss = loss_fn(x, t)
    loss.backward()
    g = torch.cat([p.grad.flatten().float() for p in module.parameters() if p.grad is not None])
    return float(loss.detach()), g


def published_step(model, data, *, device, batch=50, enc=(64, 94), dec=(32, 76), beta=0.02):
    """One training step of the published code: its ``PDEAutoEncoder`` and ``run.py``'s loss and
    optimizer (Adam, lr 1e-3, eps 1e-8), on crops laid out as its data loader delivers them
    (contiguous (N, C, T, X), the layout of its ``.npz`` arrays)."""
    crops = crop_sampler(data, device, batch, contiguous=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)

    def step():
        loss = published_loss(model, crops(enc), crops(dec), beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.detach()

    return step


_FIT = r"""
import os, sys, time, numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
import skphys
epochs = int(sys.argv[2])
X = np.random.default_rng(0).normal(size=(100, 128, 256, 1)).astype("float32")  # 2 steps of batch 50 an epoch
est = skphys.DynamicsVAE(batch_size=50, max_epochs=1 + epochs, device="cpu", random_state=0).fit(X)  # KS config
if int(os.environ.get("RANK", 0)) == 0:  # epochs after the first (warm-up), 2 steps each
    print("STEP_SECONDS", float(np.median([h["dur"] for h in est.history_[1:]])) / 2)
"""


def fit_step_seconds(nproc, threads, epochs=3):
    """Seconds per training step of ``DynamicsVAE.fit`` (batch 50, KS configuration) with
    ``nproc`` processes (``torchrun``, gloo) of ``threads`` torch threads each; set-up and the
    final encoding of the data are not counted (difference of a 1-epoch and a (1 + epochs)-epoch fit)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "fit_vae.py")
        with open(script, "w") as fh:
            fh.write(_FIT)
        cmd = [sys.executable, script, str(threads), str(epochs)]
        if nproc > 1:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] + cmd[1:]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("STEP_SECONDS")]
    if not line:
        raise RuntimeError(out.stderr[-3000:])
    return float(line[0].split()[1])


def fit_scaling(published, repeats):
    """``DynamicsVAE.fit``'s step with 1 process x 2 threads and with torchrun 2 processes x 1 thread
    (the result is the same either way: the engine's torchrun equality tests), alternated with the
    published code's step (2 threads, in this process) ``repeats`` times; medians."""
    configs = [(1, 2), (2, 1)]
    times = {c: [] for c in configs}
    pub = []
    torch.set_num_threads(2)
    for _ in range(repeats):
        if published is not None:
            published()  # untimed: caches warm after the subprocesses
            t0 = time.perf_counter()
            published()
            pub.append(time.perf_counter() - t0)
        for nproc, threads in configs:
            times[(nproc, threads)].append(fit_step_seconds(nproc, threads))
    t_pub = statistics.median(pub) if pub else 50 / REF_CPU
    lines = ["| training step | ms (median) | samples/s | vs published code |", "|---|---|---|---|"]
    if pub:
        lines.append(f"| published code, 1 process x 2 threads | {t_pub * 1e3:.0f} | {50 / t_pub:.0f} | 1.00x |")
    for (nproc, threads), ts in times.items():
        dt = statistics.median(ts)
        how = "DynamicsVAE.fit" if nproc == 1 else f"DynamicsVAE.fit under torchrun --nproc-per-node {nproc}"
        lines.append(f"| {how}, {nproc} process(es) x {threads} thread(s) | {dt * 1e3:.0f} | {50 / dt:.0f} | "
                     f"{t_pub / dt:.2f}x |")
    record("dynamics_vae", "\n".join(lines), (
        f"whole fit steps at the KS configuration (batch 50 = 2 x 25 under torchrun, gloo on the CPU); "
        f"{repeats} alternating repeats, each fit step time = median epoch duration (history_ 'dur', epochs 2-4) / 2 steps; "
        + ("published code's step measured in this run between the fits" if pub else
           f"published code not available: its recorded {REF_CPU:.0f} samples/s quoted")
        + f"; 1-minute load average at the end {os.getloadavg()[0]:.2f}"))


def small_config(steps, compile_):
    """Time the small identification configuration (``BetaPathVAE()``'s default model,
    ``skphys._beta_path.SMALL_1D``, one channel) on this machine: the whole training step (loss,
    backward, AdamW as ``DynamicsVAE.fit`` builds it on the CPU) and its parts, in interleaved
    rounds, medians of ``steps``. Crops have the layout ``fit`` gathers (from (N, T, X, C) data,
    so the encoder runs channels-last). AdamW both as ``fit`` runs it on the CPU (``foreach=True``)
    and as PyTorch's CPU default (a loop over tensors), checked here to give the same parameters
    bit for bit; with ``compile_``, also ``torch.compile`` of the loss."""
    from skphys._beta_path import SMALL_1D

    torch.manual_seed(0)
    module = DynamicsVAEModule(
        1, 5, 1, hidden_channels=SMALL_1D["hidden_channels"], kernel_size=5, output_scale=SMALL_1D["output_scale"],
        encoder_widths=SMALL_1D["encoder_widths"], position_dropout=SMALL_1D["position_dropout"],
    ).train()
    b, (te, xe), xd, n = SMALL_1D["batch_size"], SMALL_1D["encoder_crop"], SMALL_1D["decoder_crop"], SMALL_1D["rollout_steps"]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(b, te, xe, 1, generator=gen).permute(0, 3, 1, 2)
    t = torch.randn(b, n + 1, xd, 1, generator=gen).permute(0, 3, 1, 2)
    beta = 2.5e-4

    def adam(foreach):
        return torch.optim.AdamW(module.parameters(), lr=SMALL_1D["lr"], weight_decay=0.0, foreach=foreach)

    opt_loop, opt_foreach = adam(False), adam(True)
    loss_fn = module.loss
    # before 2026-12-03 (sixth session): the encoder's layers ran whole on the 32-frame crops
    # and the decoder's first layer multiplied a view of overlapping windows (one data channel)
    before = copy.deepcopy(module)
    before.encoder._pyramid_plan = lambda shape: None
    opt_before = torch.optim.AdamW(before.parameters(), lr=SMALL_1D["lr"], weight_decay=0.0, foreach=True)

    def view_columns_conv(x, weight, bias=None):
        B, c_out, ks = x.shape[0], weight.shape[1], weight.shape[3:]
        v = x
        for axis, k in enumerate(ks):
            v = v.unfold(2 + axis, k, 1)
        out_space = v.shape[2:2 + len(ks)]
        perm = [0, 1, *range(2 + len(ks), 2 + 2 * len(ks)), *range(2, 2 + len(ks))]
        cols = v.permute(perm).reshape(B, -1, math.prod(out_space))  # no .contiguous()
        w = weight.reshape(B, c_out, -1)
        out = torch.bmm(w, cols) if bias is None else torch.baddbmm(bias.unsqueeze(-1), w, cols)
        return out.reshape(B, c_out, *out_space)

    def with_view_columns(fn):
        def run():
            saved = dv.dynamic_conv
            dv.dynamic_conv = view_columns_conv
            try:
                fn()
            finally:
                dv.dynamic_conv = saved
        return run

    # the same loss and gradients, to float rounding, on the same parameters and batch
    eps = torch.randn(b, 5, generator=gen)
    grads = []
    for m, fn in ((module, lambda: module.loss(x, t, n, beta, eps=eps)[0].backward()),
                  (before, with_view_columns(lambda: before.loss(x, t, n, beta, eps=eps)[0].backward()))):
        m.zero_grad(set_to_none=True)
        fn()
        grads.append(torch.cat([q.grad.flatten() for q in m.parameters()]))
        m.zero_grad(set_to_none=True)
    grad_diff = ((grads[0] - grads[1]).norm() / grads[1].norm()).item()
    compiled = torch.compile(module.loss) if compile_ else None
    z = torch.randn(b, 5, generator=gen, requires_grad=True)
    p = module.decoder.pad

    def step(opt, fn=loss_fn):
        def run():
            opt.zero_grad(set_to_none=True)
            fn(x, t, n, beta)[0].backward()
            opt.step()
        return run

    def encoder(m):
        def run():
            mu, logvar = m.encode(x)
            (mu.sum() + logvar.sum()).backward()
        return run

    def decoder(m):
        def run():
            m.decoder(t[:, :, 0, p:-p], z, n, "crop", edges=t).square().sum().backward()
        return run

    def adam_only(opt):
        def run():
            for q in module.parameters():
                q.grad = torch.ones_like(q) * 1e-3
            opt.step()
        return run

    parts = {
        "training step as before the sixth session (encoder layers whole, decoder columns a view; AdamW foreach)":
            with_view_columns(step(opt_before, before.loss)),
        "training step (AdamW for-loop, PyTorch's CPU default)": step(opt_loop),
        "training step (AdamW foreach, what fit runs since 2026-12-03)": step(opt_foreach),
        "encoder forward + backward (frame pyramid, what fit runs)": encoder(module),
        "encoder forward + backward, layers whole (before)": encoder(before),
        "decoder forward + backward (8 steps)": decoder(module),
        "decoder forward + backward, columns a view (before)": with_view_columns(decoder(before)),
        "AdamW step alone, for-loop": adam_only(opt_loop),
        "AdamW step alone, foreach": adam_only(opt_foreach),
    }
    if compiled is not None:
        parts["training step, torch.compile of the loss"] = step(opt_loop, compiled)
    for fn in parts.values():
        for _ in range(5):
            fn()
    times = {k: [] for k in parts}
    for _ in range(steps):
        for k, fn in parts.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)

    # the two AdamW implementations give the same parameters
    copies = {}
    for name, foreach in (("loop", False), ("foreach", True)):
        m2 = copy.deepcopy(module)
        o = torch.optim.AdamW(m2.parameters(), lr=SMALL_1D["lr"], weight_decay=0.01, foreach=foreach)
        g2 = torch.Generator().manual_seed(2)
        for _ in range(20):
            for q in m2.parameters():
                q.grad = torch.randn(q.shape, generator=g2)
            o.step()
        copies[name] = torch.cat([q.detach().flatten() for q in m2.parameters()])
    same = bool(torch.equal(copies["loop"], copies["foreach"]))
    lines = ["| part | ms (median) |", "|---|---|"]
    lines += [f"| {k} | {statistics.median(v) * 1e3:.2f} |" for k, v in times.items()]
    notes = (
        f"small identification configuration (BetaPathVAE()'s default model: batch {b}, encoder crop {te}x{xe}, "
        f"widths {SMALL_1D['encoder_widths']}, decoder crop {xd}, {n} rollout steps, {SMALL_1D['hidden_channels']} "
        f"hidden channels, beta {beta:g}); torch threads {torch.get_num_threads()}; {steps} interleaved rounds after "
        f"5 warm-up calls, medians; AdamW foreach gives the same parameters as the for-loop bit for bit: {same} "
        f"(20 steps, weight decay 0.01); gradients of the step as before vs now, same parameters and batch: "
        f"relative difference {grad_diff:.1e}"
    )
    record("dynamics_vae", "\n".join(lines), notes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 50 GPU, 7 CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (default 10 GPU, 1 CPU)")
    ap.add_argument("--compile", choices=["auto", "yes", "no"], default="no", help="also time torch.compile variants (auto: on CUDA only)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--published-repo", default=None,
                    help="checkout or git directory of peterparity/PDE-VAE-pytorch (default: $SKPHYS_PDE_VAE_REPO, "
                    "then the project's mirror); without one the published code's recorded speed is quoted")
    ap.add_argument("--profile", default=None, help="print a torch.profiler table for the variant with this exact name")
    ap.add_argument(
        "--only", default=None,
        help="comma-separated substrings; time only variants whose name contains one (the first variant "
        "is always run for the equality check)",
    )
    ap.add_argument("--fit-scaling", type=int, default=0, metavar="REPEATS",
                    help="instead: time DynamicsVAE.fit's steps with 1 process x 2 threads and torchrun 2 x 1 "
                    "(CPU), alternated with the published code's step, REPEATS times")
    ap.add_argument("--small", action="store_true",
                    help="instead: time the small identification configuration (BetaPathVAE()'s default model) "
                    "and its parts; with --compile yes also torch.compile of its loss")
    args = ap.parse_args(argv)
    if args.small:
        if args.threads:
            torch.set_num_threads(args.threads)
        small_config(args.steps or 100, args.compile == "yes")
        return
    if args.fit_scaling:
        repo = find_repo(args.published_repo)
        published = None
        if repo:
            torch.manual_seed(0)
            base = DynamicsVAEModule(1, n_latents=5, n_spatial_dims=1, hidden_channels=16).train()
            model = published_like(load_pde1d(repo), base).train()
            published = published_step(model, torch.randn(200, 256, 256, 1), device=torch.device("cpu"))
        fit_scaling(published, args.fit_scaling)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    steps = args.steps or (50 if cuda else 7)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    use_compile = args.compile == "yes" or (args.compile == "auto" and cuda)

    torch.manual_seed(0)
    data = torch.randn(200, 256, 256, 1, device=device)  # KS-sized trajectories
    base = DynamicsVAEModule(1, n_latents=5, n_spatial_dims=1, hidden_channels=16).to(device)
    base.train()
    base.position_dropout = 0.0  # identical inputs for the equality check (the published KS run uses 0 too)
    repo = find_repo(args.published_repo)
    pde1d = load_pde1d(repo) if repo else None

    # (name, decoder conv or "published", bf16, compile, CUDA graph, single backward)
    variants = []
    if pde1d is not None:
        variants.append(("published code (models/pde1d.py + run.py loss), fp32", "published", False, False, False, False))
    variants += [("reference (unfold+bmm, fp32)", "unfold", False, False, False, False),
                 ("strided-view bmm, fp32 (DynamicsVAE.fit on the CPU until 2026-12-03)", "bmm", False, False, False, False),
                 ("strided-view bmm, fp32, single backward (DynamicsVAE.fit on the CPU)", "bmm", False, False, False, True)]
    if cuda:
        variants.append(("strided-view bmm, fp32, CUDA graph (DynamicsVAE.fit)", "bmm", False, False, True, True))
        variants.append(("strided-view bmm, bf16, CUDA graph", "bmm", True, False, True, True))
    if use_compile:
        variants.append(("strided-view bmm, fp32, torch.compile", "bmm", False, True, False, False))
        if cuda:
            # CUDA graphs (cudagraph trees) around the compiled forward and backward
            variants.append(("strided-view bmm, fp32, torch.compile reduce-overhead", "bmm", False, "reduce-overhead", False,
                             False))

    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        variants = variants[:1] + [v for v in variants[1:] if any(k in v[0] for k in keys)]

    # fixed batch for the equality check: the same eps for the reparameterisation in every variant
    gen = torch.Generator(device=device)
    gen.manual_seed(1)
    xe = torch.randn(50, 1, 64, 94, device=device, generator=gen)
    xd = torch.randn(50, 1, 32, 76, device=device, generator=gen)

    def reference_grads():
        module = copy.deepcopy(base)
        module.decoder.conv_impl = "unfold"
        torch.manual_seed(0)
        loss, _ = grads_of(module, lambda x, t: _loss(module, x, t), xe, xd, False, device)
        order = grads_in_published_order(pde1d, module) if pde1d is not None else None
        return loss, torch.cat([p.grad.flatten() for p in module.parameters()]), order

    ref_loss, ref_grad, ref_grad_published = reference_grads()

    runs = []
    for name, impl, bf16, compiled, graph, single in variants:
        module = copy.deepcopy(base)
        if impl == "published":
            model = published_like(pde1d, module).to(device).train()
            model.zero_grad(set_to_none=True)
            torch.manual_seed(0)
            loss_t = published_loss(model, xe, xd)
            loss_t.backward()
            loss = float(loss_t.detach())
            grad = torch.cat([p.grad.flatten() for p in model.parameters()])
            dgrad = float((grad - ref_grad_published).norm() / ref_grad_published.norm())
            step = published_step(model, data, device=device)
        else:
            module.decoder.conv_impl = impl
            torch.manual_seed(0)
            mode = compiled if isinstance(compiled, str) else None
            loss, grad = grads_of(module, lambda x, t: _loss(module, x, t, single=single), xe, xd, bf16, device)
            dgrad = float((grad - ref_grad).norm() / ref_grad.norm())
            step, _ = make_step(module, data, bf16=bf16, compiled=bool(compiled), device=device, compile_mode=mode,
                                graph=graph, single=single)
        dloss = abs(loss - ref_loss) / abs(ref_loss)
        if not bf16 and (dloss > 1e-6 or dgrad > 1e-5):  # the bar for "equal results"
            raise AssertionError(f"{name}: loss rel. diff {dloss:.1e}, grad rel. diff {dgrad:.1e} from the reference")
        t_warm = time.perf_counter()
        for _ in range(warmup):
            step()
        if cuda:
            torch.cuda.synchronize()
        runs.append({"name": name, "step": step, "dloss": dloss, "dgrad": dgrad,
                     "warmup_s": time.perf_counter() - t_warm, "times": []})

    # interleaved timing: one step of every variant per round, so that a change in the machine's
    # load affects all variants alike; the median step time is reported
    for _ in range(steps):
        for run in runs:
            t0 = time.perf_counter()
            last = run["step"]()
            if cuda:
                torch.cuda.synchronize()
            run["times"].append(time.perf_counter() - t0)
            assert torch.isfinite(last), f"{run['name']}: non-finite loss"
    load = os.getloadavg()[0]
    for run in runs:
        run["dt"] = statistics.median(run["times"])
        print(f"{run['name']}: median {run['dt'] * 1e3:.1f} ms/step of {steps} (min {min(run['times']) * 1e3:.1f}, "
              f"warm-up {run['warmup_s']:.1f} s), loss rel diff {run['dloss']:.1e}, grad rel diff {run['dgrad']:.1e}",
              flush=True)
        if args.profile and run["name"] == args.profile:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            with profile(activities=acts) as prof:
                for _ in range(3):
                    run["step"]()
                if cuda:
                    torch.cuda.synchronize()
            key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=key, row_limit=20), flush=True)

    flops = step_flops(copy.deepcopy(base), xe, xd)
    if pde1d is not None:
        t_pub = runs[0]["dt"]
        published_note = "published code measured in this run (first row)"
    else:
        t_pub = 50 / (REF_GPU if cuda else REF_CPU)
        published_note = (f"published code not available here: its recorded {50 / t_pub:.0f} samples/s on this device "
                          "class (REFERENCE.md) is quoted")
    lines = [
        "| variant | step (ms, median) | samples/s | vs published code | loss rel. diff | grad rel. diff |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(f"| {run['name']} | {run['dt'] * 1e3:.1f} | {50 / run['dt']:.0f} | {t_pub / run['dt']:.2f}x | "
                     f"{run['dloss']:.1e} | {run['dgrad']:.1e} |")
    notes = (
        f"KS config: batch 50, encoder crop 64x94, 31 decoder steps at width 76, 5 latents; {steps} timed steps "
        f"per variant, interleaved, after {warmup} warm-up; {published_note}; "
        f"one step = {flops / 1e9:.1f} GFLOP (forward + backward, torch.utils.flop_counter); "
        f"1-minute load average at the end of the timing {load:.2f}"
    )
    if not cuda:
        rate = gemm_rate(device)
        square = square_gemm_rates()
        layer = widest_layer_rates(device)
        peak = max(rate, layer["forward"])
        floor = flops / peak
        notes += (
            f"; this machine's fp32 GEMM rate (torch.matmul 4096x576 @ 576x2048, best of 4) {rate / 1e9:.0f} GFLOP/s; "
            "2048 x 2048 matmul (median and best of 15): "
            + ", ".join(f"{k} thread(s) {m / 1e9:.0f} and {b / 1e9:.0f}" for k, (m, b) in square.items())
            + " GFLOP/s; "
            "oneDNN on the encoder's widest layer (64->64, dilation 8, channels-last, best of 4): "
            + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in layer.items())
            + f" GFLOP/s; at the faster of these rates ({peak / 1e9:.0f} GFLOP/s) the step's FLOPs take "
            f"{floor * 1e3:.0f} ms ({50 / floor:.0f} samples/s), a floor for any implementation of these FLOPs "
            "at that rate"
        )
        # beyond its GEMMs, a forward writes the transformed input and reads the product back (one
        # copy's traffic); a backward writes the transformed gradient and reads the input gradient's
        # product back (another)
        wino = winograd_bound(device)
        fwd = wino["forward GEMMs"] + wino["one 111 MB copy"]
        bwd = wino["backward GEMMs"] + wino["one 111 MB copy"]
        notes += (
            "; Winograd F(2x2, 3x3) for the widest layer (best of 4; 16 batched GEMMs over its 27,200 tiles, "
            f"plus one write and one read of a 111 MB transformed tensor for each pass): forward GEMMs "
            f"{wino['forward GEMMs'] * 1e3:.0f} ms, backward GEMMs {wino['backward GEMMs'] * 1e3:.0f} ms, one copy "
            f"{wino['one 111 MB copy'] * 1e3:.0f} ms, so at least {fwd * 1e3:.0f} ms forward and {bwd * 1e3:.0f} ms "
            f"backward without a fused kernel, against oneDNN's direct forward {wino['direct forward'] * 1e3:.0f} ms "
            f"and backward {wino['direct backward'] * 1e3:.0f} ms"
        )

    record("dynamics_vae", "\n".join(lines), notes)


if __name__ == "__main__":
    main()
