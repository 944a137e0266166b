"""Settings as data: every knob of a dream, a render, a zoom and every job, with its default,
its bounds and its help text, in one place (`fields` holds the machinery and the limits,
`jobs` the jobs' settings; everything is importable from here).

CLI flags (`dreamkit.commands.common.add_settings`), gallery configs and PNG records are
generated from and checked against these fields, so a bad value gets the same one-line message
from every door: `steps (--steps) must be an integer from 1 to 10,000, not 0`. This package
imports nothing heavy (no torch), so `--help` and argument checks stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dreamkit.settings.fields import (
    COMPILES,
    DEFAULT_MAX_PIXELS,
    MAX_AXIS_VALUES,
    MAX_CROP_SIDE,
    MAX_CROPS,
    MAX_DIRECTIONS,
    MAX_FEATURES,
    MAX_FOLDS,
    MAX_K,
    MAX_MAX_PIXELS,
    MAX_PATH,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MAX_TARGETS,
    MAX_TEXT,
    MAX_TILES,
    MIN_SIDE,
    PARAMS,
    PIXEL_BUDGET,
    PRECISIONS,
    SAVE_EXTENSIONS,
    TRANSFORMS,
    Bounds,
    Settings,
    _compile,
    _precision,
    _seed,
    _tile_rule,
    check,
    check_batch,
    check_max_pixels,
    check_text,
    check_threads,
    cores,
    label,
    setting,
)
from dreamkit.settings.jobs import (
    ATLAS_CPU_RENDER,
    FLOWS,
    MAX_ANIMATION_FRAMES,
    MAX_ATLAS_GRID,
    MAX_FPS,
    MAX_FRAMES,
    MICROSCOPE_CPU_RENDER,
    PREVIEW_SIDE,
    AtlasSettings,
    DictionarySettings,
    DictionarySweepSettings,
    DirectionSettings,
    FrameRange,
    LinearitySettings,
    MicroscopeSettings,
    ReproduceSettings,
    StudioSettings,
    VideoSettings,
    frame_range,
)

__all__ = [
    "ATLAS_CPU_RENDER", "AtlasSettings", "MAX_ATLAS_GRID",
    "COMPILES", "DEFAULT_MAX_PIXELS", "FLOWS", "MAX_ANIMATION_FRAMES", "MAX_AXIS_VALUES",
    "MAX_CROPS", "MAX_CROP_SIDE", "MAX_DIRECTIONS", "MAX_FEATURES", "MAX_FOLDS", "MAX_FPS",
    "MAX_FRAMES", "MAX_K", "MAX_MAX_PIXELS", "MAX_PATH", "MAX_SEED", "MAX_SIDE", "MAX_STEPS",
    "MAX_TARGETS", "MAX_TEXT", "MAX_TILES", "MICROSCOPE_CPU_RENDER", "MIN_SIDE", "PARAMS",
    "PIXEL_BUDGET", "PRECISIONS", "PREVIEW_SIDE", "SAVE_EXTENSIONS", "TRANSFORMS", "Bounds",
    "DictionarySettings", "DictionarySweepSettings", "DirectionSettings", "DreamSettings",
    "FrameRange",
    "LinearitySettings", "MicroscopeSettings", "RenderSettings", "ReproduceSettings",
    "Settings", "StudioSettings", "VideoSettings", "ZoomSettings", "check", "check_batch",
    "check_max_pixels", "check_text", "check_threads", "cores", "frame_range", "label",
    "setting",
]


@dataclass(frozen=True)
class DreamSettings(Settings):
    """The knobs of a dream; defaults are the classic notebook's (4 octaves x 1.4, 10 steps)."""

    kind: ClassVar[str] = "dream"
    octaves: int = setting(4, "number of scales, smallest first", low=1, high=16)
    octave_scale: float = setting(1.4, "size ratio between octaves", above=1, high=4)
    steps: int = setting(10, "gradient steps per octave", low=1, high=MAX_STEPS)
    lr: float = setting(1.5, "step size in 0-255 pixel units", above=0, high=255)
    jitter: int = setting(32, "largest random shift per step, pixels", low=0, high=1024)
    blur: float = setting(0.5, "gradient smoothing sigma in pixels, 0 = off", low=0, high=64)
    gain: float = setting(0.0, "end an octave once the objective is X times the photo's at "
                          "that size (steps is then the most it takes); 0 = off, every step "
                          "runs", low=0, high=1000, metavar="X",
                          rule=(lambda x: x == 0 or x > 1, "0 or above 1"))
    seed: int = _seed("random seed; the same seed gives the same image")
    size: int | None = setting(None, "resize the photo so its longer side is PX pixels",
                               unset="the photo's own size", kind=int, low=MIN_SIDE,
                               high=MAX_SIDE, optional=True)
    precision: str = _precision()
    tile: int | None = setting(None, "compute gradients on PX-pixel tiles; 0 = never",
                               unset="only for images too big for the free memory", kind=int,
                               low=0, high=8192, optional=True,
                               rule=(_tile_rule, "0 or a multiple of 32"))
    compile: str = _compile()


@dataclass(frozen=True)
class RenderSettings(Settings):
    """The knobs of a feature visualization rendered from noise (lucid's recipe by default)."""

    kind: ClassVar[str] = "render"
    param: str = setting("fft", "image parameterization", choices=PARAMS)
    decorrelate: bool = setting(True, "optimize decorrelated colours (off: plain RGB)")
    size: int = setting(224, "side of the square images in pixels", low=MIN_SIDE, high=MAX_SIDE)
    steps: int = setting(512, "optimization steps", low=1, high=MAX_STEPS)
    lr: float = setting(0.05, "Adam step size", above=0, high=10)
    seed: int = _seed("random seed of the first image; image k uses SEED + k")
    precision: str = _precision()
    transforms: str = setting("standard", "robustness transforms: standard (pad, jitter, "
                              "scale, rotate) or none", choices=TRANSFORMS)
    redirected_relu: bool = setting(True, "lucid's redirected ReLU gradient (off: deep "
                                    "channels may stay flat grey)")
    compile: str = _compile()


@dataclass(frozen=True)
class ZoomSettings(Settings):
    """A zoom video: frames, the magnification between two frames and the frame rate."""

    kind: ClassVar[str] = "zoom"
    frames: int = setting(30, "number of frames", low=1, high=10000)
    zoom: float = setting(1.05, "magnification from one frame to the next", low=1, high=2)
    fps: int = setting(10, "frames per second", low=1, high=120)


