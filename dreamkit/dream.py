"""Octave DeepDream of an existing photo, after the original google/deepdream notebook.

Each octave is the photo at a smaller scale plus the detail dreamed so far (upsampled); each step
rolls the image by a random offset (jitter), smooths the objective's gradient (a blur prior
against high-frequency noise), ascends it normalized by its mean magnitude (step = lr * g /
mean|g|) and rolls back. Only the added detail travels between octaves, so the output keeps the
photo's own resolution and content. Octaves smaller than the layer can see are skipped; a photo
smaller than that is refused with the size it needs. With a `gain`, an octave ends as soon as
the objective reaches that multiple of the photo's own at the octave's size, so a network that
responds strongly takes few steps and a weak one up to `steps`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from dreamkit.checks import check_images, check_model
from dreamkit.compiled import compile_mode
from dreamkit.display import Picture, show
from dreamkit.errors import DivergedError, DreamkitError
from dreamkit.gradients import Gradient, image_gradient
from dreamkit.layers import LOGITS
from dreamkit.loop import check_finite, settings_with, what_ran
from dreamkit.models.base import Model
from dreamkit.objectives import Objective, as_objective
from dreamkit.precision import resolve_precision
from dreamkit.progress import tqdm
from dreamkit.settings import Bounds, DreamSettings, check
from dreamkit.transforms import gaussian_blur

__all__ = ["DivergedError", "DreamSettings", "Dreamed", "dream", "dream_step", "octave_sizes"]

MIN_OCTAVE_SIDE = 32  # smaller octaves carry no useful detail and starve deep layers
MAX_RECOVER = 8  # retries at half the lr a diverged dream may ask for
GAIN_CHECK = 4  # steps between reads of the objective against `gain` (a read waits on a GPU)


class Dreamed(torch.Tensor):
    """What `dream` returns: the dreamed image(s), a tensor like any other (an operation that
    makes a new tensor gives a plain `torch.Tensor`; saved and pickled as one) that also keeps
    the `photo` it started from (the input as given, not a copy), the `objective`'s name and
    what `ran`; in a notebook it shows the photo beside the dream."""

    photo: torch.Tensor
    objective: str
    ran: dict
    settings: DreamSettings | None

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))

    @staticmethod
    def of(image: torch.Tensor, photo: torch.Tensor, objective: str, ran: dict,
           settings: DreamSettings | None = None) -> Dreamed:
        made = image.as_subclass(Dreamed)
        made.photo = photo.as_subclass(torch.Tensor)  # a dream of a dream: no chain of photos
        made.objective, made.ran, made.settings = objective, ran, settings
        return made

    def __reduce_ex__(self, protocol):  # saved and pickled as a plain tensor (torch.load-safe)
        return self.as_subclass(torch.Tensor).__reduce_ex__(protocol)

    def __deepcopy__(self, memo: dict) -> Dreamed:
        plain = self.as_subclass(torch.Tensor)
        return Dreamed.of(plain.clone(), self.photo.clone(), self.objective, dict(self.ran),
                          self.settings)

    def show(self, max_cell: int = 384) -> Picture:
        """Photo and dream side by side, one row per image of a batch."""
        before = self.photo if self.photo.dim() == 4 else self.photo[None]
        after = self if self.dim() == 4 else self[None]
        size = tuple(after.shape[-2:])
        cells = [im for pair in zip(_resize(before.float(), size).clamp(0, 1).cpu(),
                                    after.float().cpu(), strict=True) for im in pair]
        return show(cells, ["photo", self.objective] * len(after), columns=2, max_cell=max_cell)

    def _repr_png_(self) -> bytes:
        return self.show().png()


def octave_sizes(height: int, width: int, settings: DreamSettings,
                 min_side: int = MIN_OCTAVE_SIDE) -> list[tuple[int, int]]:
    """Image sizes from the smallest octave to the full size; octaves whose short side is
    under `min_side` are dropped (the full size always stays)."""
    sizes = []
    for i in range(settings.octaves):
        scale = settings.octave_scale**i
        size = (max(1, round(height / scale)), max(1, round(width / scale)))
        if i > 0 and min(size) < min_side:
            break
        sizes.append(size)
    return sizes[::-1]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def fit_side(image: torch.Tensor, side: int | None) -> torch.Tensor:
    """`image` (B, 3, H, W) resized so its longer side is `side` (None: as it is)."""
    if side is None:
        return image
    h, w = image.shape[-2:]
    scale = side / max(h, w)
    return _resize(image, (max(1, round(h * scale)), max(1, round(w * scale)))).clamp(0, 1)


def check_reach(net: Model, objective: Objective, height: int, width: int) -> int:
    """The smallest side the objective's layers can see; refuses a smaller photo."""
    needed = max(net.min_side(net.layers.resolve(layer).name) for layer in objective.needs)
    if min(height, width) < needed:
        layer = max(objective.needs, key=lambda n: net.min_side(net.layers.resolve(n).name))
        what = "the logits" if layer == LOGITS else layer
        raise DreamkitError(f"the photo is {width}x{height} pixels; {what} of {net.name} needs "
                            f"at least {needed}x{needed} (enlarge it with --size PX)")
    return needed


def dream_step(image: torch.Tensor, gradient: Gradient, settings: DreamSettings,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One jittered, normalized gradient-ascent step on a (B, 3, H, W) image in [0, 1];
    returns the new image and the objective values (B,) before the step."""
    jitter = min(settings.jitter, max(image.shape[-2:]))
    dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator)
    shift = (int(dy), int(dx))
    shifted = image.roll(shift, dims=(2, 3))
    values, grad = gradient(shifted)
    grad = gaussian_blur(grad, settings.blur)  # a smoothness prior on the step
    scale = grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    grad = grad / (scale + values.view(-1, 1, 1, 1) * 0)  # a non-finite loss poisons the step
    stepped = shifted.detach().add_(grad, alpha=settings.lr / 255.0)
    return stepped.roll((-shift[0], -shift[1]), dims=(2, 3)).clamp_(0.0, 1.0), values


def dream(
    net: Model,
    image: torch.Tensor,
    objective: Objective | str | None = None,
    settings: DreamSettings | None = None,
    *,
    progress: bool = False,
    on_octave: Callable[[int, torch.Tensor], None] | None = None,
    on_step: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    plans: list[str] | None = None,
    ran: dict | None = None,
    recover: int = 0,
    **overrides,
) -> Dreamed:
    """Dream `image` (3, H, W) or (B, 3, H, W), RGB in [0, 1]; returns the same shape (the
    longer side `settings.size` when that is set) as a `Dreamed` tensor, which shows the
    photo beside the dream in a notebook.

    Settings come from `settings` (`DreamSettings`; default: the classic ones, or the model's
    own `dream_defaults`) with keyword overrides (`steps=5`, `precision="fp32"`, `tile=0`).
    `objective` defaults to the norm of the model's default layer. `on_octave(index, image)`
    is called after each octave with the dream so far at the output size; `on_step(step,
    image, values)` after every step (`dreamkit.Preview` shows the dream as it grows).
    `plans` forces each octave's gradient plan (a record's); `ran`, when given, is filled
    with what really ran (device, precision, plans; also the result's `.ran`). Raises
    DivergedError when a loss or gradient is not finite (checked once per octave, so the loop
    never waits on a GPU); with `recover=N` it first tries again up to N times, at half the
    lr each time (the result's `.settings` are the ones that finished).
    """
    settings = settings_with(DreamSettings, settings, overrides, "dream", net.dream_defaults
                             if isinstance(net, Model) else None)
    check("recover", recover, Bounds(int, low=0, high=MAX_RECOVER))
    while True:
        try:
            return _dream(net, image, objective, settings, progress, on_octave, on_step, plans,
                          ran)
        except DivergedError:
            if recover == 0:
                raise
            recover -= 1
            settings = settings.replace(lr=settings.lr / 2)
            warnings.warn(f"the dream diverged; retrying at lr {settings.lr:g}", RuntimeWarning,
                          stacklevel=2)


def _dream(net: Model, image: torch.Tensor, objective, settings: DreamSettings, progress: bool,
           on_octave, on_step, plans: list[str] | None, ran: dict | None) -> Dreamed:
    check_model(net)
    image = check_images(image, "image")
    objective = as_objective(objective or net.layers.default).prepare(net)
    single = image.dim() == 3
    device = next(net.parameters()).device
    dtype = resolve_precision(settings.precision, device)
    base = fit_side((image[None] if single else image).to(device, torch.float32), settings.size)
    reach = check_reach(net, objective, *base.shape[-2:])
    generator = torch.Generator().manual_seed(settings.seed)
    sizes = octave_sizes(base.shape[-2], base.shape[-1], settings, max(reach, MIN_OCTAVE_SIDE))
    if plans is not None and len(plans) != len(sizes):
        raise DreamkitError(f"{len(plans)} gradient plans for {len(sizes)} octaves")
    detail = torch.zeros_like(_resize(base, sizes[0]))
    used, compiled, step_index = [], [], 0
    mode = compile_mode(settings.compile, device, settings.steps, fixed_shape=False)
    with tqdm(total=len(sizes) * settings.steps, disable=not progress, unit="step",
              desc="dreaming", leave=False) as bar:
        for index, size in enumerate(sizes):
            octave_base = _resize(base, size)
            dreamed = (octave_base + _resize(detail, size)).clamp_(0.0, 1.0)
            gradient, plan = image_gradient(net, objective, dtype, dreamed.shape, settings.tile,
                                            plans[index] if plans else None,
                                            **({"compile": mode} if mode else {}))
            used.append(plan)
            target = settings.gain * gradient(octave_base)[0] if settings.gain else None
            for step in range(settings.steps):
                dreamed, values = dream_step(dreamed, gradient, settings, generator)
                if on_step is not None:
                    on_step(step_index, dreamed, values)
                step_index += 1
                bar.update()
                if target is not None and step % GAIN_CHECK == GAIN_CHECK - 1 and bool(
                        (values >= target).all()):
                    bar.update(settings.steps - step - 1)
                    break
            compiled.append(getattr(gradient, "compiled", False))
            check_finite(dreamed, what=f"the dream diverged in octave {index + 1} of {len(sizes)} "
                         "(NaN or infinite loss or gradient)")
            detail = dreamed - octave_base
            if on_octave is not None:
                so_far = (base + _resize(detail, tuple(base.shape[-2:]))).clamp_(0.0, 1.0)
                on_octave(index, so_far[0] if single else so_far)
    report = what_ran(device, dtype, used, all(compiled))
    if ran is not None:
        ran.update(report)
    return Dreamed.of(dreamed[0] if single else dreamed, image, objective.name, report,
                      settings)
