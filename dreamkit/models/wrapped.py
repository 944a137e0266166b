"""Any `nn.Module` as a dreamkit model: `wrap(module, preprocess=..., name=...)`.

Layers are module paths as `named_modules()` spells them (`layer3.1`, `_blocks.10`,
`backbone.layer4.1`), or traced node names (`relu_1`) in a module built from functional calls;
the table of dream-worthy ones is discovered with a probe pass (`dreamkit.models.discover`).
Capturing runs a truncated fx graph per set of layers asked for, or forward hooks with an early
exit when fx cannot trace the module (`dreamkit.models.graph`). Every layer reaches objectives
as (B, C, H, W): token outputs (B, N, C) of vision transformers are laid out on their patch
grid (a channel is one feature averaged over the patch tokens, a neuron one patch token's
feature; class and other prefix tokens are left out) and channels-last outputs (B, H, W, C) of
Swin-like blocks are permuted. The logits are the module's output when it is a tensor, or what
`logits=` picks from a dict, tuple or output object; a model may have none (layer objectives
only). dreamkit works on a copy of the module: the user's own object is never changed.
"""

from __future__ import annotations

import copy as copying
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from dreamkit.errors import DreamkitError
from dreamkit.layers import LOGITS
from dreamkit.models.base import Model
from dreamkit.models.catalog import WRAPPED_DREAM
from dreamkit.models.discover import Seen, grid_of, layer_table, probe
from dreamkit.models.graph import OUTPUT, hooked, node_shapes, spliced, truncated
from dreamkit.models.relu import make_switchable
from dreamkit.models.scaling import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    declared_normalization,
    inferred_normalization,
)
from dreamkit.models.staged import CaffeBGR, Normalize

PROBE_SIDES = (64, 224)
GROWN = 64  # the second probe's extra pixels a side (strides and layouts from the growth)
LAYOUTS = ("BCHW", "BHWC")
Preprocess = str | Callable[[torch.Tensor], torch.Tensor] | nn.Module
Logits = str | int | Callable[[object], torch.Tensor] | None


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


class Gray(nn.Module):
    """RGB to one luminance channel (networks trained on grey images)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.color import rgb_to_grayscale

        return rgb_to_grayscale(x)


def preprocessing(preprocess: Preprocess, module: nn.Module,
                  side: int | None = None) -> tuple[nn.Module, str]:
    """The input step for `preprocess`, and what it is in words: `auto` (the mean and std
    `module` declares, else the usual scaling its first BatchNorm's statistics fit, else
    ImageNet's: `dreamkit.models.scaling`; `side` is the input size it needs, if any),
    `imagenet` (torchvision mean/std), `caffe` (BGR 0-255 minus the mean), `gray` (one
    luminance channel), `none`, a module or any callable mapping RGB [0, 1] to what the
    network expects."""
    if isinstance(preprocess, nn.Module):
        return preprocess, "your module"
    if callable(preprocess):
        return Function(preprocess), "your function"
    if preprocess == "auto":
        return _auto(module, side)
    named = {"imagenet": lambda: Normalize(IMAGENET_MEAN, IMAGENET_STD), "caffe": CaffeBGR,
             "gray": Gray, "none": nn.Identity}
    if preprocess not in named:
        raise DreamkitError(f"preprocess must be one of auto, {', '.join(named)} or a callable, "
                            f"not {preprocess!r}")
    return named[preprocess](), f"{preprocess} (as asked)"


def _auto(module: nn.Module, side: int | None) -> tuple[nn.Module, str]:
    declared = declared_normalization(module)
    if declared is not None:
        where, (mean, std) = declared
        return Normalize(mean, std), f"the mean and std of its {where}"
    inferred = inferred_normalization(module, side)
    if inferred is not None:
        name, path, (mean, std) = inferred
        return Normalize(mean, std), (f"{name}, read from the statistics of its first "
                                      f"BatchNorm, {path}")
    return Normalize(IMAGENET_MEAN, IMAGENET_STD), ("ImageNet's mean and std (it declares none, "
                                                    "and no trained BatchNorm fits a usual "
                                                    "scaling)")


def _hint(failures: str) -> str:
    """What to do when a module cannot run on RGB test images, from how it failed."""
    if "required positional argument" in failures:
        return ("its forward needs more than the images: wrap a small module whose forward(x) "
                "calls it with the rest")
    if "channels" in failures:
        return ("pass preprocess= a callable mapping RGB (B, 3, H, W) to the input it takes "
                "(lambda x: x.permute(0, 2, 3, 1) for channels-last input), or "
                "preprocess='gray' for a 1-channel network")
    return "pass input_size= if it needs a fixed size"


class WrappedModel(Model):
    """A user's module (dreamkit's own copy) with its preprocessing and a discovered table."""

    dream_defaults = dict(WRAPPED_DREAM)
    inputs: str  # what its preprocessing is, in words

    def __init__(self, module: nn.Module, preprocess: Preprocess = "auto",
                 name: str | None = None, input_size: int | None = None,
                 logits: Logits = "auto", layouts: Mapping[str, str] | None = None):
        super().__init__()
        self.name = name or type(module).__name__
        self.module = module.eval().requires_grad_(False)
        self.choose_logits = logits
        side = input_size or getattr(module, "image_size", None)
        first, self.inputs = preprocessing(preprocess, module,
                                           side if isinstance(side, int) else None)
        steps = [first]
        if isinstance(side, int):
            steps.insert(0, Resize(side))
        self.preprocess = nn.Sequential(*steps)
        self._graphs: dict[tuple[str, ...], nn.Module] = {}
        self._spliced: dict[str, nn.Module] = {}
        self._traceable = True
        self._tokens: dict[str, tuple[int, int]] = {}
        self._channels_last: set[str] = set()
        self._module_paths = {path for path, _ in module.named_modules()}
        self.layers = self._discover(side if isinstance(side, int) else None, dict(layouts or {}))

    def _probe(self, side: int) -> tuple[dict[str, Seen], object]:
        images = torch.zeros(2, 3, side, side, device=self.device, dtype=self.dtype)
        return probe(self.module, self.preprocess(images))

    def _discover(self, side: int | None, layouts: dict[str, str]):
        failures = []
        for probe_side in (side,) if side else PROBE_SIDES:
            try:
                seen, output = self._probe(probe_side)
            except Exception as exc:  # noqa: BLE001 - try the next size, then report
                failures.append(f"{probe_side} px: {type(exc).__name__}: {exc}")
                continue
            grown = 0
            if not side:
                try:
                    bigger, _ = self._probe(probe_side + GROWN)
                    grown = GROWN
                    seen = {p: replace(e, bigger=bigger[p].shape if p in bigger else None)
                            for p, e in seen.items()}
                except Exception:  # noqa: BLE001 - a fixed input size: keep this one
                    self.preprocess.insert(0, Resize(probe_side))
            seen = self._declare(seen, layouts)
            logits = self._logits(output)
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else ()
            for path, entry in seen.items():
                if len(entry.shape) == 3 and grid_of(entry.shape[1]):
                    self._tokens[path] = grid_of(entry.shape[1])  # type: ignore[assignment]
                elif len(entry.shape) == 4 and entry.layout() == "BHWC":
                    self._channels_last.add(path)
            try:
                return layer_table(self.name, self.module, seen, shape, probe_side, grown,
                                   calls=self._calls(probe_side), logits=bool(shape))
            except ValueError as exc:
                raise DreamkitError(str(exc)) from None
        raise DreamkitError(f"cannot run {self.name} on a test image ({'; '.join(failures)}); "
                            f"{_hint(str(failures))}")

    def _declare(self, seen: dict[str, Seen], layouts: dict[str, str]) -> dict[str, Seen]:
        """The user's declared layouts over the detected ones."""
        for layer, layout in layouts.items():
            if layout not in LAYOUTS:
                raise DreamkitError(f"layouts: {layer}'s layout must be one of "
                                    f"{', '.join(LAYOUTS)}, not {layout!r}")
            if layer not in seen or len(seen[layer].shape) != 4:
                raise DreamkitError(f"layouts: {self.name} has no layer {layer!r} with a "
                                    "4-dimensional output")
            seen[layer] = replace(seen[layer], declared=layout)
        return seen

    def _calls(self, side: int) -> dict[str, tuple[Seen, str]] | None:
        """The traced functional calls, for a module whose submodules make no table."""
        if any(True for _ in self.module.children()):
            return None
        images = torch.zeros(2, 3, side, side, device=self.device, dtype=self.dtype)
        try:
            found = node_shapes(self.module, self.preprocess(images))
        except Exception:  # noqa: BLE001 - fx cannot trace it: no functional layers
            return None
        return {name: (Seen(shape, 1, i), what)
                for i, (name, (shape, what)) in enumerate(found.items())}

    def _logits(self, output: object) -> torch.Tensor | None:
        """The logits in the module's output, as `logits=` says (None: the model has none)."""
        choice = self.choose_logits
        if choice == "auto":
            if isinstance(output, torch.Tensor):
                return output
            return output["logits"] if isinstance(output, Mapping) and isinstance(
                output.get("logits"), torch.Tensor) else None
        if choice is None:
            return None
        try:
            if callable(choice):
                picked = choice(output)
            elif isinstance(choice, str):
                picked = output[choice] if isinstance(output, Mapping) else getattr(output, choice)
            else:
                picked = output[choice]  # type: ignore[index]
        except (KeyError, IndexError, AttributeError, TypeError) as exc:
            keys = f" (it has {', '.join(map(str, output))})" if isinstance(output, Mapping) \
                else ""
            raise DreamkitError(f"{self.name}: logits={choice!r} picks nothing from its "
                                f"{type(output).__name__} output{keys}: {exc}") from None
        if not isinstance(picked, torch.Tensor):
            raise DreamkitError(f"{self.name}: logits={choice!r} gives "
                                f"{type(picked).__name__}, not a tensor")
        return picked

    def _apply(self, fn, recurse=True):  # moving devices or dtypes: rebuild the graphs
        self._graphs, self._spliced = {}, {}
        return super()._apply(fn, recurse)

    def _no_logits(self) -> DreamkitError:
        return DreamkitError(f"{self.name} has no logits (its output is not a tensor); name "
                             "them with wrap(..., logits=KEY, INDEX or a function)")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self._logits(self.module(self.preprocess(images)))
        if logits is None:
            raise self._no_logits()
        return logits

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
            found = self._graphs[paths].forward(x)
        else:
            found = hooked(self.module, x, paths)
        if OUTPUT in found:
            found[OUTPUT] = self._logits(found[OUTPUT])
        return found

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
            elif layer in self._channels_last:
                act = act.permute(0, 3, 1, 2)
            out[layer] = act
        return out

    def _as_output(self, layer: str, acts: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """Activations as dreamkit reads them, back in the layout the module outputs."""
        if layer in self._tokens:
            prefix = self._tokens[layer][0]
            tokens = acts.flatten(2).transpose(1, 2).to(output.dtype)
            return torch.cat([output[:, :prefix], tokens], dim=1)
        if layer in self._channels_last:
            return acts.permute(0, 2, 3, 1).to(output.dtype)
        return acts.to(output.dtype)

    def logits_from(self, layer: str, acts: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        if self._path(layer) == OUTPUT:
            return acts
        if self.layers.logits is None:
            raise self._no_logits()
        x = self.preprocess(images)
        if layer not in self._module_paths:  # a traced node of a functional module
            if layer not in self._spliced:
                self._spliced[layer] = spliced(self.module, layer)
            return self._logits(self._spliced[layer].forward(x, acts))  # type: ignore[return-value]

        def replace_output(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            return self._as_output(layer, acts, output)

        handle = self.module.get_submodule(layer).register_forward_hook(replace_output)
        try:
            return self._logits(self.module(x))  # type: ignore[return-value]
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


def wrap(module: nn.Module, preprocess: Preprocess = "auto", name: str | None = None, *,
         input_size: int | None = None, logits: Logits = "auto",
         layouts: Mapping[str, str] | None = None, copy: bool = True) -> WrappedModel:
    """Any `nn.Module` as a dreamkit model (`dream`, `render`, `capture`, directions,
    linearity, galleries and records take it like a built-in one).

    `preprocess` maps RGB [0, 1] images to what the module expects: `"auto"` (the mean and
    std the module declares in timm's `pretrained_cfg`, else the usual scaling that fits
    its first BatchNorm's running statistics, else ImageNet's; `.inputs` says which),
    `"imagenet"` (torchvision's mean and std), `"caffe"`, `"gray"`, `"none"` or a callable.
    `input_size`
    is the side a network needs exactly (images are resized to it; read from
    `module.image_size` when there). `logits` says where the class scores are in the output:
    `"auto"` (the output when it is a tensor, else its `"logits"` entry, else none), a key or
    attribute name (`"out"` of a segmentation model), an index into a tuple, a function of the
    output, or None (no logits: layer objectives only). `layouts` declares a layer's output
    layout, `{"features.1": "BHWC"}`, where detection would guess wrong.

    dreamkit works on a deep copy (put in eval mode and frozen, half-precision weights made
    fp32 as `precision=` assumes; ReLUs may be swapped for dreamkit's switchable one): the
    module you pass is never changed, and later changes to it
    do not reach the wrapped model. `copy=False` wraps the object itself (no second copy of
    the weights in memory), which dreamkit then changes as said.
    """
    if not isinstance(module, nn.Module):
        raise DreamkitError(f"wrap() takes an nn.Module, not {type(module).__name__}")
    label = name or type(module).__name__
    if isinstance(module, torch.jit.ScriptModule):
        raise DreamkitError(f"{label} is a TorchScript module (torch.jit.script, trace or load), "
                            "whose layers cannot be read one by one; wrap the Python module it was "
                            "made from")
    weights = next(module.parameters(), None)
    if weights is None:
        raise DreamkitError(f"{label} has no parameters to dream with")
    odd = sorted({str(p.dtype) for p in module.parameters() if not p.is_floating_point()})
    if odd:
        raise DreamkitError(f"{label} has {', '.join(odd)} weights; dreamkit needs floating-point "
                            "weights to take gradients (convert with module.float())")
    if copy:
        try:
            module = copying.deepcopy(module)
        except Exception as exc:  # noqa: BLE001 - a module holding something uncopyable
            raise DreamkitError(f"{label}: cannot copy the module to wrap it ({type(exc).__name__}"
                                f": {exc}); wrap(..., copy=False) wraps it in place") from None
    if any(p.dtype in (torch.float16, torch.bfloat16) for p in module.parameters()):
        module.float()  # dreamkit's loops run fp32 weights; --precision gives autocast's speed
    return WrappedModel(module, preprocess, name, input_size, logits, layouts)
