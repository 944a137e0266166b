"""Feature visualization: optimize images from noise so that they maximize an objective.

`render` optimizes a batch of B images, each with its own objective term, own random
initialisation and own random transforms (from generator `seed + i`), and the loss is the sum
of the per-image terms. Adam works element-wise, so image i of a batch comes out the same as a
single render with seed `seed + i` and its own objective, only faster. "The same" up to
rounding: convolution kernels sum in a batch-size-dependent order, and over many steps ReLU and
max-pool kinks amplify float32 rounding into visible differences. The image takes the
network's float type, so a `net.double()` renders in float64, where a batch of 64 and 64 single
renders agree to the last float32 digit (tested). Deep layers that start dead are kept alive
by lucid's redirected ReLU (`dreamkit.models.relu`).

The loop is open where users extend it: a parameterization instance (`param=`), an optimizer
factory (`optimizer=`) and a callback `on_step(step, images, values)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from dreamkit.checks import check_model
from dreamkit.compiled import compile_mode
from dreamkit.display import Picture, show
from dreamkit.errors import DreamkitError
from dreamkit.gradients import Gradient, image_gradient
from dreamkit.loop import check_finite, settings_with, what_ran
from dreamkit.models.base import Model
from dreamkit.models.relu import redirected
from dreamkit.objectives import Objective, as_objective
from dreamkit.param import ImageParam, make_param
from dreamkit.precision import resolve_precision
from dreamkit.progress import tqdm
from dreamkit.settings import RenderSettings, check_batch
from dreamkit.transforms import Transform, apply_all, draw_all, standard

RECORD_EVERY = 16  # steps between reads of the objective values from the device
OnStep = Callable[[int, torch.Tensor, torch.Tensor], None]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass
class RenderResult:
    """`images` (B, 3, H, W) in [0, 1] on the CPU; `history` (recorded steps, B) objective
    values, taken at `history_steps`; `settings` what was asked; `ran` what really ran
    (device, precision, gradient plan), for records; `labels` what each image maximizes. In a
    notebook it shows itself as a grid captioned with each image's final value and target."""

    images: torch.Tensor
    history: torch.Tensor
    history_steps: list[int]
    settings: RenderSettings
    objective: str = ""
    ran: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        b, _, h, w = self.images.shape
        final = ", ".join(f"{v:.3g}" for v in self.history[-1].tolist()[:8])
        return (f"RenderResult({b} image(s) {w}x{h}, {self.objective[:80]}, final values "
                f"[{final}{', ...' if b > 8 else ''}], {self.ran.get('device', '?')})")

    def show(self, columns: int | None = None) -> Picture:
        """The images in a grid (up to 8 a row), each captioned `final value · target`."""
        final = self.history[-1].tolist()
        names = self.labels or [self.objective] * len(final)
        if len(set(names)) == 1:
            title, names = names[0], [""] * len(names)
        else:  # what all share goes in the title: "inception4c:" + "97"
            shared = os.path.commonprefix(names)
            title = shared[:max(shared.rfind(":"), shared.rfind(" ")) + 1]
            names = [name[len(title):] for name in names]
        captions = [f"{v:.3g} · {name}".rstrip(" ·") for v, name in zip(final, names, strict=True)]
        return show(self.images, captions, columns=columns, title=title.strip())

    def _repr_png_(self) -> bytes:
        return self.show().png()


def make_step(gradient: Gradient, image: ImageParam, chain: Sequence[Transform],
              optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor], torch.Tensor]:
    """One optimization step as a function of the step's transform parameters (B, K) -> (B,)
    objective values (left on the device). `gradient` runs the network
    (see `dreamkit.gradients`)."""

    def step(transform_params: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        x = apply_all(chain, image(), transform_params)
        values, grad = gradient(x)
        x.backward(-grad)  # the loss is -sum(values): ascend the objective
        optimizer.step()
        return values

    return step


def render(
    net: Model,
    objective: Objective | str,
    settings: RenderSettings | None = None,
    *,
    batch: int | None = None,
    param: str | ImageParam | None = None,
    transforms: str | Sequence[Transform] | None = None,
    optimizer: OptimizerFactory | None = None,
    on_step: OnStep | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    record_every: int = RECORD_EVERY,
    plan: str | None = None,
    **overrides,
) -> RenderResult:
    """Render images that maximize `objective` from noise.

    Settings come from `settings` (`RenderSettings`) with keyword overrides (`size=128,
    steps=64`). `param` and `transforms` also take objects: an `ImageParam` instance (its
    batch and size are used) and a list of `Transform`s. `batch` defaults to the objective's
    own batch (its per-image lists) or 1. `optimizer(params)` makes the optimizer (default:
    Adam at `lr`); `on_step(step, images, values)` is called after every step with the
    current images (B, 3, H, W) and objective values (B,). `plan` forces the gradient plan
    (`full`, `chunk:N`; see `dreamkit.gradients`). `device` defaults to the network's.
    """
    check_model(net)
    custom_param = param if isinstance(param, ImageParam) else None
    custom_chain = None if transforms is None or isinstance(transforms, str) else list(transforms)
    for name, value in (("param", param), ("transforms", transforms)):
        if isinstance(value, str):
            overrides[name] = value
    settings = settings_with(RenderSettings, settings, overrides, "render")
    objective = as_objective(objective)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    net = net.to(device)
    real = next(net.parameters()).dtype  # float32; float64 for a `net.double()`
    if custom_param is not None:
        image = custom_param.to(device, real)
        with torch.no_grad():
            shape = tuple(image().shape)
        batch, size = shape[0], shape[-2:]
    else:
        batch = batch if batch is not None else objective.batch or 1
        size = (settings.size, settings.size)
    check_batch(tuple(size), batch)  # type: ignore[arg-type]
    if objective.batch is not None and batch != objective.batch:
        raise DreamkitError(f"the objective is defined for {objective.batch} images, not {batch}")
    dtype = resolve_precision(settings.precision, device)
    chain = custom_chain if custom_chain is not None else \
        standard() if settings.transforms == "standard" else []
    generators = [torch.Generator().manual_seed(settings.seed + i) for i in range(batch)]
    if custom_param is None:
        image = make_param(settings.param, size, generators, settings.decorrelate).to(device, real)
    table = torch.stack([draw_all(chain, g, settings.steps) for g in generators]).to(device, real)
    made = optimizer(image.parameters()) if optimizer else \
        torch.optim.Adam(image.parameters(), lr=settings.lr)
    objective.prepare(net)
    mode = compile_mode(settings.compile, device, settings.steps, fixed_shape=True)
    gradient, plan = image_gradient(net, objective, dtype, (batch, 3, *size), plan=plan,
                                    **({"compile": mode} if mode else {}))
    step = make_step(gradient, image, chain, made)
    rows, recorded = [], []
    with redirected(settings.redirected_relu), tqdm(
        total=settings.steps, disable=not progress, unit="step", desc="rendering", leave=False
    ) as bar:
        for t in range(settings.steps):
            values = step(table[:, t])
            if on_step is not None:
                with torch.no_grad():
                    on_step(t, image().detach(), values)
            if t % record_every == 0 or t == settings.steps - 1:
                rows.append(values.float().cpu())
                recorded.append(t)
                bar.set_postfix(objective=f"{rows[-1].mean():.3g}")
            bar.update()
    with torch.no_grad():
        images = image().float().cpu()
    check_finite(images, rows[-1], what="the render diverged (NaN or infinite objective or "
                 "gradient)")
    ran = what_ran(device, dtype, [plan], getattr(gradient, "compiled", False))
    return RenderResult(images, torch.stack(rows), recorded, settings, objective.name, ran,
                        objective.image_labels(batch))
