"""torch.distributed plumbing for the training engine: one process group, found or made.

skphys does not launch processes. A script that calls ``fit`` runs unchanged on a laptop, on one
GPU, and under ``torchrun --nproc-per-node N`` (or ``--nnodes``): :func:`distributed_context`
reads the environment torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), reuses a process group the user already initialized, or
initializes one itself (NCCL on CUDA, gloo on the CPU), reuses it for every later ``fit`` of
the script and destroys it at exit. Only a group it created is destroyed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "distributed_context", "all_gather_with_grad"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, training on ``device``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    #: a second group for collectives inside the objective (the VICReg gather), so that their
    #: backward never interleaves with DDP's gradient all-reduces on the same group
    side_group: object = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that shows progress and writes checkpoints and logs."""
        return self.rank == 0

    def local_rows(self, global_batch: int, who: str = "") -> slice:
        """This rank's rows of a global batch of ``global_batch`` rows (equal contiguous shares)."""
        if global_batch % self.world_size:
            raise ValueError(
                f"{who}batch_size is the global batch; {global_batch} does not divide among "
                f"{self.world_size} processes: pass a batch_size that is a multiple of {self.world_size}"
            )
        share = global_batch // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """Mean of ``tensor`` over ranks (in place; a no-op in one process)."""
        if self.is_distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            tensor /= self.world_size
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (a barrier in several processes)."""
        if not self.is_distributed:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def broadcast_object(self, obj):
        """``obj`` from rank 0 on every rank."""
        if not self.is_distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self):
        if self.is_distributed:
            dist.barrier()

    def _comm_device(self):
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def _env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from exc


_CREATED = {"group": False, "side": None}


def _destroy_own_group():
    if _CREATED["group"] and dist.is_initialized():
        dist.destroy_process_group()
    _CREATED["group"], _CREATED["side"] = False, None


def _side_group():
    """One second group per default group (creating a group is a collective: every rank makes it
    at its first distributed fit, in the same order)."""
    if _CREATED["side"] is None or _CREATED["side"][0] is not dist.group.WORLD:
        _CREATED["side"] = (dist.group.WORLD, dist.new_group(backend=dist.get_backend()))
    return _CREATED["side"][1]


@contextlib.contextmanager
def distributed_context(device: torch.device):
    """Yield the :class:`DistributedContext` of this ``fit``.

    - A process group the user initialized is used as it is and never destroyed by skphys.
    - Otherwise, when torchrun's environment names more than one process, a group is initialized
      (``nccl`` for CUDA devices, ``gloo`` for the CPU). skphys destroys it when the interpreter
      exits, not after each ``fit``: a script that fits several estimators under torchrun (a
      ``Pipeline``: embedder, then probe) uses the same group for all of them, as re-creating a
      group on torchrun's store after destroying one can hang.
    - Otherwise the context is one process on ``device``.

    On CUDA under several processes each process trains on ``cuda:LOCAL_RANK``.
    """
    if dist.is_available() and not dist.is_initialized() and _env_world_size() > 1:
        for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if key not in os.environ:
                raise ValueError(
                    f"WORLD_SIZE={os.environ['WORLD_SIZE']} asks for several processes but {key} is not set; "
                    "launch the script with torchrun, or initialize torch.distributed yourself"
                )
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
        if not _CREATED["group"]:
            atexit.register(_destroy_own_group)
        _CREATED["group"] = True
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
        if dist.get_backend() == "nccl" and device.type != "cuda":
            raise ValueError("the process group uses NCCL, which needs device='cuda'; use gloo for CPU training")
        yield DistributedContext(dist.get_rank(), dist.get_world_size(), device, _side_group())
    else:
        yield DistributedContext(0, 1, device)


def all_gather_with_grad(x: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """Concatenate ``x`` (rows) from every rank in rank order, with gradients flowing back to
    each rank's own rows (the backward sums the gradients of all ranks, as the official VICReg
    code's ``FullGatherLayer``). Identity in one process."""
    if not ctx.is_distributed:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous(), group=ctx.side_group or dist.group.WORLD), dim=0)
