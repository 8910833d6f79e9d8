"""Time the built-in simulators on their paper-size datasets.

Paper sizes (PDE-VAE paper; shear flow: a The-Well-like CPU-scale analogue):

- Kuramoto-Sivashinsky: 5000 + 10000 trajectories, 256 points, 256 frames;
- nonlinear Schrodinger: 5000 + 10000 trajectories, 256 points, 256 frames;
- convection-diffusion: 1000 + 1000 trajectories, 256 x 256, 64 frames;
- shear flow: 1000 trajectories, 64 x 64, 100 frames over t = 20;
- Rayleigh-Benard (CPU-scale analogue of The Well's 1750 trajectories of 128 x 512 x 200 frames):
  1000 trajectories, 32 x 128, 100 frames over t = 50;
- active matter (CPU-scale analogue of The Well's 360 trajectories of 256 x 256 x 81 frames):
  360 trajectories, 64 x 64, 80 frames over t = 20.

``--scale`` times that fraction of each dataset (generated in calls of at most
``--max-per-call`` trajectories, results discarded) and extrapolates linearly to the full size;
the table says which rows are extrapolated. ``--compare-precision`` also measures the largest
difference between ``precision="single"`` and ``"double"`` on a few trajectories (is float32
accurate enough on this device?). ``--resolution-study`` instead measures how well a shear-flow
grid resolves a Reynolds number (fraction of enstrophy / tracer variance in the outer third of
the dealiased band), the measurement behind ``make_shear_flow``'s default Reynolds range.
``--rb-resolution`` compares the Nusselt number (bottom-wall heat flux, every frame) of one
Rayleigh-Benard trajectory on the default grid and on a 1.5x finer one (``make_rayleigh_benard``'s
default Rayleigh range); ``--am-resolution`` measures the spectral tail of the orientation and
strain-rate fields of active matter (``make_active_matter``'s default ranges).

Examples::

    python benchmarks/bench_simulators.py --device cpu --scale 0.001
    python benchmarks/bench_simulators.py --device cuda --scale 1 --compare-precision
    python benchmarks/bench_simulators.py --resolution-study --n 64 128 --reynolds 2000 8000
    python benchmarks/bench_simulators.py --device cuda --device-check
    python benchmarks/bench_simulators.py --rb-resolution --rayleigh 1e4 1e5 --prandtl 0.1 1 10
    python benchmarks/bench_simulators.py --am-resolution --n 64 --alpha -1 -3 -5 --zeta 1 3 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import record  # noqa: E402

from skphys._base import resolve_device  # noqa: E402
from skphys.datasets import make_system  # noqa: E402

PAPER = {
    "kuramoto_sivashinsky": dict(total=15000, kwargs={}, size="256 pts x 256 frames"),
    "nonlinear_schrodinger": dict(total=15000, kwargs={}, size="256 pts x 256 frames"),
    "convection_diffusion": dict(total=2000, kwargs={}, size="256x256 x 64 frames"),
    "shear_flow": dict(total=1000, kwargs={}, size="64x64 x 100 frames (t=20)"),
    "rayleigh_benard": dict(total=1000, kwargs={}, size="32x128 x 100 frames (t=50)"),
    "active_matter": dict(total=360, kwargs={}, size="64x64 x 80 frames (t=20)"),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_system(name, n, device, precision, max_per_call, seed=0):
    """Seconds to generate ``n`` trajectories of ``name`` (in calls of <= max_per_call)."""
    kwargs = dict(PAPER[name]["kwargs"], device=str(device), precision=precision, return_X_y=True)
    make_system(name, 1, random_state=seed, **{**kwargs, "n_frames": 2})  # warm-up (CUDA init, plans)
    _sync(device)
    start = time.perf_counter()
    done = 0
    call = 0
    while done < n:
        m = min(max_per_call, n - done)
        X, _ = make_system(name, m, random_state=seed + call, **kwargs)
        assert np.isfinite(X).all()
        del X
        done += m
        call += 1
    _sync(device)
    return time.perf_counter() - start


def precision_gap(name, device, n=4):
    kwargs = dict(PAPER[name]["kwargs"], device=str(device), random_state=123, return_X_y=True)
    Xd, _ = make_system(name, n, precision="double", **kwargs)
    Xs, _ = make_system(name, n, precision="single", **kwargs)
    gap = np.abs(Xd.astype(float) - Xs)
    # early frames (before chaotic amplification) and the whole trajectory
    early = gap[:, : max(2, Xd.shape[1] // 8)].max()
    return early / np.abs(Xd).max(), gap.max() / np.abs(Xd).max()


def run_timing(args):
    device = resolve_device(args.device)
    rows = [
        "| system | dataset | n timed | time (s) | traj/s | full dataset (s) | precision |"
        + (" max rel. gap single vs double (first 1/8 / all frames) |" if args.compare_precision else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if args.compare_precision else ""),
    ]
    for name in args.systems:
        total = PAPER[name]["total"]
        n = args.n_samples if args.n_samples else max(1, int(round(args.scale * total)))
        seconds = time_system(name, n, device, args.precision, args.max_per_call)
        full = seconds * total / n
        label = f"{full:.1f}" + ("" if n == total else f" (extrapolated from {n})")
        row = f"| {name} | {total} x {PAPER[name]['size']} | {n} | {seconds:.2f} | {n / seconds:.2f} | {label} | {args.precision} |"
        if args.compare_precision:
            early, whole = precision_gap(name, device)
            row += f" {early:.1e} / {whole:.1e} |"
        rows.append(row)
        print(row, flush=True)
    notes = (
        f"device {device}; each simulator generates and discards trajectories in calls of at most "
        f"{args.max_per_call}; 'full dataset' extrapolates linearly when fewer were timed."
    )
    record("simulators", "\n".join(rows), notes)


def _tail_fraction(field):
    """Fraction of spectral power in the outer third of the dealiased band (per frame, max)."""
    ny, nx = field.shape[-2:]
    power = np.abs(np.fft.rfft2(field.astype(float))) ** 2
    ky = np.abs(np.fft.fftfreq(ny, 1 / ny))[:, None] / (ny / 2)
    kx = np.fft.rfftfreq(nx, 1 / nx)[None, :] / (nx / 2)
    kk = np.maximum(ky, kx)
    band = (kk > 1 / 3) & (kk <= 2 / 3)
    return float(((power * band).sum(axis=(-1, -2)) / power.sum(axis=(-1, -2))).max())


def run_resolution_study(args):
    device = resolve_device(args.device)
    rows = ["| grid | reynolds | schmidt | vorticity tail | tracer tail | time (s) |", "|---|---|---|---|---|---|"]
    for n in args.n:
        for re in args.reynolds:
            for sc in args.schmidt:
                t0 = time.perf_counter()
                b = make_system("shear_flow", 1, reynolds=re, schmidt=sc, n_points=(n, n), n_frames=20, t_max=20.0,
                                random_state=0, device=str(device))
                seconds = time.perf_counter() - t0
                X = b.data[0]
                k = 2 * np.pi * np.fft.fftfreq(n, 1 / n)
                w = np.fft.ifft2(1j * k[None, :] * np.fft.fft2(X[..., 3]) - 1j * k[:, None] * np.fft.fft2(X[..., 2])).real
                row = f"| {n}x{n} | {re:g} | {sc:g} | {_tail_fraction(w):.1e} | {_tail_fraction(X[..., 0]):.1e} | {seconds:.1f} |"
                rows.append(row)
                print(row, flush=True)
    record(
        "simulators_resolution",
        "\n".join(rows),
        "max over 20 frames (t <= 20) of the fraction of vorticity enstrophy / tracer variance in "
        "the outer third of the 2/3-dealiased band; < 1e-3 is treated as resolved",
    )


def _nusselt(b):
    """Bottom-wall Nusselt number -<db/dy>(y=0) per frame, by differentiating the exact Chebyshev
    interpolant behind the uniform rows (one-sided 4th-order differences on the stored rows)."""
    y = b.coords[0]
    h = y[1] - y[0]
    buoy = b.data[0, ..., 0].astype(float)  # (T, ny, nx)
    grad = (-25 * buoy[:, 0] + 48 * buoy[:, 1] - 36 * buoy[:, 2] + 16 * buoy[:, 3] - 3 * buoy[:, 4]) / (12 * h)
    return -grad.mean(axis=-1)


def run_rb_resolution(args):
    device = resolve_device(args.device)
    rows = ["| Ra | Pr | grid | Nu (last frame) | max rel. Nu difference to 1.5x grid | time (s) |", "|---|---|---|---|---|---|"]
    base = (32, 128)
    fine = (48, 192)
    for ra in args.rayleigh:
        for pr in args.prandtl:
            nus, secs = [], []
            for ny, nx in (base, fine):
                t0 = time.perf_counter()
                # the stored rows are the same (uniform, 33 of them) on both grids: only the solver differs
                b = make_system("rayleigh_benard", 1, rayleigh=ra, prandtl=pr, n_points=(33, nx), n_chebyshev=ny,
                                n_frames=50, t_max=50.0, random_state=0, device=str(device))
                secs.append(time.perf_counter() - t0)
                nus.append(_nusselt(b))
            diff = float(np.max(np.abs(nus[0] - nus[1]) / nus[1]))
            row = f"| {ra:g} | {pr:g} | {base[0]}x{base[1]} | {nus[0][-1]:.3f} | {diff:.1e} | {secs[0]:.1f} |"
            rows.append(row)
            print(row, flush=True)
    record(
        "simulators_resolution",
        "\n".join(rows),
        "Rayleigh-Benard: Nusselt number at the bottom wall (from the stored buoyancy rows) of the same "
        "trajectory (seed 0, 50 frames over t = 50) with n_chebyshev = 32, nx = 128 and with 48 x 192; "
        "the largest relative difference over all frames; < 1e-2 is treated as resolved",
    )


def _radial_tail(field, n_last=5):
    """Fraction of the (mean-removed) power of the last ``n_last`` frames at radial wavenumbers in
    the outer third of the 2/3-dealiased band (the initial noise is excluded: it is band-limited
    by construction, not by the dynamics)."""
    q = field[-n_last:].astype(float)
    q = q - q.mean(axis=(-2, -1), keepdims=True)
    n = q.shape[-1]
    power = np.abs(np.fft.fft2(q)) ** 2
    k = np.fft.fftfreq(n, 1 / n)
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    kmax = n / 3
    band = (kk > 2 * kmax / 3) & (kk < kmax)
    return float(power[:, band].sum() / power.sum())


def run_am_resolution(args):
    device = resolve_device(args.device)
    rows = ["| grid | alpha | zeta | D_xy tail | E_xy tail | u rms (last frame) | time (s) |", "|---|---|---|---|---|---|---|"]
    for n in args.n:
        for alpha in args.alpha:
            for zeta in args.zeta:
                t0 = time.perf_counter()
                b = make_system("active_matter", 1, alpha=alpha, zeta=zeta, n_points=n, n_frames=20, t_max=20.0,
                                random_state=0, device=str(device))
                seconds = time.perf_counter() - t0
                X = b.data[0]
                u_rms = float(np.sqrt((X[-1, ..., 1:3] ** 2).mean()))
                row = (f"| {n}x{n} | {alpha:g} | {zeta:g} | {_radial_tail(X[..., 4]):.1e} | "
                       f"{_radial_tail(X[..., 8]):.1e} | {u_rms:.2f} | {seconds:.1f} |")
                rows.append(row)
                print(row, flush=True)
    record(
        "simulators_resolution",
        "\n".join(rows),
        "active matter: fraction of the D_xy / E_xy variance of the last 5 of 20 frames (t <= 20) at radial "
        "wavenumbers in the outer third of the 2/3-dealiased band; < 1e-3 is treated as resolved",
    )


def run_device_check(args):
    """Same trajectories on the CPU and on ``--device`` (double precision): largest difference."""
    device = resolve_device(args.device)
    short = {
        "kuramoto_sivashinsky": dict(n_frames=32, t_max=4 * np.pi),
        "nonlinear_schrodinger": dict(n_frames=32, t_max=np.pi / 8),
        "convection_diffusion": dict(n_frames=8, t_max=np.pi / 2),
        "shear_flow": dict(n_frames=20, t_max=4.0),
        "rayleigh_benard": dict(n_frames=10, t_max=10.0, perturbation=1e-2),
        "active_matter": dict(n_frames=10, t_max=5.0),
    }
    rows = ["| system | frames | max abs diff cpu vs device | max abs value |", "|---|---|---|---|"]
    for name in args.systems:
        kw = dict(short[name], random_state=0, return_X_y=True)
        Xc, yc = make_system(name, 2, device="cpu", **kw)
        Xd, yd = make_system(name, 2, device=str(device), **kw)
        assert np.array_equal(yc, yd)
        row = f"| {name} | {Xc.shape[1]} | {np.abs(Xc - Xd).max():.1e} | {np.abs(Xc).max():.2f} |"
        rows.append(row)
        print(row, flush=True)
    record("simulators_device_check", "\n".join(rows), f"device {device}, precision double, 2 trajectories")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--systems", nargs="+", default=list(PAPER), choices=list(PAPER))
    parser.add_argument("--scale", type=float, default=0.001, help="fraction of each paper-size dataset to time")
    parser.add_argument("--n-samples", type=int, default=None, help="time exactly this many per system instead")
    parser.add_argument("--max-per-call", type=int, default=500)
    parser.add_argument("--precision", default="double", choices=["double", "single"])
    parser.add_argument("--compare-precision", action="store_true")
    parser.add_argument("--resolution-study", action="store_true")
    parser.add_argument("--device-check", action="store_true", help="compare --device against the CPU")
    parser.add_argument("--n", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--reynolds", type=float, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--schmidt", type=float, nargs="+", default=[1.0])
    parser.add_argument("--rb-resolution", action="store_true")
    parser.add_argument("--rayleigh", type=float, nargs="+", default=[1e4, 1e5])
    parser.add_argument("--prandtl", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    parser.add_argument("--am-resolution", action="store_true")
    parser.add_argument("--alpha", type=float, nargs="+", default=[-1.0, -3.0])
    parser.add_argument("--zeta", type=float, nargs="+", default=[1.0, 3.0])
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    if args.resolution_study:
        run_resolution_study(args)
    elif args.rb_resolution:
        run_rb_resolution(args)
    elif args.am_resolution:
        run_am_resolution(args)
    elif args.device_check:
        run_device_check(args)
    else:
        run_timing(args)


if __name__ == "__main__":
    main()
