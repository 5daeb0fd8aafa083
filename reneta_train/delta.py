"""Delta encoding: the one place that decides when a unit "fires".

Convention (pinned here, used everywhere in ``reneta_train``):

* a unit fires when ``|v − v̂| > θ`` (**strict**, as the reference ISA writes it;
  the original PyTorch code used ``>=``). At ``θ = 0`` an exactly unchanged value
  therefore does *not* fire, which is harmless (its delta is 0 anyway) and lets the
  accelerator skip it;
* a mask is ``True`` where the unit **fired** (the ISA/testbench convention);
* on firing the memory takes the *current raw value* (``v̂ ← v``), so
  ``v̂_t = v̂_{t−1} + Δ_t`` holds exactly and no error accumulates;
* a sample whose sequence has ended (``valid`` is False) fires nothing and keeps
  its memory.
"""

from __future__ import annotations

import math

import torch


def check_theta(name: str, theta) -> float:
    """Validate a threshold: a finite real ``>= 0``. Returns it as float."""
    try:
        value = float(theta)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number >= 0, got {theta!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {theta!r}")
    return value


def delta_step(value: torch.Tensor, memory: torch.Tensor, theta: float,
               valid: torch.Tensor | None = None):
    """One delta-encoding step for a batch.

    Args:
        value: current values, shape (B, N).
        memory: last fired values v̂, shape (B, N).
        theta: threshold θ >= 0.
        valid: optional (B, 1) bool; rows that are False fire nothing.

    Returns:
        ``(delta, fired, new_memory)`` with ``delta = fired ⊙ (value − memory)``.
        Written with ``torch.where`` only, so it is differentiable (the comparison
        itself carries no gradient: it is piecewise constant).
    """
    diff = value - memory
    fired = diff.abs() > theta
    if valid is not None:
        fired = fired & valid
    delta = torch.where(fired, diff, torch.zeros_like(diff))
    new_memory = torch.where(fired, value, memory)
    return delta, fired, new_memory


def valid_mask(lengths: torch.Tensor | None, steps: int, batch: int,
               device=None) -> torch.Tensor:
    """``(T, B)`` bool mask, True where step ``t < lengths[b]``."""
    if lengths is None:
        return torch.ones(steps, batch, dtype=torch.bool, device=device)
    t = torch.arange(steps, device=device).unsqueeze(1)
    return t < lengths.to(device).unsqueeze(0)


def check_lengths(lengths, steps: int, batch: int, device=None) -> torch.Tensor | None:
    """Validate ``lengths`` (None or B integers in ``[0, T]``), return a long tensor."""
    if lengths is None:
        return None
    if not torch.is_tensor(lengths):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"lengths must be a sequence of {batch} integers, got {lengths!r}") from None
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
    lengths = lengths.reshape(-1).to(device=device, dtype=torch.long)
    if lengths.numel() != batch:
        raise ValueError(f"lengths has {lengths.numel()} entries but the batch has {batch} sequences")
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > steps):
        raise ValueError(f"lengths must lie in [0, {steps}] (the padded sequence length), "
                         f"got min {int(lengths.min())}, max {int(lengths.max())}")
    return lengths
