"""Numeric precision of the network's forward/backward: fp32, or bf16/fp16 autocast.

The image being optimized, the objective and the step stay in fp32; only the network runs in the
lower precision. `auto` is bf16 on GPUs that support it and fp32 elsewhere. fp16 gradients of
small objectives underflow, so fp16 backward passes run on the loss times `loss_scale`.
"""

from __future__ import annotations

import contextlib

import torch

from dreamkit.errors import DreamkitError
from dreamkit.settings import PRECISIONS

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
FP16_LOSS_SCALE = 2.0**14  # lifts activation gradients (~1e-7) well above fp16's 6e-5 floor


def resolve_precision(name: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `name` on `device` (None = plain fp32); explains refusals."""
    device = torch.device(device)
    if name not in PRECISIONS:
        raise DreamkitError(f"unknown precision {name!r}; choose from {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if name == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else None
    if name == "fp16" and not cuda:
        raise DreamkitError("fp16 needs a CUDA GPU; use --precision bf16 or fp32 on the CPU")
    if name == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise DreamkitError("this GPU has no bf16 support; use --precision fp16 or fp32")
    return _DTYPES[name]


def autocast(
    device: torch.device | str, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`'s type, or nothing for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def loss_scale(dtype: torch.dtype | None) -> float:
    """What to multiply a loss by before an fp16 backward pass (and divide its gradient by)."""
    return FP16_LOSS_SCALE if dtype == torch.float16 else 1.0


def precision_name(dtype: torch.dtype | None) -> str:
    """The name of what `resolve_precision` returned (what really ran, for records)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
