"""Making a recorded picture again, and what that costs: the layer between the records (data)
and the loops (`dream`, `render`), shared by `reproduce`, galleries and the microscope.

`work` counts a recipe's cost in pixel-steps as its settings really spend them (gradient plans
with their tiles' margins, network passes, compiles), `peak_pixels` the most pixels one step
holds at once; `reproduce` budgets both before any work.
"""

from __future__ import annotations

from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.records import Photo, Recipe
from dreamkit.targets import picture_objective

PASS_WORK = 4096  # pixel-steps one network pass costs whatever its size (launch, allocation)
TILE_PASSES = 1.5  # a tile runs forward twice (the cores' activations, then the backward)
COMPILE_WORK = 16_000_000  # one torch.compile of a step: 30 s to minutes on a CPU
PIXELS_PER_MILLION = 500_000  # pixels one step may hold per million of budget (4: ~2 GB)


def _plan_peak(plan: str, batch: int, h: int, w: int) -> int:
    """The pixels whose activations one step of `plan` holds at once (memory follows it)."""
    kind, _, count = plan.partition(":")
    if kind == "tile":
        from dreamkit.gradients import HALO

        tile = int(count)
        return batch * min(h, tile + 2 * HALO) * min(w, tile + 2 * HALO)
    return (min(batch, int(count)) if kind == "chunk" else batch) * h * w


def _plan_work(plan: str, batch: int, h: int, w: int) -> float:
    """The pixel-steps of one step of `batch` images of h x w computed by `plan`: tiles count
    their margins of context and their passes, chunks their passes."""
    kind, _, count = plan.partition(":")
    if kind == "tile":
        from dreamkit.gradients import HALO

        tile = int(count)
        tiles = -(-h // tile) * -(-w // tile)
        region = min(h, tile + 2 * HALO) * min(w, tile + 2 * HALO)
        return batch * tiles * (TILE_PASSES * region + 2 * PASS_WORK)
    passes = -(-batch // int(count)) if kind == "chunk" else 1
    return batch * h * w + passes * PASS_WORK


def _steps_of(recipe: Recipe, photo_size: tuple[int, int] | None,
              plans: list[str] | None) -> tuple[int, list[tuple[str, int, int, int]]]:
    """(steps per size, [(plan, batch, h, w)] for each octave or the render)."""
    settings = recipe.settings
    if recipe.command == "vis":
        sizes, batch = [(settings.size, settings.size)], len(recipe.batch)  # type: ignore[union-attr]
    else:
        h, w = photo_size or (recipe.input.crop,) * 2  # type: ignore[union-attr]
        scales = [settings.octave_scale**i for i in range(settings.octaves)]  # type: ignore[union-attr]
        sizes = [(max(1, round(h / s)), max(1, round(w / s))) for s in scales][::-1]
        batch = 1
    tile = getattr(settings, "tile", None)
    runs = [(plans[i] if plans and i < len(plans) else
             f"tile:{tile}" if tile and max(h, w) > tile else "full", batch, h, w)
            for i, (h, w) in enumerate(sizes)]
    return settings.steps, runs


def work(recipe: Recipe, photo_size: tuple[int, int] | None = None,
         plans: list[str] | None = None, cuda: bool = False) -> int:
    """What making `recipe` costs, in pixel-steps: each octave's (or the render's) pixels
    times its steps as its gradient plan computes them (`plans`, as a record keeps them, else
    what the `tile` setting asks for), plus every torch.compile the settings ask for on this
    device (`cuda`). `photo_size` is the photo as dreamed."""
    from dreamkit.compiled import AUTO_MIN_STEPS

    steps, runs = _steps_of(recipe, photo_size, plans)
    total = sum(steps * _plan_work(*run) for run in runs)
    choice = recipe.settings.compile
    compiled = choice == "on" or (choice == "auto" and cuda and steps >= AUTO_MIN_STEPS)
    return int(total + (len(runs) * COMPILE_WORK if compiled else 0))


def check_work(recipe: Recipe, photo_size: tuple[int, int] | None, plans: list[str] | None,
               budget: float, cuda: bool, what: str = "this",
               advice: str = "pass --budget {needed:.0f} to go ahead") -> float:
    """The work of `recipe` in millions of pixel-steps, refused (DreamkitError) over `budget`,
    or when one step would hold more than `PIXELS_PER_MILLION` pixels per million of budget;
    `what` names the job in the message, `advice` says what to do (`{needed}`: millions)."""
    needed = work(recipe, photo_size, plans, cuda) / 1e6
    if needed > budget:
        raise DreamkitError(f"{what} takes {needed:,.1f} million pixel-steps of work, more than "
                            f"the budget of {budget:g}; " + advice.format(needed=needed))
    peak = peak_pixels(recipe, photo_size, plans)
    if peak > budget * PIXELS_PER_MILLION:
        wanted = peak / PIXELS_PER_MILLION
        raise DreamkitError(f"{what} needs {peak:,} pixels at once in one step, more memory "
                            f"than the budget of {budget:g} allows; "
                            + advice.format(needed=wanted))
    return needed


def dream_picture(net, image, recipe: Recipe, out: str | Path, *, on_step=None, on_octave=None,
                  recover: int = 0, progress: bool = False):
    """Dream `image` as `recipe` says (a dream recipe: its targets, settings and photo) and save
    it to `out` with its record, so `dreamkit reproduce` makes it again; the record keeps the
    settings that finished (`recover` may halve the lr). Returns the `Dreamed` result."""
    from dataclasses import replace

    from dreamkit.dream import dream
    from dreamkit.image_io import save_image
    from dreamkit.records import Record, provenance
    from dreamkit.targets import objective_of

    ran: dict = {}
    result = dream(net, image, objective_of(recipe.target, recipe.model), recipe.settings,
                   progress=progress, on_step=on_step, on_octave=on_octave, ran=ran,
                   recover=recover)
    record = Record(replace(recipe, settings=result.settings), net.weights_sha256(),
                    provenance(ran))
    save_image(result, out, metadata=record.metadata())
    return result


def peak_pixels(recipe: Recipe, photo_size: tuple[int, int] | None = None,
                plans: list[str] | None = None) -> int:
    """The most pixels one step of making `recipe` holds activations for at once."""
    return max(_plan_peak(*run) for run in _steps_of(recipe, photo_size, plans)[1])


def photo_pixels(photo: Photo, path: str | Path | None = None):
    """The photo of a dream recipe (3, H, W): checked against its SHA-256 (from `path` when it
    has moved), cut to its square crop."""
    from kornia.geometry.transform import resize

    from dreamkit.files import file_sha256
    from dreamkit.image_io import load_image

    source = Path(path or photo.path)
    if file_sha256(source, "photo") != photo.sha256:
        raise DreamkitError(f"{source}: not the photo this picture was made from (SHA-256 "
                            "differs)")
    image = load_image(source)
    if photo.crop is None:
        return image
    image = resize(image[None], photo.crop, side="short", antialias=True)[0].clamp(0, 1)
    top, left = (image.shape[1] - photo.crop) // 2, (image.shape[2] - photo.crop) // 2
    return image[:, top:top + photo.crop, left:left + photo.crop].contiguous()


def make(recipe: Recipe, net, *, photo: str | Path | None = None,
         plans: list[str] | None = None, progress: bool = False, on_step=None):
    """The pixels (3, H, W) of `recipe` made with `net`, and what ran (device, precision,
    plans). A vis recipe renders its whole batch and keeps its own picture. `on_step(step,
    images, values)` is called after every step (a deadline may raise from it)."""
    if recipe.command == "dream":
        from dreamkit.dream import dream
        from dreamkit.targets import objective_of

        image = photo_pixels(recipe.input, photo)  # type: ignore[arg-type]
        ran: dict = {}
        out = dream(net, image, objective_of(recipe.target, recipe.model), recipe.settings,
                    plans=plans, ran=ran, progress=progress, on_step=on_step)  # type: ignore[arg-type]
        return out, ran
    from dreamkit.render import render

    result = render(net, picture_objective(recipe.batch, recipe.model), recipe.settings,  # type: ignore[arg-type]
                    batch=len(recipe.batch), plan=plans[0] if plans else None,
                    progress=progress, on_step=on_step)
    return result.images[recipe.index], result.ran
