"""What `dream` and `render` share around their loops: settings with keyword overrides checked
once, the report of what ran, and the divergence check (NaN and infinities stick, so one check
after the loop's work suffices and the loop never waits on a GPU)."""

from __future__ import annotations

import torch

from dreamkit.checks import check_kind
from dreamkit.errors import DivergedError, DreamkitError
from dreamkit.precision import precision_name
from dreamkit.settings import Settings


def settings_with(kind: type[Settings], settings: Settings | None, overrides: dict,
                  caller: str, defaults: dict | None = None) -> Settings:
    """`settings` (default: `kind(**defaults)`) with keyword `overrides`, every name known."""
    settings = settings if settings is not None else kind(**(defaults or {}))
    check_kind(settings, kind, "settings")
    unknown = set(overrides) - set(kind.spec())
    if unknown:
        raise DreamkitError(f"{caller}() got unknown settings {', '.join(sorted(unknown))} "
                            f"(known: {', '.join(kind.spec())})")
    return settings.replace(**overrides)


def what_ran(device: torch.device, dtype: torch.dtype | None, plans: list[str],
             compiled: bool) -> dict:
    """The `ran` report every loop gives: device, precision, gradient plans, compiled."""
    return {"device": str(device), "precision": precision_name(dtype), "plans": plans,
            "compiled": compiled}


def check_finite(*tensors: torch.Tensor, what: str) -> None:
    """DivergedError saying `what` diverged when any value is NaN or infinite."""
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise DivergedError(f"{what}; try a lower lr or fp32 precision")
