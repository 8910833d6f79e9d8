"""The one training engine shared by every skphys estimator.

Two parts:

- :class:`StepRunner` owns one optimisation step: AdamW, the per-step LR schedule, bf16
  autocast on GPU, gradient clipping and, on a single CUDA device, the capture of the whole step
  as a CUDA graph.
- :func:`fit_loop` owns the epochs: it draws batches, runs steps, keeps the history (a skorch
  :class:`~skorch.history.History`), calls callbacks through skorch's protocol, writes a
  checkpoint every epoch (rank 0 only), stops cleanly on Ctrl-C, SIGTERM or SIGUSR1 (what SLURM
  sends before preemption or a time limit) and returns where it stopped as a
  :class:`TrainState` instead of changing its arguments.

Why not skorch's ``NeuralNet`` loop itself: skorch draws ``(X, y)`` batches from a per-sample
``Dataset`` and syncs every batch loss to the host. skphys' objectives draw *random windows and
crops* of whole trajectories on the device, accumulate losses on the device and sync once per
epoch. The callback protocol, the history and the callbacks are skorch's own (see
docs/design.md for what fits and what does not).

Randomness: every random draw of a training step comes from generators seeded from
``(seed, stream, epoch, step)`` (:func:`step_seed`), drawn for the *global* batch on every rank
and sliced to the rank's rows. So the sample order, the crops and the noise depend neither on the
number of processes nor on where a run was interrupted and resumed.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["TrainingDivergedError", "cosine_lr", "step_seed", "StepRunner", "TrainState", "fit_loop", "train"]


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


_GRAPH_WARMUP_STEPS = 3


def step_seed(seed, *key):
    """A 63-bit seed for the random stream ``key`` (e.g. ``(stream, epoch, step)``) of ``seed``."""
    ss = np.random.SeedSequence([int(seed) & (2**63 - 1), *[int(k) for k in key]])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _tensors(batch):
    return list(batch) if isinstance(batch, (tuple, list)) else [batch]


def cosine_lr(step, total_steps, warmup_steps=0, final_ratio=0.0):
    """Multiplier of the base LR at ``step``: linear warmup, then cosine decay to ``final_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _CapturedStep:
    """One training step captured as a CUDA graph with static input buffers."""

    def __init__(self, step, batch):
        self.static = [t.clone() for t in _tensors(batch)]
        self.shapes = [(t.shape, t.dtype) for t in self.static]
        static_batch = self.static if isinstance(batch, (tuple, list)) else self.static[0]
        self.graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        with torch.cuda.graph(self.graph):
            self.out = step(static_batch)

    def matches(self, batch):
        return [(t.shape, t.dtype) for t in _tensors(batch)] == self.shapes

    def replay(self, batch):
        for dst, src in zip(self.static, _tensors(batch)):
            dst.copy_(src, non_blocking=True)
        self.graph.replay()
        loss, logs = self.out
        return loss, dict(logs)


class StepRunner:
    """One optimisation step of ``objective`` (a module whose ``forward(batch)`` returns
    ``(loss, logs)``; under several processes the DDP wrapper of it, so that gradients are
    all-reduced for the whole objective).

    Parameters
    ----------
    objective : torch.nn.Module
    parameters : list of torch.nn.Parameter
        What to optimise (AdamW; ``weight_decay=0`` is Adam).
    total_steps : int
        Steps of the whole fit (for the cosine schedule).
    lr, weight_decay, betas, schedule, warmup_steps, final_lr_ratio, grad_clip
        Optimizer and schedule settings; ``schedule`` is ``"constant"`` or ``"cosine"`` (linear
        warmup over ``warmup_steps``, then cosine decay to ``final_lr_ratio * lr``).
    device : torch.device
    amp : bool
        bf16 autocast on CUDA.
    cuda_graph : bool
        On a single CUDA device with a constant LR, capture one whole step (forward, backward,
        optimizer) as a CUDA graph after a few eager warm-up steps on a side stream, and replay it
        for every later batch of the same shapes. The objective must then be capturable (no host
        syncs; random numbers come in the batch). Under DDP the step stays eager: capture with
        DDP's all-reduce needs a GPU to verify, which this project's tests do not have.
    """

    def __init__(
        self,
        objective,
        parameters,
        *,
        total_steps,
        lr,
        weight_decay=0.0,
        betas=(0.9, 0.999),
        schedule="constant",
        warmup_steps=0,
        final_lr_ratio=0.0,
        grad_clip=None,
        device=torch.device("cpu"),
        amp=True,
        cuda_graph=False,
        distributed=False,
    ):
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
        self.objective = objective
        self.params = [p for p in parameters if p.requires_grad]
        self.device, self.amp, self.grad_clip = device, amp, grad_clip
        self.use_graph = bool(cuda_graph) and device.type == "cuda" and schedule == "constant" and not distributed
        # fused kernels on CUDA; on the CPU the multi-tensor ("foreach") form, which gives the same
        # parameters bit for bit as PyTorch's CPU default (a loop over tensors) and took 1.7 instead
        # of 2.6 ms per step in BetaPathVAE's model (bench_dynamics_vae.py --small)
        self.optimizer = torch.optim.AdamW(
            self.params, lr=lr, weight_decay=weight_decay, betas=betas,
            fused=device.type == "cuda", foreach=True if device.type == "cpu" else None, capturable=self.use_graph,
        )
        self.scheduler = None
        if schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda s: cosine_lr(s, total_steps, warmup_steps, final_lr_ratio)
            )
        self.steps_done = 0
        self._graph = None
        self._n_eager = 0
        self._side_stream = torch.cuda.Stream(device) if self.use_graph else None

    @property
    def lr(self):
        return self.optimizer.param_groups[0]["lr"]

    def _step(self, batch):
        from ._base import autocast

        # grads are zeroed in place (not set to None) so that their buffers stay the same
        # tensors across eager and captured steps
        self.optimizer.zero_grad(set_to_none=not self.use_graph)
        with autocast(self.device, self.amp):
            loss, logs = self.objective(batch)
        loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        return loss, logs

    def __call__(self, batch):
        """Run one step on ``batch``; returns ``(loss, logs)`` as tensors on the device."""
        graph = self._graph
        if graph is not None and graph.matches(batch):
            loss, logs = graph.replay(batch)
        elif self.use_graph and graph is None and self._n_eager >= _GRAPH_WARMUP_STEPS:
            self._graph = _CapturedStep(self._step, batch)
            loss, logs = self._graph.replay(batch)
        elif self.use_graph and self._n_eager < _GRAPH_WARMUP_STEPS:
            side = self._side_stream
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up off the capture stream
                loss, logs = self._step(batch)
            torch.cuda.current_stream().wait_stream(side)
            self._n_eager += 1
        else:
            loss, logs = self._step(batch)
            self._n_eager += 1
        if self.scheduler is not None:
            self.scheduler.step()
        self.steps_done += 1
        return loss, logs

    def state_dict(self):
        """Optimizer moments and the schedule's position, on the CPU."""
        return {"optimizer": _to_cpu(self.optimizer.state_dict()), "steps_done": self.steps_done}

    def load_state_dict(self, state, moments_only=False):
        """Restore :meth:`state_dict`. ``moments_only`` keeps this runner's LR and settings and
        restores only the AdamW moments and step counts (warm starts with a new ``lr``)."""
        saved = state["optimizer"]
        if moments_only:
            now = self.optimizer.state_dict()
            now["state"] = saved["state"]
            saved = now
        self.optimizer.load_state_dict(saved)
        self.steps_done = int(state.get("steps_done", 0))
        if self.scheduler is not None:  # the LR of step ``steps_done``, as the schedule gives it
            self.scheduler.last_epoch = self.steps_done
            for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas):
                group["lr"] = base * factor(self.steps_done)


@dataclass
class TrainState:
    """Where :func:`fit_loop` stopped."""

    history: list
    epoch: int = 0
    step: int = 0
    interrupted: bool = False
    stopped_early: bool = False
    partial: dict = field(default_factory=dict)


class _StopSignals:
    """SIGTERM/SIGUSR1/SIGINT set a flag that the loop reads after each step (main thread only;
    elsewhere the handlers are left alone). A second SIGINT interrupts at once."""

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None), signal.SIGINT) if s)

    def __init__(self):
        self.received = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                try:
                    self._old[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):  # pragma: no cover - platform limits
                    pass
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


class _CallbackNet:
    """What skorch callbacks see as ``net``: the estimator, with ``history`` the live History."""

    def __init__(self, estimator, history):
        object.__setattr__(self, "_estimator", estimator)
        object.__setattr__(self, "history", history)

    def __getattr__(self, name):
        return getattr(self._estimator, name)

    def __setattr__(self, name, value):
        setattr(self._estimator, name, value)


def _call(callbacks, hook, *args, **kwargs):
    for cb in callbacks:
        getattr(cb, hook, lambda *a, **k: None)(*args, **kwargs)


def fit_loop(
    runner,
    make_batches,
    *,
    max_epochs,
    steps_per_epoch,
    ctx,
    history=None,
    start_epoch=0,
    start_step=0,
    partial=None,
    callbacks=(),
    net=None,
    save=None,
    verbose=0,
    desc="training",
):
    """Train with ``runner`` until epoch ``max_epochs`` (counted from the start of ``history``).

    Parameters
    ----------
    runner : StepRunner
    make_batches : callable
        ``make_batches(epoch, first_step)`` -> iterable of this rank's batches for steps
        ``first_step, first_step + 1, ...`` of ``epoch``.
    max_epochs, steps_per_epoch : int
    ctx : skphys._distributed.DistributedContext
    history : skorch.history.History, optional
        Continued (resumed or warm-started fits); the records of completed epochs.
    start_epoch, start_step : int
        Where to start (a resumed checkpoint may stand inside an epoch).
    partial : dict, optional
        The running sums of the epoch being resumed (``{"n": steps, key: sum}``).
    callbacks : sequence
        skorch callbacks (already initialized); they get ``on_train_begin``,
        ``on_epoch_begin``, ``on_batch_end`` (with ``loss``), ``on_epoch_end`` and
        ``on_train_end``. One raising ``KeyboardInterrupt`` in ``on_epoch_end`` (skorch's
        ``EarlyStopping``) stops training after that epoch.
    net : object
        What callbacks get as ``net`` (the estimator).
    save : callable, optional
        ``save(state: TrainState)`` writes a checkpoint; called on rank 0 after every epoch and
        when a stop signal arrives.
    verbose : int
        0 silent; 1 a tqdm progress bar over epochs with the loss; 2 also one line per epoch.

    Returns
    -------
    TrainState
    """
    from skorch.history import History

    history = History() if history is None else history
    cb_net = _CallbackNet(net, history) if net is not None else None
    callbacks = list(callbacks)
    state = TrainState(history, start_epoch, start_step, partial=dict(partial or {}))
    bar = None
    show = bool(verbose) and ctx.is_main
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_epochs, initial=start_epoch, desc=desc, leave=True)

    def finish_epoch(epoch, sums, n, t0):
        keys = sorted(sums)
        values = torch.stack([sums[k] for k in keys]) / n
        values = ctx.all_reduce_mean(values).tolist()  # one sync per epoch
        history.new_epoch()
        for key, value in zip(keys, values):
            history.record(key, value)
        history.record("epoch", epoch)
        history.record("lr", runner.lr)
        history.record("dur", time.time() - t0)
        record = history[-1]
        if not math.isfinite(record["loss"]):
            raise TrainingDivergedError(
                f"{desc}: the training loss became {record['loss']} in epoch {epoch}; "
                "lower lr, rescale the inputs or check them for outliers"
            )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4g}")
        if show and verbose > 1:
            extras = " ".join(f"{k}={record[k]:.4g}" for k in keys if k != "loss")
            print(f"[{desc}] epoch {epoch:4d} loss={record['loss']:.4g} {extras} lr={record['lr']:.3g}", flush=True)

    def checkpoint():
        if save is not None and ctx.is_main:
            save(state)

    signals = _StopSignals()
    try:
        with signals:
            if cb_net is not None:
                _call(callbacks, "on_train_begin", cb_net)
            for epoch in range(start_epoch, max_epochs):
                t0 = time.time()
                first = state.step if epoch == state.epoch else 0
                sums = {k: torch.tensor(v, device=ctx.device) for k, v in state.partial.items() if k != "n"}
                n = int(state.partial.get("n", 0))
                if cb_net is not None:
                    _call(callbacks, "on_epoch_begin", cb_net)
                for batch in make_batches(epoch, first):
                    loss, logs = runner(batch)
                    for key, value in {"loss": loss, **logs}.items():
                        value = value.detach().float()
                        sums[key] = sums[key] + value if key in sums else value
                    n += 1
                    state.epoch, state.step = epoch, n
                    if cb_net is not None and callbacks:
                        _call(callbacks, "on_batch_end", cb_net, batch=None, training=True, loss=loss)
                    if ctx.any(signals.received is not None):
                        state.partial = {"n": n, **{k: float(v) for k, v in sums.items()}}
                        state.interrupted = True
                        checkpoint()
                        warnings.warn(
                            f"{desc}: stopped by {signals.received or 'a signal on another rank'} during epoch "
                            f"{epoch} after step {n}; "
                            + ("a checkpoint was written; fit again with the same checkpoint_dir to resume"
                               if save is not None else "pass checkpoint_dir to be able to resume"),
                            RuntimeWarning,
                            stacklevel=3,
                        )
                        return state
                if n != steps_per_epoch:
                    raise ValueError(f"{desc}: epoch {epoch} gave {n} batches, expected {steps_per_epoch}")
                finish_epoch(epoch, sums, n, t0)
                state.epoch, state.step, state.partial = epoch + 1, 0, {}
                stop = False
                if cb_net is not None:
                    try:
                        _call(callbacks, "on_epoch_end", cb_net)
                    except KeyboardInterrupt:  # skorch's EarlyStopping
                        stop = state.stopped_early = True
                checkpoint()
                if stop:
                    break
            if cb_net is not None:
                _call(callbacks, "on_train_end", cb_net)
    except KeyboardInterrupt:
        state.interrupted = True
        state.partial = {}
        state.step = 0
        warnings.warn(
            f"{desc}: interrupted (KeyboardInterrupt) during epoch {len(history)}; training stops "
            f"with {len(history)} completed epoch(s) and the parameters of the last finished step",
            RuntimeWarning,
            stacklevel=2,
        )
    finally:
        if bar is not None:
            bar.close()
    return state


def train(parameters, loss_fn, make_batches, *, max_epochs, steps_per_epoch, lr, device=torch.device("cpu"),
          verbose=0, desc="training", **step_options):
    """Optimise ``parameters`` on ``loss_fn(batch) -> (loss, logs)`` in one process; returns the
    history. A small functional front end to :class:`StepRunner` and :func:`fit_loop` for code
    that is not an estimator (``make_batches(epoch)`` yields the batches of an epoch)."""
    from ._distributed import DistributedContext

    params = list(parameters)

    class _Objective(torch.nn.Module):
        def forward(self, batch):
            return loss_fn(batch)

    warmup_epochs = step_options.pop("warmup_epochs", 0)
    runner = StepRunner(
        _Objective(), params, total_steps=max_epochs * steps_per_epoch, lr=lr, device=device,
        warmup_steps=warmup_epochs * steps_per_epoch, **step_options,
    )
    state = fit_loop(
        runner, lambda epoch, first: make_batches(epoch), max_epochs=max_epochs, steps_per_epoch=steps_per_epoch,
        ctx=DistributedContext(device=device), verbose=verbose, desc=desc,
    )
    return state.history


def _to_cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
