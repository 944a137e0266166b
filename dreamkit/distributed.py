"""Scale-out of many independent jobs (gallery tiles) over torchrun ranks, resumably.

Under `torchrun --nproc-per-node N` (one or many nodes) every rank reads RANK / WORLD_SIZE /
LOCAL_RANK from the environment and joins a process group (gloo on CPU, nccl on GPU); a plain
single-process run needs no set-up at all. Each rank first lists the jobs whose output is not
finished yet, all ranks wait at a barrier (so nobody has started writing while the others look),
and rank r takes pending jobs r, r + N, r + 2N, ... Outputs are written atomically, so a killed
run leaves only complete files, and a restarted one skips them. After a second barrier rank 0
alone runs the `finish` step (contact sheets, HTML).

A job's result must not depend on the rank or the order: `deterministic` fixes the thread
count and the cuDNN algorithm choice, and each job seeds its own generators.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from dreamkit.errors import DreamkitError

Job = TypeVar("Job")

# a rank may wait at the final barrier while the others render for hours
BARRIER_TIMEOUT = timedelta(hours=24)


@dataclass(frozen=True)
class Ranks:
    """Where this process stands: rank `rank` of `world`, `local_rank` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> Ranks:
    """Ranks from torchrun's RANK, WORLD_SIZE and LOCAL_RANK (a single process without them)."""
    env = os.environ if environ is None else environ
    try:
        ranks = Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)),
                      int(env.get("LOCAL_RANK", 0)))
    except ValueError:
        raise DreamkitError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
    if not 0 <= ranks.rank < ranks.world:
        raise DreamkitError(f"RANK {ranks.rank} is not within WORLD_SIZE {ranks.world}")
    return ranks


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """The device of this rank: its own GPU (by LOCAL_RANK) on CUDA, else `device`."""
    if device.type != "cuda":
        return device
    index = ranks.local_rank if ranks.world > 1 else (device.index or 0)
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


@contextlib.contextmanager
def process_group(device: torch.device, ranks: Ranks) -> Iterator[None]:
    """Join torchrun's process group for the duration (nothing to do for a single process)."""
    if ranks.world == 1 or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=BARRIER_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(device: torch.device, ranks: Ranks) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if ranks.world == 1:
        return
    if device.type == "cuda":
        dist.barrier(device_ids=[device.index or 0])
    else:
        dist.barrier()


def deterministic(threads: int) -> None:
    """Make a job's pixels independent of the rank and machine load: fixed intra-op thread
    count, deterministic cuDNN algorithms (no benchmarking)."""
    if threads < 1:
        raise DreamkitError(f"threads must be at least 1, not {threads}")
    torch.set_num_threads(threads)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def shard(jobs: Sequence[Job], ranks: Ranks) -> list[Job]:
    """This rank's share: jobs rank, rank + world, ... (the same on every run)."""
    return list(jobs[ranks.rank::ranks.world])


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files a killed run left in `folder` (see `image_io.atomic_path`)."""
    removed = 0
    for path in folder.glob(".*.tmp.*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


@dataclass(frozen=True)
class RunReport:
    total: int  # jobs in all
    pending: int  # not finished when this run started
    done_here: int  # made by this rank


def run_jobs(
    jobs: Sequence[Job],
    *,
    is_finished: Callable[[Job], bool],
    make: Callable[[Job], None],
    finish: Callable[[], None],
    device: torch.device,
    ranks: Ranks,
    scratch: Path | None = None,
    progress: bool = False,
) -> RunReport:
    """Make every unfinished job once, spread over the ranks, then `finish` on rank 0.

    `make(job)` must write its output atomically; `scratch` is the folder where a killed run
    may have left temporaries (cleaned by rank 0 before anyone writes). Must be called inside
    `process_group` when there are several ranks.
    """
    if ranks.is_main and scratch is not None:
        remove_stale_temporaries(scratch)
    pending = [job for job in jobs if not is_finished(job)]
    barrier(device, ranks)  # every rank has looked before anyone writes
    mine = shard(pending, ranks)
    desc = f"rank {ranks.rank}" if ranks.world > 1 else "tiles"
    for job in tqdm(mine, disable=not progress, unit="tile", desc=desc, leave=False):
        make(job)
    barrier(device, ranks)
    if ranks.is_main:
        finish()
    return RunReport(len(jobs), len(pending), len(mine))
