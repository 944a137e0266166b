"""Scale-out of many independent jobs (gallery tiles, microscope batches) over torchrun ranks,
resumably.

Under `torchrun --nproc-per-node N` (one or many nodes) every rank reads RANK / WORLD_SIZE /
LOCAL_RANK / MASTER_ADDR / MASTER_PORT from the environment and joins a process group (gloo on
CPU, nccl on GPU); a plain single-process run needs no set-up at all. Joining waits at most a
short rendezvous timeout (a stale WORLD_SIZE in a shell must not hang a plain run), then the
group's barriers may wait as long as the slowest rank renders. Each rank first lists the jobs
whose output is not finished yet, all ranks wait at a barrier (so nobody has started writing
while the others look), and rank r takes pending jobs r, r + N, r + 2N, ... Outputs are written
atomically, so a killed run leaves only complete files, and a restarted one skips them. After a
second barrier rank 0 alone runs the `finish` step (contact sheets, HTML).

A job's result must not depend on the rank or the order: `deterministic` fixes the cuDNN
algorithm choice, the commands fix the thread count, and each job seeds its own generators.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

from dreamkit.errors import DreamkitError
from dreamkit.files import remove_stale_temporaries
from dreamkit.progress import tqdm

Job = TypeVar("Job")

BARRIER_TIMEOUT = timedelta(hours=24)  # a rank may wait while the others render for hours
RENDEZVOUS_TIMEOUT = 30.0  # seconds to find the other ranks ($DREAMKIT_RENDEZVOUS_TIMEOUT)
HINT = "run under torchrun, or unset WORLD_SIZE for a single process"
_GROUP: dict[str, object] = {}


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
    if not 1 <= ranks.world <= 65536 or not 0 <= ranks.rank < ranks.world:
        raise DreamkitError(f"RANK {ranks.rank} is not within WORLD_SIZE {ranks.world} ({HINT})")
    return ranks


def rendezvous_timeout(environ: os._Environ[str] | dict[str, str] | None = None) -> float:
    """Seconds to wait for the other ranks: $DREAMKIT_RENDEZVOUS_TIMEOUT, else 30."""
    env = os.environ if environ is None else environ
    text = env.get("DREAMKIT_RENDEZVOUS_TIMEOUT", str(RENDEZVOUS_TIMEOUT))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 86400:
        raise DreamkitError(f"DREAMKIT_RENDEZVOUS_TIMEOUT must be seconds from 0 to 86400, not "
                            f"{text!r}")
    return seconds


def _address(env: os._Environ[str] | dict[str, str]) -> tuple[str, int]:
    addr, port = env.get("MASTER_ADDR"), env.get("MASTER_PORT")
    if not addr or not port:
        missing = " and ".join(k for k, v in (("MASTER_ADDR", addr), ("MASTER_PORT", port))
                               if not v)
        raise DreamkitError(f"WORLD_SIZE is {env.get('WORLD_SIZE')} but {missing} is not set "
                            f"({HINT})")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DreamkitError(f"MASTER_PORT must be a port number from 1 to 65535, not {port!r}")
    return addr, int(port)


def _reach(addr: str, port: int, seconds: float) -> None:
    """Wait until rank 0's rendezvous server accepts connections (a clean message, not
    torch's C++ retry logs, when it never does)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((addr, port), timeout=min(5.0, seconds)):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise DreamkitError(f"no rendezvous at {addr}:{port} within {seconds:g} s "
                                    f"({exc.strerror or exc}; {HINT})") from None
            time.sleep(0.5)


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
    addr, port = _address(os.environ)
    seconds = rendezvous_timeout()
    if ranks.rank != 0:
        _reach(addr, port, seconds)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=seconds))
        _GROUP["barriers"] = dist.new_group(timeout=BARRIER_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - a rendezvous that fails is the user's setup
        raise DreamkitError(f"could not join the {ranks.world} ranks at {addr}:{port} within "
                            f"{seconds:g} s ({type(exc).__name__}; {HINT})") from None
    try:
        yield
    finally:
        _GROUP.clear()
        dist.destroy_process_group()


def barrier(device: torch.device, ranks: Ranks) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if ranks.world == 1:
        return
    group = _GROUP.get("barriers")
    if device.type == "cuda":
        dist.barrier(group=group, device_ids=[device.index or 0])
    else:
        dist.barrier(group=group)


def deterministic() -> None:
    """Make a job's pixels independent of the rank and machine: deterministic cuDNN algorithms
    (no benchmarking). The CPU thread count is fixed by the command (`--threads`)."""
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def shard(jobs: Sequence[Job], ranks: Ranks) -> list[Job]:
    """This rank's share: jobs rank, rank + world, ... (the same on every run)."""
    return list(jobs[ranks.rank::ranks.world])


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
    scratch: Sequence[Path] = (),
    progress: bool = False,
    unit: str = "tile",
) -> RunReport:
    """Make every unfinished job once, spread over the ranks, then `finish` on rank 0.

    `make(job)` must write its output atomically; `scratch` are the folders where a killed run
    may have left temporaries (rank 0 removes those no live process is writing). Must be
    called inside `process_group` when there are several ranks.
    """
    if ranks.is_main:
        for folder in scratch:
            remove_stale_temporaries(folder)
    pending = [job for job in jobs if not is_finished(job)]
    barrier(device, ranks)  # every rank has looked before anyone writes
    mine = shard(pending, ranks)
    desc = f"rank {ranks.rank}" if ranks.world > 1 else f"{unit}s"
    for job in tqdm(mine, disable=not progress, unit=unit, desc=desc, leave=False):
        make(job)
    barrier(device, ranks)
    if ranks.is_main:
        finish()
    return RunReport(len(jobs), len(pending), len(mine))
