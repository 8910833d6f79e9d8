"""The one driver every built-in simulator runs on.

A simulator ``make_*`` keeps only its physics (parameter ranges, initial condition, right-hand
side and time stepper); :class:`Driver` owns the rest:

- the common arguments (``n_samples``, ``noise``, ``random_state``, ``device``, ``precision``,
  ``verbose``, ``return_X_y``) and their checks;
- per-trajectory parameters: given (a number or one per trajectory) or drawn, then checked;
- chunked, batched integration on the CPU or a GPU with one progress bar over frames, under the
  CPU thread/denormal settings of :class:`~skphys.datasets._common.cpu_settings`;
- observation noise (absolute, or relative to each channel's RMS) and the returned Bunch.

Random numbers are drawn in a fixed order (parameters, then each chunk's initial states in
trajectory order, then noise), so results do not depend on ``chunk_size`` or the device beyond
round-off.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _common as C

__all__ = ["Driver"]


class Driver:
    """Shared scaffold of one simulator call.

    Parameters
    ----------
    name : str
        Human-readable system name (progress bar label).
    n_samples : int
    noise : float
    random_state : int, RandomState or None
    device : str or torch.device
    precision : {"double", "single"}
    verbose : bool
    return_X_y : bool

    Attributes
    ----------
    n_samples : int
    noise : float
    rng : numpy.random.RandomState
    device : torch.device
    rdtype, cdtype : torch.dtype
        Real and complex working precision.
    """

    def __init__(self, name, n_samples, *, noise, random_state, device, precision, verbose, return_X_y):
        self.name = name
        self.n_samples, self.noise = C.check_common(n_samples, noise, return_X_y, verbose)
        self.verbose = bool(verbose)
        self.return_X_y = bool(return_X_y)
        self.rng, self.device, self.rdtype, self.cdtype = C.setup(random_state, device, precision)

    # ------------------------------------------------------------------ parameters
    def parameter(self, value, name, sampler, check=None):
        """Per-trajectory values, shape ``(n_samples,)``.

        ``value`` None draws ``sampler(rng, n_samples)``; a number is used for every trajectory;
        an array of shape ``(n_samples,)`` is used as is. ``check(values)`` may raise.
        """
        return C.resolve_parameter(value, name, self.n_samples, lambda: sampler(self.rng, self.n_samples), check)

    def loguniform(self, value, name, bounds):
        """:meth:`parameter` drawn log-uniformly on ``bounds`` and checked > 0."""

        def check(v):
            if (v <= 0).any():
                raise ValueError(f"{name} must be > 0")

        return self.parameter(value, name, lambda rng, n: C.sample_loguniform(rng, n, bounds), check)

    # ------------------------------------------------------------------ integration
    def run(self, simulate_chunk, *, n_frames, frame_shape, bytes_per_sample, elements_per_sample, chunk_size=None):
        """Simulate all trajectories chunk by chunk.

        Parameters
        ----------
        simulate_chunk : callable
            ``simulate_chunk(start, stop, bar) -> frames``, frames of trajectories
            ``start:stop`` as a tensor or array of shape ``(stop - start, n_frames, *frame_shape)``;
            it calls ``bar.update(1)`` once per frame.
        n_frames : int
        frame_shape : tuple of int
            Shape of one stored frame, channels last.
        bytes_per_sample : int
            Working memory one trajectory needs (sets the default chunk size).
        elements_per_sample : int
            Elements one tensor operation touches per trajectory (sets the CPU thread count).
        chunk_size : int or None
            Trajectories per chunk (default: what fits in 512 MiB on CPU, 4 GiB on a GPU).

        Returns
        -------
        X : ndarray of float32, shape ``(n_samples, n_frames, *frame_shape)``
        """
        n = self.n_samples
        chunk = C.resolve_chunk_size(chunk_size, n, bytes_per_sample, self.device)
        X = np.empty((n, n_frames, *frame_shape), dtype=np.float32)
        bar = C.progress(n_frames * math.ceil(n / chunk), self.verbose, self.name)
        try:
            with C.cpu_settings(self.device, min(chunk, n) * elements_per_sample):
                for start, stop in C.chunks(n, chunk):
                    frames = simulate_chunk(start, stop, bar)
                    if isinstance(frames, torch.Tensor):
                        frames = frames.detach().cpu().numpy()
                    X[start:stop] = frames.reshape(X[start:stop].shape)
        finally:
            bar.close()
        return X

    # ------------------------------------------------------------------ output
    def finish(self, X, y, *, noise_scale="absolute", boundary_conditions=None, **bunch):
        """Add noise to ``X`` in place and return the Bunch (or ``(X, y)``).

        ``noise_scale="absolute"``: standard deviation ``noise``; ``"rms"``: ``noise`` times each
        channel's RMS over the whole dataset. ``bunch`` holds the keyword arguments of
        :func:`~skphys.datasets._common.make_bunch` except ``return_X_y``;
        ``boundary_conditions`` defaults to periodic on every axis.
        """
        if self.noise > 0:
            if noise_scale == "rms":
                # per-channel RMS over the dataset, accumulated per trajectory (no float64 copy of X)
                flat = X.reshape(X.shape[0], -1, X.shape[-1])
                sq = sum(np.einsum("pc,pc->c", f, f, dtype=np.float64) for f in flat)
                C.add_noise(X, self.noise, self.rng, scale=np.sqrt(sq / (X.size // X.shape[-1])))
            elif noise_scale == "absolute":
                C.add_noise(X, self.noise, self.rng)
            else:  # pragma: no cover - programming error
                raise ValueError(f"noise_scale must be 'absolute' or 'rms', got {noise_scale!r}")
        out = C.make_bunch(X, y, return_X_y=self.return_X_y, **bunch)
        if not self.return_X_y and boundary_conditions is not None:
            out.boundary_conditions = dict(boundary_conditions)
        return out
