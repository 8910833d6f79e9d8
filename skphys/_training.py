"""The one training loop shared by every skphys estimator.

Why not skorch's ``NeuralNet`` (the design card's first choice): skorch's loop is built around
``(X, y)`` batches drawn by a ``DataLoader`` from a per-sample ``Dataset`` and calls ``.item()`` on
every batch loss. skphys' self-supervised objectives draw *random windows and crops* of whole
trajectories each step; doing that per sample in a ``Dataset`` on the CPU is what made the
reference code slow. Here batches are produced by a ``make_batches(epoch)`` callable that slices a
tensor already on the device, losses are accumulated on the device and synchronised once per
epoch, and bf16 autocast wraps the step on GPU. Everything else skorch would give (history as a
list of dicts, a progress bar, LR schedules, divergence checks, stopping on Ctrl-C with the model
kept) is the ~100 lines below.
"""

from __future__ import annotations

import math
import warnings

import torch

__all__ = ["TrainingDivergedError", "cosine_lr", "train"]


class TrainingDivergedError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


_GRAPH_WARMUP_STEPS = 3


def _tensors(batch):
    return list(batch) if isinstance(batch, (tuple, list)) else [batch]


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


def cosine_lr(step, total_steps, warmup_steps=0, final_ratio=0.0):
    """Multiplier of the base LR at ``step``: linear warmup, then cosine decay to ``final_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def train(
    parameters,
    loss_fn,
    make_batches,
    *,
    max_epochs,
    steps_per_epoch,
    lr,
    weight_decay=0.0,
    betas=(0.9, 0.999),
    schedule="constant",
    warmup_epochs=0,
    final_lr_ratio=0.0,
    grad_clip=None,
    device=torch.device("cpu"),
    amp=True,
    verbose=0,
    desc="training",
    history=None,
    cuda_graph=False,
    state=None,
):
    """Optimise ``parameters`` with AdamW and return the history (a list of dicts, one per epoch).

    Parameters
    ----------
    parameters : iterable of torch.nn.Parameter
        What to optimise.
    loss_fn : callable
        ``loss_fn(batch) -> (loss, logs)``, ``loss`` a scalar tensor and ``logs`` a dict of scalar
        tensors that are averaged over the epoch and stored in the history.
    make_batches : callable
        ``make_batches(epoch)`` -> iterable of batches (anything ``loss_fn`` takes).
    max_epochs : int
        Number of epochs.
    steps_per_epoch : int
        Number of batches ``make_batches`` yields per epoch (for the LR schedule).
    lr, weight_decay, betas : float, float, tuple
        AdamW settings (``weight_decay=0`` is Adam).
    schedule : {"constant", "cosine"}
        LR schedule, stepped per batch; ``"cosine"`` warms up linearly for ``warmup_epochs``.
    grad_clip : float, optional
        Clip the global gradient norm.
    device : torch.device
        Where the step runs (bf16 autocast when CUDA and ``amp``).
    verbose : int
        0 silent; 1 a tqdm progress bar over epochs with the loss; 2 also prints one line per epoch.
    history : list, optional
        Appended to (for warm starts).
    state : dict, optional
        Optimizer state carried across calls (warm starts). If it holds ``"optimizer"`` (what a
        previous call left there), the AdamW moments and step counts are restored (the learning
        rate and other settings stay this call's); on return, also after an interrupt, it holds
        the current state, copied to the CPU.
    cuda_graph : bool
        On CUDA with a constant LR, capture one whole step (forward, backward, optimizer) as a
        CUDA graph after a few eager warm-up steps, and replay it for every later batch of the
        same shapes (batches are copied into the captured input buffers). This removes the
        per-kernel launch cost that dominates models made of many tiny kernels (DynamicsVAE's
        31-step rollout). ``loss_fn`` must then be capturable: no host syncs, and random numbers
        only from the default CUDA generator. Batches of other shapes run eagerly. Ignored on the
        CPU.

    Returns
    -------
    history : list of dict
        One record per *completed* epoch. A ``KeyboardInterrupt`` (Ctrl-C, or ``SIGINT`` from a
        job's time limit) stops training as in skorch: a warning names the epoch, the parameters
        keep their values after the last finished step, and the history holds the epochs that
        completed, so the caller finishes fitting with the model trained so far.
    """
    from ._base import autocast

    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    params = [p for p in parameters if p.requires_grad]
    fused = device.type == "cuda"
    use_graph = bool(cuda_graph) and device.type == "cuda" and schedule == "constant"
    optimizer = torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused, capturable=use_graph
    )
    total = max_epochs * steps_per_epoch
    warmup = warmup_epochs * steps_per_epoch
    if schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: cosine_lr(s, total, warmup, final_lr_ratio)
        )
    else:
        sched = None
    if state is not None and state.get("optimizer") is not None:
        saved = optimizer.state_dict()
        saved["state"] = state["optimizer"]["state"]
        optimizer.load_state_dict(saved)
    history = [] if history is None else history

    def step(batch):
        # grads are zeroed in place (not set to None) so that their buffers stay the same
        # tensors across eager and captured steps
        optimizer.zero_grad(set_to_none=not use_graph)
        with autocast(device, amp):
            loss, logs = loss_fn(batch)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        return loss, logs

    side_stream = torch.cuda.Stream(device) if use_graph else None

    epochs = range(max_epochs)
    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(epochs, desc=desc, leave=True)
        epochs = bar

    def run_epochs():
        graph = None
        n_eager = 0
        for epoch in epochs:
            sums = {}
            n = 0
            for batch in make_batches(epoch):
                if graph is not None and graph.matches(batch):
                    loss, logs = graph.replay(batch)
                else:
                    if use_graph and graph is None and n_eager >= _GRAPH_WARMUP_STEPS:
                        graph = _CapturedStep(step, batch)
                        loss, logs = graph.replay(batch)
                    else:
                        if use_graph and n_eager < _GRAPH_WARMUP_STEPS:
                            side_stream.wait_stream(torch.cuda.current_stream())
                            with torch.cuda.stream(side_stream):  # warm-up off the capture stream
                                loss, logs = step(batch)
                            torch.cuda.current_stream().wait_stream(side_stream)
                        else:
                            loss, logs = step(batch)
                        n_eager += 1
                if sched is not None:
                    sched.step()
                logs = {"loss": loss, **logs}
                for key, value in logs.items():
                    value = value.detach().float()
                    sums[key] = sums[key] + value if key in sums else value
                n += 1
            if n == 0:
                raise ValueError(f"{desc}: no training batches in epoch {epoch}")
            record = {key: float(value) / n for key, value in sums.items()}  # one sync per epoch
            record["epoch"] = len(history)
            record["lr"] = optimizer.param_groups[0]["lr"]
            history.append(record)
            if not math.isfinite(record["loss"]):
                raise TrainingDivergedError(
                    f"{desc}: the training loss became {record['loss']} in epoch {record['epoch']}; "
                    "lower lr, rescale the inputs or check them for outliers"
                )
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.4g}")
            if verbose and verbose > 1:
                extras = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k not in ("epoch", "lr"))
                print(f"[{desc}] epoch {record['epoch']:4d} {extras} lr={record['lr']:.3g}", flush=True)

    try:
        run_epochs()
    except KeyboardInterrupt:
        warnings.warn(
            f"{desc}: interrupted (KeyboardInterrupt) during epoch {len(history)}; training stops "
            f"with {len(history)} completed epoch(s) and the parameters of the last finished step",
            RuntimeWarning,
            stacklevel=2,
        )
    finally:
        if bar is not None:
            bar.close()
        if state is not None:
            state["optimizer"] = _to_cpu(optimizer.state_dict())
    return history


def _to_cpu(obj):
    """A copy of a (nested) state dict with every tensor on the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
