"""Feature visualization: optimize images from noise so that they maximize an objective.

`render` optimizes a batch of B images with Adam, each image with its own objective term, own
random initialisation and own random transforms (from generator `seed + i`), and the loss is
the sum of the per-image terms. Adam works element-wise, so image i of a batch comes out the
same as a single render with seed `seed + i` and its own objective, only faster. "The same" up
to rounding: convolution kernels sum in a batch-size-dependent order, and over many steps ReLU
and max-pool kinks amplify float32 rounding into visible differences. The image takes the
network's float type, so a `net.double()` renders in float64, where a batch of 64 and 64 single
renders agree to the last float32 digit (tested).

Deep layers often start dead: at the grey initial image a channel's ReLU is off everywhere, its
gradient is zero and the image would stay flat grey. Lucid's redirected ReLU fixes it: for an
image whose gradient through a ReLU is zero everywhere, the ReLU passes on the gradient that
would raise its input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from dreamkit.errors import DreamkitError
from dreamkit.models.staged import StagedNet
from dreamkit.objectives import Objective, as_objective
from dreamkit.param import ImageParam, make_param
from dreamkit.precision import resolve_precision
from dreamkit.tiling import Gradient, image_gradient
from dreamkit.transforms import Transform, apply_all, draw_all, standard

RECORD_EVERY = 16  # steps between reads of the objective values from the device


@dataclass
class RenderResult:
    """`images` (B, 3, H, W) in [0, 1] on the CPU; `history` (recorded steps, B) objective
    values, taken at `history_steps`; `settings` what is needed to render them again."""

    images: torch.Tensor
    history: torch.Tensor
    history_steps: list[int]
    settings: dict = field(default_factory=dict)


class _RedirectedReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.clamp_min(0)
        ctx.save_for_backward(y)  # the output, as PyTorch's ReLU saves it
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        relu_grad = torch.ops.aten.threshold_backward(grad, y, 0)  # plain ReLU's kernel
        dead = relu_grad.abs().amax(tuple(range(1, y.dim()))) == 0
        if grad.device.type == "cpu" and not dead.any():  # reading `dead` costs no sync here
            return relu_grad
        # the loss is minimized, so grad < 0 asks for a larger output: let that through
        redirected = grad.masked_fill((y == 0) & (grad > 0), 0)
        return torch.where(dead.view(-1, *[1] * (y.dim() - 1)), redirected, relu_grad)


class RedirectedReLU(nn.Module):
    """ReLU forward; lucid's redirected gradient backward (per image)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _RedirectedReLUFunction.apply(x)


@contextlib.contextmanager
def redirected_relus(net: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Temporarily swap every `nn.ReLU` module of `net` for a `RedirectedReLU`."""
    swapped = []
    if enabled:
        for parent in net.modules():
            for name, child in parent.named_children():
                if isinstance(child, nn.ReLU):
                    swapped.append((parent, name, child))
                    setattr(parent, name, RedirectedReLU())
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def make_step(
    gradient: Gradient,
    image: ImageParam,
    chain: Sequence[Transform],
    optimizer: torch.optim.Optimizer,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """One optimization step as a function of the step's transform parameters (B, K) -> (B,)
    objective values (left on the device). `gradient` runs the network (see `dreamkit.tiling`)."""

    def step(transform_params: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        x = apply_all(chain, image(), transform_params)
        values, grad = gradient(x)
        x.backward(-grad)  # the loss is -sum(values): ascend the objective
        optimizer.step()
        return values

    return step


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if min(h, w) < 16:
        raise DreamkitError(f"render size {h}x{w} is too small (at least 16 pixels a side)")
    return int(h), int(w)


def render(
    net: StagedNet,
    objective: Objective | str,
    *,
    param: str = "fft",
    decorrelate: bool = True,
    size: int | Sequence[int] = 224,
    batch: int | None = None,
    steps: int = 512,
    lr: float = 0.05,
    transforms: Sequence[Transform] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    precision: str = "auto",
    redirected_relu: bool = True,
    progress: bool = False,
    record_every: int = RECORD_EVERY,
) -> RenderResult:
    """Render images that maximize `objective` from noise.

    `batch` defaults to the objective's own batch (the length of its per-image lists) or 1.
    `transforms=None` is `transforms.standard()`, `[]` none. `device` defaults to the
    network's (the network is moved there otherwise).
    """
    objective = as_objective(objective)
    batch = batch if batch is not None else objective.batch or 1
    if objective.batch is not None and batch != objective.batch:
        raise DreamkitError(f"the objective is defined for {objective.batch} images, not {batch}")
    if steps < 1 or batch < 1 or lr <= 0:
        raise DreamkitError("steps and batch must be at least 1 and lr positive")
    h, w = _size(size)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    net = net.to(device)
    dtype = resolve_precision(precision, device)
    chain = standard() if transforms is None else list(transforms)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
    real = next(net.parameters()).dtype  # float32; float64 for a `net.double()`
    image = make_param(param, (h, w), generators, decorrelate).to(device, real)
    table = torch.stack([draw_all(chain, g, steps) for g in generators]).to(device, real)
    optimizer = torch.optim.Adam(image.parameters(), lr=lr)
    objective.prepare(net)
    gradient = image_gradient(net, objective, dtype, (batch, 3, h, w))  # chunked if too big
    step = make_step(gradient, image, chain, optimizer)
    rows, recorded = [], []
    with redirected_relus(net, redirected_relu), tqdm(
        total=steps, disable=not progress, unit="step", desc="rendering", leave=False
    ) as bar:
        for t in range(steps):
            values = step(table[:, t])
            if t % record_every == 0 or t == steps - 1:
                rows.append(values.cpu())
                recorded.append(t)
                bar.set_postfix(objective=f"{rows[-1].mean():.3g}")
            bar.update()
    with torch.no_grad():
        images = image().float().cpu()
    settings = {
        "model": getattr(net, "name", type(net).__name__), "objective": objective.name,
        "param": param, "decorrelate": decorrelate, "size": [h, w], "batch": batch,
        "steps": steps, "lr": lr, "seed": seed, "precision": precision,
        "redirected_relu": redirected_relu,
        "transforms": "standard" if transforms is None else [repr(t) for t in chain],
    }
    return RenderResult(images, torch.stack(rows), recorded, settings)
