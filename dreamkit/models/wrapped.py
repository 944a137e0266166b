"""Any `nn.Module` as a dreamkit model: `wrap(module, preprocess=..., name=...)`.

Layers are module paths as `named_modules()` spells them (`layer3.1`, `_blocks.10`,
`encoder.layers.encoder_layer_5`); the table of dream-worthy ones is discovered with one probe
pass (`dreamkit.models.discover`). Capturing runs a truncated fx graph per set of layers
asked for, or forward hooks with an early exit when fx cannot trace the module
(`dreamkit.models.graph`). Token outputs (B, N, C) of vision transformers are laid out on
their patch grid as (B, C, h, w): a channel is one feature averaged over the patch tokens, a
neuron is one patch token's feature, and the class (and other prefix) tokens are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dreamkit.errors import DreamkitError
from dreamkit.layers import LOGITS
from dreamkit.models.base import Model
from dreamkit.models.discover import grid_of, layer_table, probe
from dreamkit.models.graph import OUTPUT, hooked, truncated
from dreamkit.models.relu import make_switchable
from dreamkit.models.staged import CaffeBGR, Normalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROBE_SIDES = (64, 224)
Preprocess = str | Callable[[torch.Tensor], torch.Tensor] | nn.Module


class Function(nn.Module):
    """A plain function as a module (a user's preprocessing)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class Resize(nn.Module):
    """Bilinear resize to the fixed input size some networks require (vision transformers)."""

    def __init__(self, side: int):
        super().__init__()
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (self.side, self.side):
            return x
        return F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)


def preprocessing(preprocess: Preprocess) -> nn.Module:
    """`imagenet` (torchvision mean/std), `caffe` (BGR 0-255 minus the mean), `none`, a module
    or any callable mapping RGB [0, 1] to what the network expects."""
    if isinstance(preprocess, nn.Module):
        return preprocess
    if callable(preprocess):
        return Function(preprocess)
    named = {"imagenet": lambda: Normalize(IMAGENET_MEAN, IMAGENET_STD), "caffe": CaffeBGR,
             "none": nn.Identity}
    if preprocess not in named:
        raise DreamkitError(f"preprocess must be one of {', '.join(named)} or a callable, not "
                            f"{preprocess!r}")
    return named[preprocess]()


class WrappedModel(Model):
    """A user's module with its preprocessing and a discovered layer table."""

    def __init__(self, module: nn.Module, preprocess: Preprocess = "imagenet",
                 name: str | None = None, input_size: int | None = None):
        super().__init__()
        self.name = name or type(module).__name__
        self.module = module.eval().requires_grad_(False)
        for sub in module.modules():  # in-place ops would overwrite captured activations
            if hasattr(sub, "inplace"):
                sub.inplace = False
        steps = [preprocessing(preprocess)]
        side = input_size or getattr(module, "image_size", None)
        if isinstance(side, int):
            steps.insert(0, Resize(side))
        self.preprocess = nn.Sequential(*steps)
        self._graphs: dict[tuple[str, ...], nn.Module] = {}
        self._traceable = True
        self._tokens: dict[str, tuple[int, int]] = {}
        self.layers = self._discover(side if isinstance(side, int) else None)

    def _discover(self, side: int | None):
        failures = []
        for probe_side in (side,) if side else PROBE_SIDES:
            images = torch.zeros(2, 3, probe_side, probe_side, device=self.device,
                                 dtype=self.dtype)
            try:
                with torch.no_grad():
                    seen, output = probe(self.module, self.preprocess(images))
            except Exception as exc:  # noqa: BLE001 - try the next size, then report
                failures.append(f"{probe_side} px: {type(exc).__name__}: {exc}")
                continue
            if not side and not self._runs(probe_side + 32):  # a fixed input size: keep it
                self.preprocess.insert(0, Resize(probe_side))
            if not isinstance(output, torch.Tensor):
                raise DreamkitError(f"{self.name}: its forward returns {type(output).__name__}, "
                                    "not a tensor of logits")
            for path, entry in seen.items():
                if len(entry.shape) == 3 and grid_of(entry.shape[1]):
                    self._tokens[path] = grid_of(entry.shape[1])  # type: ignore[assignment]
            try:
                return layer_table(self.name, self.module, seen, tuple(output.shape), probe_side)
            except ValueError as exc:
                raise DreamkitError(str(exc)) from None
        raise DreamkitError(f"cannot run {self.name} on a test image ({'; '.join(failures)}); "
                            "pass input_size= if it needs a fixed size")

    @torch.no_grad()
    def _runs(self, side: int) -> bool:
        images = torch.zeros(1, 3, side, side, device=self.device, dtype=self.dtype)
        try:
            self.module(self.preprocess(images))
        except Exception:  # noqa: BLE001 - any failure means "not at this size"
            return False
        return True

    def _apply(self, fn, recurse=True):  # moving devices or dtypes: rebuild the graphs
        self._graphs = {}
        return super()._apply(fn, recurse)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.module(self.preprocess(images))

    def _path(self, layer: str) -> str:
        return OUTPUT if layer == LOGITS and self.layers.logits == LOGITS else layer

    def _run(self, x: torch.Tensor, paths: tuple[str, ...]) -> dict[str, torch.Tensor]:
        if self._traceable and paths not in self._graphs:
            try:
                self._graphs[paths] = truncated(self.module, paths)
            except Exception:  # noqa: BLE001 - fx cannot trace it: hooks from now on
                self._traceable = False
                make_switchable(self.module)
        if self._traceable:  # forward(): GraphModule's __call__ prints every error it sees
            return self._graphs[paths].forward(x)
        return hooked(self.module, x, paths)

    def capture(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        paths = tuple(sorted({self._path(layer) for layer in layers}))
        found = self._run(self.preprocess(images), paths)
        out = {}
        for layer in layers:
            act = found[self._path(layer)]
            if layer in self._tokens:
                prefix, side = self._tokens[layer]
                act = act[:, prefix:].transpose(1, 2).reshape(act.shape[0], act.shape[2], side,
                                                                side)
            out[layer] = act
        return out

    def logits_from(self, layer: str, acts: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        if self._path(layer) == OUTPUT:
            return acts

        def replace(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if layer not in self._tokens:
                return acts.to(output.dtype)
            prefix = self._tokens[layer][0]
            tokens = acts.flatten(2).transpose(1, 2).to(output.dtype)
            return torch.cat([output[:, :prefix], tokens], dim=1)

        handle = self.module.get_submodule(layer).register_forward_hook(replace)
        try:
            return self.module(self.preprocess(images))
        finally:
            handle.remove()

    @torch.no_grad()
    def is_cut(self, layer: str) -> bool:
        if self._path(layer) == OUTPUT:
            return True
        side = max(64, self.min_side(layer))
        generator = torch.Generator().manual_seed(0)
        a, b = torch.rand(2, 1, 3, side, side, generator=generator).to(self.device, self.dtype)
        acts = self.capture(a, [layer])[layer]
        via_a, via_b = self.logits_from(layer, acts, a), self.logits_from(layer, acts, b)
        return bool(torch.allclose(via_a, via_b, rtol=1e-4, atol=1e-5))


def wrap(module: nn.Module, preprocess: Preprocess = "imagenet", name: str | None = None, *,
         input_size: int | None = None) -> WrappedModel:
    """Any `nn.Module` as a dreamkit model (`dream`, `render`, `capture`, directions,
    linearity, galleries and records take it like a built-in one).

    `preprocess` maps RGB [0, 1] images to what the module expects: `"imagenet"`
    (torchvision's mean and std), `"caffe"`, `"none"` or a callable. `input_size` is the side
    a network needs exactly (images are resized to it; read from `module.image_size` when
    there). The module is put in eval mode, frozen, and its in-place activations switched off.
    """
    if not isinstance(module, nn.Module):
        raise DreamkitError(f"wrap() takes an nn.Module, not {type(module).__name__}")
    if next(module.parameters(), None) is None:
        raise DreamkitError(f"{name or type(module).__name__} has no parameters to dream with")
    return WrappedModel(module, preprocess, name, input_size)
