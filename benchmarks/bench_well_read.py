"""Reading speed of The Well files: raw h5py, the_well's WellDataset and skphys' LazyWindows.

Writes (with ``skphys.datasets.write_well``) a The Well dataset of KS-like data into a temporary
directory: ``--n-trajectories`` 1-D trajectories of ``--n-frames`` x ``--n-points`` float32 (800 x
256 x 256 = 210 MB by default, in ``--files`` files), then measures on the same files:

- raw h5py: the whole field read at once, MB/s (the reference rate);
- the_well ``WellDataset`` (``n_steps_input=--window``, ``n_steps_output=0``): random single
  windows, windows/s;
- skphys ``LazyWindows.read`` (``load_well(..., n_frames=--window, stride=1, lazy=True)``): random
  batches of ``--batch`` windows, and sequential batches (consecutive window indices), windows/s
  and MB/s, and the random rate as a fraction of raw h5py;
- with ``--baseline-rev REV``, the same random batches through ``skphys/datasets/well.py`` as it
  was at git revision ``REV`` (e.g. the per-sample WellDataset reader before the fast path).

Every rate is measured in this one run on the same files. The files were just written, so reads
come from the OS page cache (no cold-disk rates). Timings repeat ``--repeats`` times and report
the best, to reduce the effect of other jobs on a shared machine.

Examples::

    python benchmarks/bench_well_read.py
    python benchmarks/bench_well_read.py --n-trajectories 100 --seconds 1 --no-record
    python benchmarks/bench_well_read.py --baseline-rev 9e98454
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's skphys
from _record import record  # noqa: E402

from sklearn.utils import Bunch  # noqa: E402

from skphys.datasets import load_well, write_well  # noqa: E402


def ks_like(n, T, nx, seed=0):
    """Smooth travelling-and-growing random Fourier modes: KS-sized float32 data, made fast."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 32 * np.pi, nx, endpoint=False)
    t = np.arange(T) * 0.5
    k = np.arange(1, 9) / 16.0
    out = np.empty((n, T, nx, 1), dtype=np.float32)
    for i in range(n):
        amp = rng.normal(size=len(k)) / k
        phase = rng.uniform(0, 2 * np.pi, len(k))
        speed = rng.normal(size=len(k))
        arg = k[None, :, None] * (x[None, None, :] - speed[None, :, None] * t[:, None, None]) + phase[None, :, None]
        out[i, ..., 0] = (amp[None, :, None] * np.cos(arg)).sum(axis=1)
    return Bunch(
        data=out,
        target=rng.uniform(0.5, 2.0, size=(n, 1)),
        target_names=["gamma"],
        field_names=["u"],
        time=t,
        coords=(x,),
        dim_names=("x",),
        boundary_conditions={"x": "periodic"},
        dt=0.5,
        DESCR="KS-like benchmark data",
    )


def best_rate(fn, units, seconds, repeats):
    """max over repeats of units/s, each repeat calling fn until ``seconds`` have passed."""
    best = 0.0
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            n += fn()
            el = time.perf_counter() - start
            if el >= seconds:
                break
        best = max(best, n * units / el)
    return best


def load_baseline(rev):
    """skphys/datasets/well.py at git revision ``rev``, imported as a standalone module."""
    root = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "-C", str(root), "show", f"{rev}:skphys/datasets/well.py"], capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "well_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("well_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def overlap_row(X, batches, read_s, seconds, batch, kind):
    """One table row: steps/s of read + compute, serial and with prefetch(depth=2).

    ``kind="torch"``: the compute is a loop of 256 x 256 matmuls on one torch thread, calibrated
    to last about as long as one read (``read_s``); Python holds the GIL between the ops.
    ``kind="sleep"``: the compute sleeps ``read_s`` with the GIL released, as a training loop
    does while it waits for a GPU step. The serial run times its reads and computes separately,
    for the ideal overlap 1 / max(read, compute).
    """
    import torch

    from skphys.datasets import prefetch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core computes, the other reads (idle OpenMP workers would spin on it)
    a = torch.randn(256, 256)
    if kind == "torch":
        for _ in range(20):  # warm-up
            torch.mm(a, a)
        t0 = time.perf_counter()
        for _ in range(20):
            torch.mm(a, a)
        reps = max(1, round(20 * read_s / (time.perf_counter() - t0)))

        def compute():
            for _ in range(reps):
                torch.mm(a, a)

    else:

        def compute():
            time.sleep(read_s)

    n_steps = max(8, int(seconds / (2 * read_s)))

    def serial():
        t_read = t_comp = 0.0
        start = time.perf_counter()
        for i in range(n_steps):
            t0 = time.perf_counter()
            X.read(batches[i % len(batches)])
            t1 = time.perf_counter()
            compute()
            t_read, t_comp = t_read + t1 - t0, t_comp + time.perf_counter() - t1
        return n_steps / (time.perf_counter() - start), t_read / n_steps, t_comp / n_steps

    def overlapped():
        start = time.perf_counter()
        for _ in prefetch((X.read(batches[i % len(batches)]) for i in range(n_steps)), depth=2):
            compute()
        return n_steps / (time.perf_counter() - start)

    ser, r, c = max(serial() for _ in range(2))
    pre = max(overlapped() for _ in range(2))
    ideal = 1 / max(r, c)
    torch.set_num_threads(threads)
    label = "torch matmuls, 1 thread" if kind == "torch" else "sleep (GIL released, like a GPU wait)"
    return f"| {label} | {batch} | {r * 1e3:.2f} | {c * 1e3:.2f} | {ser:.0f} | {pre:.0f} | {ideal:.0f} | {pre / ser:.2f} |"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-trajectories", type=int, default=800)
    ap.add_argument("--n-frames", type=int, default=256)
    ap.add_argument("--n-points", type=int, default=256)
    ap.add_argument("--files", type=int, default=1, help="number of HDF5 files")
    ap.add_argument("--window", type=int, default=32, help="frames per window")
    ap.add_argument("--batch", type=int, default=64, help="windows per batch")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-rev", default=None, help="also time well.py from this git revision")
    ap.add_argument("--no-record", action="store_true", help="print only")
    args = ap.parse_args(argv)

    import h5py
    from the_well.data import WellDataset

    rng = np.random.default_rng(0)
    tmp = tempfile.TemporaryDirectory()
    bunch = ks_like(args.n_trajectories, args.n_frames, args.n_points)
    per_file = -(-args.n_trajectories // args.files)
    t0 = time.perf_counter()
    path = write_well(bunch, tmp.name, "ks_bench", n_trajectories_per_file=per_file)
    write_s = time.perf_counter() - t0
    nbytes = bunch.data.nbytes
    del bunch
    files = sorted(Path(path, "data", "train").glob("*.hdf5"))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    win_mb = args.window * args.n_points * 4 / 1e6

    def raw():
        for f in files:
            with h5py.File(f, "r") as h:
                h["t0_fields/u"][()]
        return 1

    raw_mb_s = best_rate(raw, nbytes / 1e6, args.seconds, args.repeats)

    X = load_well(path, n_frames=args.window, stride=1, lazy=True).data
    n = len(X)
    rand_batches = [rng.integers(0, n, args.batch) for _ in range(64)]
    it = iter(range(10**12))

    def lazy_random():
        X.read(rand_batches[next(it) % len(rand_batches)])
        return args.batch

    def lazy_sequential():
        s = (next(it) * args.batch) % (n - args.batch)
        X.read(np.arange(s, s + args.batch))
        return args.batch

    rand_w = best_rate(lazy_random, 1, args.seconds, args.repeats)
    seq_w = best_rate(lazy_sequential, 1, args.seconds, args.repeats)

    wd = WellDataset(path=path, well_split_name="train", n_steps_input=args.window, n_steps_output=0, use_normalization=False)

    def well_random():
        wd[int(rng.integers(0, len(wd)))]
        return 1

    well_w = best_rate(well_random, 1, args.seconds, args.repeats)

    rows = [
        ("raw h5py, whole field per file", "-", raw_mb_s / win_mb, raw_mb_s, 1.0),
        ("the_well WellDataset, random single windows", "1", well_w, well_w * win_mb, well_w * win_mb / raw_mb_s),
    ]
    if args.baseline_rev:
        old = load_baseline(args.baseline_rev)
        Xo = old.load_well(path, n_frames=args.window, stride=1, lazy=True).data

        def old_random():
            idx = rand_batches[next(it) % len(rand_batches)]
            Xo[np.sort(idx)]
            return args.batch

        old_w = best_rate(old_random, 1, args.seconds, 1)
        rows.append((f"skphys LazyWindows at {args.baseline_rev}, random batches", str(args.batch), old_w, old_w * win_mb, old_w * win_mb / raw_mb_s))
    rows += [
        ("skphys LazyWindows.read, random batches", str(args.batch), rand_w, rand_w * win_mb, rand_w * win_mb / raw_mb_s),
        ("skphys LazyWindows.read, sequential batches", str(args.batch), seq_w, seq_w * win_mb, seq_w * win_mb / raw_mb_s),
    ]
    overlap = []
    for b in (args.batch, 8 * args.batch):
        batches = [rng.integers(0, n, b) for _ in range(16)]
        for kind in ("torch", "sleep"):
            overlap.append(overlap_row(X, batches, b / rand_w, args.seconds, b, kind))
    overlap = (
        "| compute per step | batch | read (ms) | compute (ms) | serial steps/s | prefetch steps/s | ideal steps/s "
        "| prefetch / serial |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(overlap)
    )
    notes = (
        f"{len(files)} file(s), {size_mb:.0f} MB, {args.n_trajectories} trajectories of {args.n_frames} frames x "
        f"{args.n_points} points (1 float32 channel), written in {write_s:.1f} s; windows of {args.window} frames "
        f"({win_mb * 1e3:.1f} kB), stride 1 ({n} windows); reads from the page cache; best of {args.repeats} x "
        f"{args.seconds:g} s per row; machine shared with other engineers' jobs while this ran. Sequential batches "
        "are consecutive windows, which overlap at stride 1: one read serves many windows, so their MB/s (window "
        "bytes delivered) can exceed the raw rate."
    )
    table = "| reader | batch | windows/s | MB/s | fraction of raw h5py |\n|---|---|---|---|---|\n" + "\n".join(
        f"| {r} | {b} | {w:.0f} | {mb:.0f} | {fr:.2f} |" for r, b, w, mb, fr in rows
    )
    table += "\n\n" + overlap
    notes += (
        " Overlap table: each step reads a random batch, then computes for about as long as one read: torch matmuls "
        "(1 torch thread, GIL held between ops) or a sleep (GIL released, as while waiting for a GPU); 'prefetch' reads "
        "the next batches in skphys.datasets.prefetch's thread (depth 2); ideal = 1 / max(read, compute)."
    )
    if args.no_record:
        print(notes + "\n\n" + table)
    else:
        record("well_read", table, notes)
    X.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
