"""Find and read weight files: `--weights FILE` > $DREAMKIT_WEIGHTS > user cache > download.

Weights are read only from safetensors, or from PyTorch files with `weights_only=True`, so a
weight file can never run code.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from dreamkit.errors import DreamkitError
from dreamkit.files import regular_file

ENV_VAR = "DREAMKIT_WEIGHTS"


def cache_dir() -> Path:
    """`$DREAMKIT_CACHE`, else `$XDG_CACHE_HOME/dreamkit`, else `~/.cache/dreamkit`."""
    if os.environ.get("DREAMKIT_CACHE"):
        return Path(os.environ["DREAMKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dreamkit"


def find_weights(name: str, explicit: str | os.PathLike | None = None) -> Path | None:
    """The first weight file found for `name`, or None when a download is needed."""
    if explicit is not None:
        return regular_file(explicit, "weights file")
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]) / f"{name}.safetensors")
    candidates.append(cache_dir() / f"{name}.safetensors")
    return next((path for path in candidates if path.is_file()), None)


def how_to_get(name: str) -> str:
    """One sentence telling the user where dreamkit looks and how to provide the file."""
    env = os.environ.get(ENV_VAR)
    where = f"${ENV_VAR}={env}" if env else f"${ENV_VAR} (unset)"
    return (
        f"no weights for {name}: looked in {where} and {cache_dir()}; run "
        f"`dreamkit fetch-weights {name}` on a machine with internet, or put {name}.safetensors "
        f"in a folder and set {ENV_VAR} to it, or pass --weights FILE"
    )


def read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or a state dict saved by torch (never unpickled freely)."""
    path = regular_file(path, "weights file")
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any refusal is the same user error
            raise DreamkitError(
                f"{path}: not a plain PyTorch state dict; refusing to unpickle it "
                f"({type(exc).__name__}). Convert it to safetensors."
            ) from exc
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise DreamkitError(f"{path}: expected a dict of tensors")
        return state
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise DreamkitError(f"{path}: not a valid safetensors file ({exc})") from exc
