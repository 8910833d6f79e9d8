"""The JEPA objective: predict the target window's embedding from the context window's."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from .vicreg import vicreg_loss

__all__ = ["jepa_loss"]


def jepa_loss(
    encoder: torch.nn.Module,
    predictor: torch.nn.Module,
    win: torch.Tensor,
    n_frames: int,
    coeffs: Sequence[float] = (2.0, 40.0, 2.0),
    n_chunks: int = 5,
    generator: Optional[torch.Generator] = None,
    gather: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """JEPA objective on a batch of window pairs ``win`` of shape ``(b, C, 2 * n_frames, *space)``.

    Context and target windows go through the encoder in one call (same weights, no EMA, no
    stop-gradient); the predictor maps the context embedding to the target's; VICReg compares
    them. ``gather`` (e.g. :func:`skphys._distributed.all_gather_with_grad`) concatenates the
    prediction and target embeddings of every process before VICReg, whose variance and
    covariance terms need the global batch; gradients flow back to each process's own rows.

    Returns ``(loss, logs)``: a scalar tensor and the VICReg terms ``inv``, ``var``, ``cov``.
    """
    b = win.shape[0]
    both = torch.cat([win[:, :, :n_frames], win[:, :, n_frames:]], dim=0)
    z = encoder(both)
    pred = predictor(z[:b])
    target = z[b:]
    if gather is not None:  # one collective for both (two could be matched out of order in backward)
        both = gather(torch.stack([pred, target], dim=1))
        pred, target = both[:, 0], both[:, 1]
    return vicreg_loss(pred, target, *coeffs, n_chunks=n_chunks, generator=generator)
