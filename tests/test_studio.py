"""dreamkit studio without a browser: the queue (bounds, cancelling, abandoned pages), bad
uploads (each a message, the studio keeps serving), the guards (auth, the POST header, no
client path ever opened) and, with the real weights, dreams through HTTP that reproduce."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

import httpx  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from dreamkit.studio.app import create_app  # noqa: E402
from dreamkit.studio.config import StudioConfig  # noqa: E402
from dreamkit.studio.queue import CANCELLED, DONE, Job, JobQueue, QueueFull  # noqa: E402
from tests.helpers import IMAGES, encoded, gradient_picture, requires_weights  # noqa: E402

H = {"X-Dreamkit-Studio": "1"}
TINY = {"octaves": 1, "steps": 1, "size": 64}
ROOT = Path(__file__).resolve().parents[1]


def config(tmp_path: Path, **kw) -> StudioConfig:
    base = {"workdir": tmp_path / "studio", "device": "cpu", "grid_size": 32, "grid_steps": 4,
            "grid_page": 4, "samples": (ROOT / "gallery" / "chelsea.jpg",)}
    return StudioConfig(**{**base, **kw})


@contextlib.contextmanager
def running(app):
    """Serve `app` with uvicorn on a free port of 127.0.0.1 in a thread; yield its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def wait(client, job_id: str, seconds: float = 60) -> dict:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        view = client.get(f"/api/job/{job_id}").json()
        if view["status"] in ("done", "failed", "cancelled"):
            return view
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {seconds} s: {view}")


def upload(client, data: bytes, name: str = "photo.png"):
    return client.post("/api/upload", content=data, headers={**H, "X-Filename": name})


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- the queue alone


def _sleeper(seconds: float):
    def run(job: Job) -> dict:
        end = time.monotonic() + seconds
        step = 0
        while time.monotonic() < end:
            step += 1
            job.step_done(step)
            time.sleep(0.01)
        return {"slept": seconds}
    return run


def test_the_queue_bounds_waiting_jobs_and_each_page():
    queue = JobQueue(max_waiting=2, per_session=2)  # no worker: everything waits
    queue.submit(Job("page-a", "t", "a1", _sleeper(0)))
    queue.submit(Job("page-b", "t", "b1", _sleeper(0)))
    with pytest.raises(QueueFull, match="queue is full"):
        queue.submit(Job("page-c", "t", "c1", _sleeper(0)))
    queue = JobQueue(max_waiting=8, per_session=2)
    queue.submit(Job("page-a", "t", "a1", _sleeper(0)))
    queue.submit(Job("page-a", "t", "a2", _sleeper(0)))
    with pytest.raises(QueueFull, match="at most 2"):
        queue.submit(Job("page-a", "t", "a3", _sleeper(0)))


def test_a_cancelled_job_frees_its_slot_and_a_running_one_stops():
    queue = JobQueue(max_waiting=1, per_session=5)
    queue.start()
    try:
        first = queue.submit(Job("page", "t", "long", _sleeper(30)))
        for _ in range(200):
            if queue.poll(first.id)["status"] == "running":
                break
            time.sleep(0.01)
        second = queue.submit(Job("page", "t", "waits", _sleeper(0)))
        assert queue.poll(second.id)["position"] == 1
        with pytest.raises(QueueFull):
            queue.submit(Job("page", "t", "refused", _sleeper(0)))
        queue.cancel(second.id)
        assert queue.poll(second.id)["status"] == CANCELLED
        third = queue.submit(Job("page", "t", "now fits", _sleeper(0)))
        queue.cancel(first.id)  # the running one stops at its next step
        for _ in range(300):
            if queue.poll(third.id)["status"] == DONE:
                break
            time.sleep(0.01)
        assert queue.poll(first.id)["status"] == CANCELLED
        assert queue.poll(third.id)["status"] == DONE
    finally:
        queue.close()


def test_a_job_nobody_watches_is_dropped():
    """A closed tab stops polling: its running job stops, its waiting job leaves the queue."""
    queue = JobQueue(max_waiting=4, heartbeat=0.3)
    queue.start()
    try:
        running_job = queue.submit(Job("page", "t", "long", _sleeper(30)))
        waiting_job = queue.submit(Job("page", "t", "next", _sleeper(30)))
        time.sleep(1.5)  # nobody polls (poll() would be a heartbeat): look without touching
        assert queue.get(running_job.id).status == CANCELLED
        assert queue.get(waiting_job.id).status == CANCELLED
        assert "nobody watched" in queue.get(waiting_job.id).message
    finally:
        queue.close()


def test_a_failing_job_says_why_and_the_worker_goes_on():
    from dreamkit.errors import DreamkitError

    def bad(job: Job) -> dict:
        raise DreamkitError("a one-line reason")

    def bug(job: Job) -> dict:
        raise ZeroDivisionError("oops")

    queue = JobQueue(max_waiting=4, per_session=4)
    queue.start()
    try:
        jobs = [queue.submit(Job("page", "t", n, f)) for n, f in
                (("bad", bad), ("bug", bug), ("fine", _sleeper(0)))]
        for _ in range(300):
            if queue.poll(jobs[-1].id)["status"] == DONE:
                break
            time.sleep(0.01)
        views = [queue.poll(j.id) for j in jobs]
        assert [v["status"] for v in views] == ["failed", "failed", "done"]
        assert views[0]["message"] == "a one-line reason"
        assert "ZeroDivisionError" in views[1]["message"]
    finally:
        queue.close()


# --------------------------------------------------------------------------- HTTP, no model


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(config(tmp_path, max_upload_bytes=200_000))) as c:
        yield c


def test_the_page_and_its_form_come_from_the_settings(client):
    from dreamkit.settings import DreamSettings

    page = client.get("/")
    assert page.status_code == 200 and "dreamkit studio" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/studio.js").status_code == 200
    info = client.get("/api/info").json()
    spec = DreamSettings.spec()
    assert [f["name"] for f in info["settings"]] == list(spec)
    steps = next(f for f in info["settings"] if f["name"] == "steps")
    assert (steps["low"], steps["high"]) == (spec["steps"][1].low, spec["steps"][1].high)
    assert info["samples"][0]["name"] == "chelsea.jpg"
    table = client.get("/api/layers?model=bvlc_googlenet").json()
    assert table["default"] == "inception4c"
    assert {"name": "inception3a", "tier": "low", "channels": 256, "stride": 8} in table["layers"]


def test_bad_uploads_each_get_a_message_and_the_studio_keeps_serving(client, tmp_path):
    cases = {
        "a text file": (b"hello, I am not a picture\n" * 10, "notes.txt"),
        "a bomb": (png_claiming(100_000, 100_000), "bomb.png"),
        "a truncated JPEG": ((IMAGES / "chelsea.jpg").read_bytes()[:3000], "cut.jpg"),
        "an empty file": (b"", "empty.png"),
        "too many bytes": (b"\0" * 300_000, "huge.png"),
    }
    for what, (data, name) in cases.items():
        answer = upload(client, data, name)
        assert answer.status_code in (400, 413), what
        message = answer.json()["error"]
        assert message and "\n" not in message and "Traceback" not in message, what
        assert "part-" not in message, what  # the message names their file, not ours
        assert client.get("/api/info").status_code == 200, what
    assert "pixels" in upload(client, png_claiming(100_000, 100_000), "bomb.png").json()["error"]
    assert not [p for p in (tmp_path / "studio" / "uploads").iterdir()], "nothing kept"
    good = upload(client, encoded(gradient_picture(64, 48), "PNG"), "good.png")
    assert good.status_code == 200 and (good.json()["width"], good.json()["height"]) == (64, 48)
    assert client.get(good.json()["url"]).status_code == 200


def test_the_page_never_names_a_file_on_the_server(client):
    ask = {"session": "abcdefgh", "model": "bvlc_googlenet", "settings": TINY}
    for photo in ("../../etc/passwd", "/etc/passwd", "sample-99", None):
        answer = client.post("/api/dream", json={**ask, "photo": photo}, headers=H)
        assert answer.status_code == 400 and "no such photo" in answer.json()["error"]
    answer = client.post("/api/dream", json={**ask, "photo": "sample-0", "direction": 0},
                         headers=H)
    assert answer.status_code == 400 and "no such direction" in answer.json()["error"]
    answer = client.post("/api/dream", json={**ask, "photo": "sample-0",
                                             "model": "os:system"}, headers=H)
    assert answer.status_code == 400 and "--allow-factory" in answer.json()["error"]
    assert client.get("/api/layers?model=os:getcwd").status_code == 400
    assert client.get("/api/result/..%2f..%2fetc%2fpasswd.png").status_code == 404
    assert client.get("/api/photo/..%2fsecret").status_code in (400, 404)
    assert client.get("/api/photo/sample-7").status_code == 400
    answer = client.post("/api/dream", json={**ask, "photo": "sample-0", "session": "x"},
                         headers=H)
    assert "session" in answer.json()["error"]


def test_bad_settings_and_over_budget_jobs_are_refused_before_queueing(client):
    ask = {"session": "abcdefgh", "photo": "sample-0", "model": "bvlc_googlenet"}
    answer = client.post("/api/dream", json={**ask, "settings": {"steps": 0}}, headers=H)
    assert answer.status_code == 400 and "steps (--steps)" in answer.json()["error"]
    answer = client.post("/api/dream", json={**ask, "settings": {"tea": 1}}, headers=H)
    assert "unknown dream setting 'tea'" in answer.json()["error"]
    answer = client.post("/api/dream", json={**ask, "settings": {"size": 2048, "steps": 500}},
                         headers=H)
    assert answer.status_code == 400 and "budget" in answer.json()["error"]
    answer = client.post("/api/dream", json={**ask, "layer": "inception9z"}, headers=H)
    assert "unknown layer" in answer.json()["error"]
    answer = client.post("/api/dream", json={**ask, "layer": "inception3a", "channel": 999},
                         headers=H)
    assert "out of range" in answer.json()["error"]
    assert client.get("/api/info").json()["limits"]["waiting"] == 0


def test_posts_need_the_studio_header_and_auth_is_asked_when_set(tmp_path):
    with TestClient(create_app(config(tmp_path))) as client:
        answer = client.post("/api/upload", content=b"x")
        assert answer.status_code == 403 and "header" in answer.json()["error"]
    with TestClient(create_app(config(tmp_path), auth="me:secret")) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", auth=("me", "wrong")).status_code == 401
        assert client.get("/", auth=("me", "secret")).status_code == 200
    with TestClient(create_app(config(tmp_path), hosts=["127.0.0.1"])) as client:
        assert client.get("/").status_code == 400  # Host: testserver (DNS rebinding guard)


def test_the_command_checks_its_flags_before_serving(capsys):
    from dreamkit.cli import main

    for argv, words in ((["--auth", "nopassword"], "user:password"),
                        (["--allow-factory", "torchvision:resnet18"], "factory"),
                        (["--directions", "/no/such/folder"], "no such folder"),
                        (["--queue", "0"], "--queue")):
        assert main(["studio", *argv]) == 2
        assert words in capsys.readouterr().err


# --------------------------------------------------------------------------- with the weights


@requires_weights
@pytest.mark.slow  # 8 tiny dreams and a grid: about 10 s on 2 cores
def test_eight_concurrent_dreams_finish_or_are_refused_with_a_message(tmp_path):
    """Eight pages dream at once over real HTTP: each job is done (its PNG reproduces) or was
    refused with a message; a 1x1 photo is refused by `dream` with the size it needs."""
    import dreamkit

    app = create_app(config(tmp_path, max_waiting=4, per_session=1))
    photo = (IMAGES / "chelsea.jpg").read_bytes()
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        photo_id = upload(client, photo, "chelsea.jpg").json()["id"]

        def one(i: int) -> dict:
            answer = client.post("/api/dream", headers=H, json={
                "session": f"page-{i:04d}", "photo": photo_id, "model": "bvlc_googlenet",
                "layer": "inception3a", "settings": {**TINY, "seed": i}})
            if answer.status_code != 200:
                return {"refused": answer.json()["error"], "code": answer.status_code}
            return wait(client, answer.json()["id"])

        with ThreadPoolExecutor(8) as pool:
            views = list(pool.map(one, range(8)))
        done = [v for v in views if v.get("status") == "done"]
        refused = [v for v in views if "refused" in v]
        assert len(done) + len(refused) == 8, views
        assert len(done) >= 4 and all(v["code"] == 429 and "queue is full" in v["refused"]
                                      for v in refused)
        picture = tmp_path / "downloaded.png"
        picture.write_bytes(client.get(done[0]["result"]["url"]).content)
        assert dreamkit.reproduce(picture, tmp_path / "again.png").status == "identical"

        dot = upload(client, encoded(gradient_picture(1, 1), "PNG"), "dot.png").json()["id"]
        answer = client.post("/api/dream", headers=H, json={
            "session": "page-dot1", "photo": dot, "model": "bvlc_googlenet",
            "layer": "inception3a", "settings": {"octaves": 1, "steps": 1}})
        view = wait(client, answer.json()["id"])
        assert view["status"] == "failed" and "needs at least" in view["message"]
        assert client.get("/api/info").status_code == 200


@requires_weights
@pytest.mark.slow  # a dream stopped mid-way, a grid rendered: about 8 s
def test_stop_frees_the_slot_and_channels_render_on_demand(tmp_path):
    app = create_app(config(tmp_path, max_waiting=1, per_session=3))
    with TestClient(app) as client:
        ask = {"session": "page-stop", "photo": "sample-0", "model": "bvlc_googlenet",
               "layer": "inception3a"}
        long = client.post("/api/dream", headers=H, json={
            **ask, "settings": {"octaves": 1, "steps": 400, "size": 64}}).json()
        for _ in range(300):
            if client.get(f"/api/job/{long['id']}").json()["status"] == "running":
                break
            time.sleep(0.05)
        waiting = client.post("/api/dream", headers=H, json={**ask, "settings": TINY}).json()
        refused = client.post("/api/dream", headers=H, json={**ask, "settings": TINY})
        assert refused.status_code == 429
        client.post(f"/api/job/{waiting['id']}/cancel", headers=H)
        client.post(f"/api/job/{long['id']}/cancel", headers=H)
        assert wait(client, long["id"])["status"] == "cancelled"
        grid = client.post("/api/channels", headers=H, json={
            "session": "page-stop", "model": "bvlc_googlenet", "layer": "inception3a",
            "start": 4}).json()
        assert [t["channel"] for t in grid["tiles"]] == [4, 5, 6, 7] and grid["job"]
        assert wait(client, grid["job"]["id"])["status"] == "done"
        grid = client.post("/api/channels", headers=H, json={
            "session": "page-stop", "model": "bvlc_googlenet", "layer": "inception3a",
            "start": 4}).json()
        assert grid["job"] is None and all(t["url"] for t in grid["tiles"])
        tile = client.get(grid["tiles"][0]["url"])
        assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"


def test_a_microscope_site_fills_the_grid(tmp_path):
    site = ROOT / "gallery" / "microscope"
    with TestClient(create_app(config(tmp_path, microscope=site, grid_page=8))) as client:
        grid = client.post("/api/channels", headers=H, json={
            "session": "page-site", "model": "bvlc_googlenet", "layer": "inception3b"}).json()
        assert grid["job"] is None and {t["source"] for t in grid["tiles"]} == {"microscope"}
        tile = client.get(grid["tiles"][3]["url"])
        assert tile.status_code == 200 and tile.headers["content-type"] == "image/jpeg"
        assert tile.content == (site / "layers" / "inception3b" / "c3.jpg").read_bytes()


@requires_weights
@pytest.mark.slow  # two tiny dreams: about 4 s
def test_a_direction_from_the_servers_folder_is_amplified_or_suppressed(tmp_path):
    """Direction files come from --directions only (the page names one by its index); a
    suppressed direction's picture reproduces."""
    import torch

    import dreamkit
    from dreamkit.directions import Directions

    folder = tmp_path / "directions"
    folder.mkdir()
    vectors = torch.nn.functional.normalize(torch.randn(3, 256, generator=torch.Generator()
                                                        .manual_seed(0)), dim=1)
    Directions(vectors, "inception3a", "bvlc_googlenet", "pca").save(folder / "pc.safetensors")
    (folder / "broken.safetensors").write_bytes(b"not a direction file")
    with TestClient(create_app(config(tmp_path, directions=folder))) as client:
        listed = client.get("/api/info").json()["directions"]
        assert [d["name"] for d in listed] == ["broken.safetensors", "pc.safetensors"]
        assert "error" in listed[0] and "path" not in listed[1]
        assert (listed[1]["model"], listed[1]["layer"], listed[1]["rows"]) == (
            "bvlc_googlenet", "inception3a", 3)
        ask = {"session": "page-dirs", "photo": "sample-0", "model": "bvlc_googlenet",
               "direction": 1, "row": 2, "negate": True, "settings": TINY}
        view = wait(client, client.post("/api/dream", headers=H, json=ask).json()["id"])
        assert view["status"] == "done", view
        assert view["result"]["target"] == "inception3a_direction-pc-2_neg"
        picture = tmp_path / "suppressed.png"
        picture.write_bytes(client.get(view["result"]["url"]).content)
        assert dreamkit.reproduce(picture, tmp_path / "again.png").status == "identical"
        for bad, words in (({"direction": 0}, "not a valid"), ({"direction": 1, "row": 3},
                                                                "row")):
            answer = client.post("/api/dream", headers=H, json={**ask, **bad})
            assert answer.status_code == 400 and words in answer.json()["error"], answer.json()
