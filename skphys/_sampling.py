"""Training batches drawn from whole trajectories: random windows (JEPA, VideoMAE) and random
crop pairs (DynamicsVAE).

Both samplers build the *global* batch plan of a step (which trajectories, which start frames
and offsets) from generators seeded by ``(seed, stream, epoch, step)``, the same on every rank,
and then read only this rank's rows. Every step has exactly ``batch_size`` rows: the last batch
of an epoch is completed from the start of the epoch's order, so each of W ranks always gets
``batch_size / W`` rows and the mean of the ranks' losses is the loss of the global batch. The
plan depends neither on the number of processes nor on where a run was resumed.

An in-memory array is moved to the device once and batches are gathered there; a lazy
array-like (e.g. :class:`skphys.datasets.LazyWindows`) is read row by row for each batch, so
memory is bounded by one batch, whatever the number of trajectories.
"""

from __future__ import annotations

import numpy as np
import torch

from ._base import check_finite_batch, read_rows, to_channels_first
from ._training import step_seed

__all__ = ["BatchPlan", "WindowSampler", "CropSampler"]

# random streams (the second key of step_seed)
ORDER, WINDOWS, CROPS, NOISE = 1, 2, 3, 4


class BatchPlan:
    """Global batches of ``batch_size`` trajectory indices per step, ``steps`` steps an epoch."""

    def __init__(self, n, batch_size, seed):
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.steps = -(-self.n // self.batch_size)

    def generator(self, stream, epoch, step=0):
        return torch.Generator().manual_seed(step_seed(self.seed, stream, epoch, step))

    def order(self, epoch):
        perm = torch.randperm(self.n, generator=self.generator(ORDER, epoch))
        reps = -(-self.steps * self.batch_size // self.n)
        return perm.repeat(reps)[: self.steps * self.batch_size]

    def indices(self, order, step):
        return order[step * self.batch_size : (step + 1) * self.batch_size]


def _on_device(X, device):
    """``X`` as a float32 tensor on ``device`` if it is an in-memory array, else None (lazy)."""
    if isinstance(X, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
    return None


def read_time_crops(X, idx, t0, length, estimator=None):
    """Frames ``t0[k] : t0[k] + length`` of rows ``idx[k]`` of a lazy ``X`` as float32 numpy.

    A reader with ``read_frames`` (:class:`skphys.datasets.LazyWindows`) reads only those frames,
    in one sorted batch; any other lazy array-like is read row by row and cropped here.
    """
    idx, t0 = np.asarray(idx), np.asarray(t0)
    if hasattr(X, "read_frames"):
        out = X.read_frames(idx, t0, int(length))
        check_finite_batch(out, f"{estimator}: " if estimator else "")
        return out
    rows = read_rows(X, idx, estimator)
    return rows[np.arange(len(idx))[:, None], t0[:, None] + np.arange(length)]


def overlapped(batches, device):
    """Read the next batches in a background thread while this one trains, on a GPU.

    On the CPU the reader and the training step compete for the GIL and the cores: measured with
    ``benchmarks/bench_well_read.py`` on 2 cores, prefetching was 0.82-0.93x as fast as reading
    in turn, so batches are read in turn there.
    """
    if device.type != "cuda":
        return batches
    from .datasets import prefetch

    return prefetch(batches, depth=2)


class WindowSampler:
    """Random windows of ``length`` consecutive frames, normalized per channel.

    ``batches(epoch, first_step, rows)`` yields channels-first float32 tensors
    ``(len(rows), C, length, *space)`` on ``device`` for steps ``first_step, ...`` of ``epoch``.
    """

    def __init__(self, X, length, mean, scale, device, seed, batch_size, estimator=None):
        self.X, self.length, self.device, self.estimator = X, int(length), device, estimator
        self.n_frames = X.shape[1]
        self.plan = BatchPlan(X.shape[0], batch_size, seed)
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32, device=device)
        self.scale = torch.as_tensor(np.asarray(scale), dtype=torch.float32, device=device)
        data = _on_device(X, device)
        self.data = None if data is None else (data - self.mean) / self.scale

    @property
    def steps_per_epoch(self):
        return self.plan.steps

    def batches(self, epoch, first_step=0, rows=slice(None)):
        if self.data is None:
            return overlapped(self._batches(epoch, first_step, rows), self.device)
        return self._batches(epoch, first_step, rows)

    def _batches(self, epoch, first_step, rows):
        order = self.plan.order(epoch)
        offsets = torch.arange(self.length)
        for step in range(first_step, self.plan.steps):
            idx = self.plan.indices(order, step)
            t0 = torch.randint(
                0, self.n_frames - self.length + 1, (len(idx), 1), generator=self.plan.generator(WINDOWS, epoch, step)
            )
            idx, t0 = idx[rows], t0[rows]
            if self.data is not None:
                win = self.data[idx.to(self.device)[:, None], (t0 + offsets).to(self.device)]
            else:  # lazy: read only this rank's windows of the step
                win = read_time_crops(self.X, idx.numpy(), t0[:, 0].numpy(), self.length, self.estimator)
                win = (torch.from_numpy(win).to(self.device) - self.mean) / self.scale
            yield to_channels_first(win)


class CropSampler:
    """Pairs of random crops from the same trajectory: an encoder crop ``enc`` = ``(t, *space)``
    and a decoder crop ``dec`` = ``(t, *space)``; time inside the trajectory, space periodic.

    ``batches(epoch, first_step, rows)`` yields ``(x, target)`` channels-first float32 tensors
    ``(len(rows), C, t, *space)`` on ``device``.
    """

    def __init__(self, X, enc, dec, device, seed, batch_size, estimator=None):
        self.X, self.enc, self.dec, self.device, self.estimator = X, tuple(enc), tuple(dec), device, estimator
        self.T, self.space = X.shape[1], tuple(X.shape[2:-1])
        self.plan = BatchPlan(X.shape[0], batch_size, seed)
        self.data = _on_device(X, device)

    @property
    def steps_per_epoch(self):
        return self.plan.steps

    def _starts(self, crop, B, gen):
        t0 = torch.randint(0, self.T - crop[0] + 1, (B,), generator=gen)
        return [t0] + [torch.randint(0, size, (B,), generator=gen) for size in self.space]

    def _index(self, rows_idx, starts, crop, device):
        """Broadcastable gather indices ``(rows, t, *space)`` for ``data[rows, t, *space]``."""
        B = starts[0].shape[0]
        nd = 2 + len(self.space)
        idx = [rows_idx.to(device).reshape([B] + [1] * (nd - 1))]
        sizes = (self.T,) + self.space
        for k, (s0, c, size) in enumerate(zip(starts, crop, sizes)):
            ix = s0.to(device)[:, None] + torch.arange(c, device=device)
            if k > 0:
                ix = ix % size
            shape = [B] + [1] * (nd - 1)
            shape[k + 1] = c
            idx.append(ix.reshape(shape))
        return tuple(idx)

    def batches(self, epoch, first_step=0, rows=slice(None)):
        if self.data is None:
            return overlapped(self._batches(epoch, first_step, rows), self.device)
        return self._batches(epoch, first_step, rows)

    def _batches(self, epoch, first_step, rows):
        order = self.plan.order(epoch)
        for step in range(first_step, self.plan.steps):
            idx = self.plan.indices(order, step)
            gen = self.plan.generator(CROPS, epoch, step)
            s_enc = self._starts(self.enc, len(idx), gen)
            s_dec = self._starts(self.dec, len(idx), gen)
            idx = idx[rows]
            s_enc = [s[rows] for s in s_enc]
            s_dec = [s[rows] for s in s_dec]
            if self.data is not None:
                x = self.data[self._index(idx, s_enc, self.enc, self.device)]
                t = self.data[self._index(idx, s_dec, self.dec, self.device)]
            else:  # lazy: read only this rank's time crops of the step, crop space here
                x, t = (
                    self._crop_space(read_time_crops(self.X, idx.numpy(), s[0].numpy(), crop[0], self.estimator), s, crop)
                    for s, crop in ((s_enc, self.enc), (s_dec, self.dec))
                )
            yield x.movedim(-1, 1), t.movedim(-1, 1)

    def _crop_space(self, frames, starts, crop):
        """Time crops read from disk ``(B, t, *space, C)`` -> their periodic spatial crops."""
        data = torch.from_numpy(frames).to(self.device)
        local = torch.arange(len(frames))
        return data[self._index(local, [torch.zeros_like(starts[0])] + list(starts[1:]), crop, self.device)]


class RowSampler:
    """Random rows of in-memory arrays (e.g. token embeddings and their targets), moved to the
    device once. ``batches(epoch, first_step, rows)`` yields a tuple of tensors per step."""

    def __init__(self, arrays, device, seed, batch_size):
        self.data = [torch.as_tensor(np.ascontiguousarray(a)).to(device) for a in arrays]
        self.device = device
        self.plan = BatchPlan(len(self.data[0]), batch_size, seed)

    @property
    def steps_per_epoch(self):
        return self.plan.steps

    def batches(self, epoch, first_step=0, rows=slice(None)):
        order = self.plan.order(epoch)
        for step in range(first_step, self.plan.steps):
            idx = self.plan.indices(order, step)[rows].to(self.device)
            yield tuple(d[idx] for d in self.data)
