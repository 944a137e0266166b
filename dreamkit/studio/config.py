"""What a studio serves with: its folder, device, the files on this machine the page may use,
and its limits (from `StudioSettings`, the command's flags)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dreamkit.settings import StudioSettings


@dataclass
class StudioConfig:
    """How a studio serves: its folder, device, optional microscope site and direction folder,
    the factories it may import, and its limits."""

    workdir: Path
    device: str = "auto"
    microscope: Path | None = None
    directions: Path | None = None
    factories: tuple[str, ...] = ()
    samples: tuple[Path, ...] = ()
    max_waiting: int = 8
    per_session: int = 3
    budget: float | None = None  # millions of pixel-steps a job may take (None: reproduce's)
    max_upload_bytes: int = 16 * 2**20
    max_pixels: int = 16_000_000
    max_uploads: int = 64
    keep: int = 12  # results kept per page
    heartbeat: float = 30.0
    grid_size: int = 64
    grid_steps: int = 48
    grid_page: int = 16

    @classmethod
    def of(cls, settings: StudioSettings, workdir: Path, **paths) -> StudioConfig:
        """The config of a studio with `settings`' limits and the given folder and files."""
        return cls(workdir=workdir, max_waiting=settings.queue, per_session=settings.per_page,
                   budget=settings.budget, max_upload_bytes=settings.max_upload_mb * 2**20,
                   keep=settings.keep, heartbeat=settings.heartbeat, **paths)
