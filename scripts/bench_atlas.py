"""The activation atlas's case of `scripts/bench.py` (which imports this module):

  (t) an activation atlas of inception4c (`dreamkit atlas`'s defaults: grid 20, 32 positions a
      photo, the CPU recipe of 80 px and 128 steps on a CPU) over the first `--atlas-photos`
      photos of the folder (all 500 shared photos at the full size): its time, the share of it
      spent collecting the vectors, laying them out, rendering the cells and cutting the
      examples, the peak memory, and what the site measured (faithfulness, trustworthiness).
      One run, no repeats, minutes long on a CPU: only when asked (`--cases t`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch
from bench_common import LAYER, _peak_mb, _reset_peak

from dreamkit.atlas import atlas
from dreamkit.atlas.build import render_defaults
from dreamkit.image_io import list_images
from dreamkit.models.base import Model
from dreamkit.settings import AtlasSettings, RenderSettings


def bench_atlas(net: Model, device: torch.device, folder: Path, photos: int) -> list[dict]:
    render = RenderSettings(**render_defaults(device))
    settings = AtlasSettings(layer=LAYER)
    with tempfile.TemporaryDirectory() as scratch:
        chosen = Path(scratch) / "photos"
        chosen.mkdir()
        for path in list_images(folder)[:photos]:
            shutil.copy(path, chosen / path.name)
        _reset_peak(device)
        start = time.perf_counter()
        made = atlas(net, chosen, Path(scratch) / "atlas", settings, render)
        seconds = time.perf_counter() - start
    figures = made.figures
    layout, whole = figures["layout"], figures["views"]["layer"]
    what = (f"(t) activation atlas of {LAYER}, {layout['photos']} photos, grid "
            f"{settings.grid}, {render.size} px x {render.steps} steps, {whole['cells']} cells")
    return [dict(case=what, variant="dreamkit atlas (defaults)", seconds=seconds,
                 peak_mb=_peak_mb(device), atlas_shares=figures["shares"],
                 atlas_seconds=figures["seconds"],
                 faithfulness=whole["faithfulness"]["beats_neighbours"],
                 faithfulness_all=whole["faithfulness"]["best_of_all"],
                 trustworthiness=layout["trustworthiness"],
                 trustworthiness_pca=layout["trustworthiness_pca"])]
