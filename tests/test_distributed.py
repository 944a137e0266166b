"""Gallery tiles sharded over torchrun ranks: the pixels of one process, resumable after a kill."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamkit import files
from dreamkit.cli import main
from dreamkit.distributed import Ranks, ranks_from_env, run_jobs, shard
from dreamkit.errors import DreamkitError
from dreamkit.image_io import load_image
from tests.helpers import IMAGES, requires_weights

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- units


def test_shards_cover_every_job_once_the_same_way_each_time():
    jobs = list(range(11))
    for world in (1, 2, 3, 5):
        shares = [shard(jobs, Ranks(rank, world)) for rank in range(world)]
        assert sorted(sum(shares, [])) == jobs
        assert shares == [shard(jobs, Ranks(rank, world)) for rank in range(world)]
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_ranks_come_from_torchrun_environment():
    assert ranks_from_env({}) == Ranks(0, 1, 0)
    assert ranks_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1)
    with pytest.raises(DreamkitError, match="WORLD_SIZE"):
        ranks_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(DreamkitError, match="integers"):
        ranks_from_env({"RANK": "x"})


def test_single_process_run_skips_finished_jobs_and_finishes_once(tmp_path):
    (tmp_path / "b.out").write_text("done")
    (tmp_path / f".c.{files._HOST}-999999-1234abcd.tmp.png").write_text("half")  # a killed run's
    made, finished = [], []
    report = run_jobs(
        ["a", "b", "c"], is_finished=lambda job: (tmp_path / f"{job}.out").exists(),
        make=made.append, finish=lambda: finished.append(True), device=torch.device("cpu"),
        ranks=Ranks(), scratch=[tmp_path, tmp_path / "missing"],
    )
    assert made == ["a", "c"] and finished == [True]
    assert (report.total, report.pending, report.done_here) == (3, 2, 2)
    assert not list(tmp_path.glob(".*.tmp.*"))


# --------------------------------------------------------------------------- torchrun


def _config(folder: Path) -> Path:
    config = {
        "title": "torchrun", "size": 80, "settings": {"octaves": 2, "steps": 3, "seed": 5},
        "rows": {"axis": "layer", "values": ["inception3a", "inception4c"]},
        "columns": {"axis": "image", "values": [str(IMAGES / f"{name}.jpg") for name in
                                                ("astronaut", "chelsea", "coffee", "rocket")]},
    }
    path = folder / "grid.json"
    path.write_text(json.dumps(config))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(config: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
               "-m", "dreamkit", "gallery", str(config), "-o", str(out), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return stdout


def _finished(out: Path) -> list[Path]:
    return [p for p in (out / "tiles").glob("*.png") if not p.name.startswith(".")]


def _tiles(out: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p).convert("RGB")) for p in _finished(out)}


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun's workers run in their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The reference: the same gallery rendered by one plain process."""
    folder = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    try:
        assert main(["gallery", str(_config(folder)), "-o", str(folder / "out"), "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    return _tiles(folder / "out")


@pytest.mark.slow
@requires_weights
def test_torchrun_two_ranks_renders_the_same_pixels_as_one_process(tmp_path, single):
    out = tmp_path / "out"
    stdout = _finish(_torchrun(_config(tmp_path), out))
    assert "8 tiles, 8 rendered now" in stdout
    tiles = _tiles(out)
    assert len(single) == 8 and tiles.keys() == single.keys()
    for name, pixels in single.items():
        assert np.array_equal(tiles[name], pixels), name
    assert (out / "sheet.png").is_file() and (out / "index.html").is_file()


@pytest.mark.slow
@requires_weights
def test_killed_torchrun_resumes_without_redoing_finished_tiles(tmp_path, single):
    config, out = _config(tmp_path), tmp_path / "out"
    process = _torchrun(config, out)
    deadline = time.monotonic() + 240
    while not _finished(out):
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    _kill_tree(process.pid)
    process.communicate()
    first = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _finished(out)}
    assert 0 < len(first) < 8, "the run was not stopped mid-way"
    for name in first:  # every tile the killed run left is complete
        assert load_image(out / "tiles" / name).shape == (3, 80, 80)
    assert not (out / "index.html").exists()

    stdout = _finish(_torchrun(config, out))
    assert f"8 tiles, {8 - len(first)} rendered now, {len(first)} already done" in stdout
    for name, stamp in first.items():
        path = out / "tiles" / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, f"{name} was redone"
    tiles = _tiles(out)
    assert tiles.keys() == single.keys()
    assert all(np.array_equal(tiles[name], single[name]) for name in single)
    assert not list((out / "tiles").glob(".*"))  # the killed run's temporaries are gone
    assert (out / "index.html").is_file()


# --------------------------------------------------------------------------- a stale environment


@pytest.mark.parametrize(("env", "words"), [
    ({"WORLD_SIZE": "2"}, ["MASTER_ADDR", "unset WORLD_SIZE"]),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "99999"}, ["MASTER_PORT"]),
    ({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "http"}, ["MASTER_PORT"]),
    ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}, ["within 2 s", "torchrun"]),
    ({"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1"}, ["within 2 s", "torchrun"]),
    ({"WORLD_SIZE": "2", "DREAMKIT_RENDEZVOUS_TIMEOUT": "soon"}, ["DREAMKIT_RENDEZVOUS_TIMEOUT"]),
])
@pytest.mark.slow
def test_a_stale_world_size_is_one_line_not_a_hang(env, words, tmp_path):
    """WORLD_SIZE left in a shell hung a plain gallery run for up to 24 h (or exit 1)."""
    from tests.helpers import small_png

    small_png(tmp_path, "p.png", width=64, height=64)
    full = {k: v for k, v in os.environ.items()
            if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    full.update({"DREAMKIT_RENDEZVOUS_TIMEOUT": "2", "MASTER_PORT": str(_free_port()), **env})
    if "DREAMKIT_RENDEZVOUS_TIMEOUT" in env and "MASTER_ADDR" not in env:
        full["MASTER_ADDR"] = "127.0.0.1"
    done = subprocess.run([sys.executable, "-m", "dreamkit", "gallery", "--image", "p.png",
                           "--rows", "octaves=1", "-o", "out"], cwd=tmp_path, env=full,
                          capture_output=True, text=True, timeout=3600)  # a hang guard
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "out" / "tiles").exists() or not list((tmp_path / "out").rglob("*.png"))
