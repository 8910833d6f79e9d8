"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds tensors and plain data only (weights, optimizer state, the step the LR
schedule stands at, the epoch and step reached, the history, a fingerprint of the estimator's
parameters and of the data), so opening a checkpoint directory can never run code. Files are
named ``epoch-EEEEEE-step-SSSSSS.pt``; each is written to a hidden temporary file in the same
directory and renamed into place, so a kill at any moment leaves either the old set of files or
the new one, never a half-written checkpoint. The two newest are kept: if the newest turns out
to be corrupt, the error names it and the one before it is still there.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import torch

__all__ = ["CheckpointError", "atomic_save", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_NAME = re.compile(r"^epoch-(\d{6})-step-(\d{6})\.pt$")
_KEEP = 2


class CheckpointError(ValueError):
    """A checkpoint cannot be used: corrupt, or from other parameters or data."""


def atomic_save(obj, path):
    """``torch.save(obj, path)`` through :func:`skphys.utils.atomic_path` (temporary file in the
    same directory, fsync, rename)."""
    from .utils import atomic_path

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _checkpoints(directory):
    out = []
    for p in Path(directory).iterdir():
        m = _NAME.match(p.name)
        if m:
            out.append(((int(m.group(1)), int(m.group(2))), p))
    return [p for _, p in sorted(out)]


def latest_checkpoint(directory):
    """Path of the newest checkpoint in ``directory``, or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = _checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(directory, state, epoch, step):
    """Write ``state`` as the checkpoint of ``(epoch, step)``; keep the two newest; remove
    temporary files that a killed writer left behind (a directory has one writer: rank 0 of one
    fit)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"epoch-{epoch:06d}-step-{step:06d}.pt"
    atomic_save(state, path)
    for old in _checkpoints(directory)[:-_KEEP]:
        with contextlib.suppress(OSError):
            old.unlink()
    for tmp in directory.glob(".epoch-*.tmp*"):  # left by a writer killed mid-write (one writer per directory)
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def load_checkpoint(path):
    """Load a checkpoint with ``weights_only=True``; a corrupt file raises :class:`CheckpointError`
    naming it (and the previous checkpoint, which is kept)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != 1:
            raise ValueError("not a skphys checkpoint")
    except Exception as exc:  # truncated, corrupt, or holding objects that are not plain data
        others = [p for p in _checkpoints(path.parent) if p != path]
        hint = (
            f"; the previous checkpoint {others[-1].name} is kept: delete {path.name} to resume from it"
            if others
            else "; delete it to start again"
        )
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}){hint}") from exc
    return state
