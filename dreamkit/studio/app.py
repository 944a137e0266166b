"""The studio's web server (Starlette): glue only. Each route parses the request, calls
`dreamkit.studio.work` (which calls the library) or the queue, and answers JSON or a picture.

Untrusted input: uploads are size-limited while they stream in, written only under the
studio's own folder under their content hash, and decoded with the CLI's checks before they
are listed; the page names photos, results, directions and jobs only by ids the server gave
out, never by a path. A POST must carry the `X-Dreamkit-Studio` header (a cross-site form
cannot set it), so another web page cannot make the studio work.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from dreamkit.errors import DreamkitError
from dreamkit.studio import page, work
from dreamkit.studio.config import StudioConfig
from dreamkit.studio.guard import SAFE, Guard, check_auth
from dreamkit.studio.queue import Galleries, Job, JobQueue, QueueFull

SESSION = re.compile(r"[A-Za-z0-9_-]{8,64}")
TOKEN = re.compile(r"[0-9a-f]{16}")
PHOTO_ID = re.compile(r"[0-9a-f]{32}|sample-\d{1,3}")
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'")
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".webp": "image/webp", ".gif": "image/gif", ".bmp": "image/bmp",
               ".tif": "image/tiff", ".tiff": "image/tiff"}


class Studio:
    """The server's state: the queue and its worker, the models, the photos and galleries."""

    def __init__(self, config: StudioConfig):
        import torch

        from dreamkit.commands.common import resolve_device
        from dreamkit.distributed import deterministic
        from dreamkit.reproduction import budget_of
        from dreamkit.settings import ReproduceSettings

        self.config = config
        self.device = resolve_device(config.device)
        self.budget = config.budget or budget_of(ReproduceSettings(), self.device)
        self.cuda = self.device.type == "cuda"
        self.folder = Path(config.workdir).resolve()
        for sub in ("uploads", "results", "channels"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.models = work.Models(self.device, config.factories)
        self.queue = JobQueue(config.max_waiting, config.per_session, config.heartbeat,
                              on_start=deterministic)
        self.galleries = Galleries(config.keep)
        self.microscope = work.Microscope(config.microscope)
        self.grid = work.grid_settings(config.grid_size, config.grid_steps)
        self._lock = threading.Lock()
        self.photos: dict[str, dict] = {}
        for i, path in enumerate(config.samples):
            path = Path(path).resolve()
            height, width = work.check_photo(path, config.max_pixels)
            self.photos[f"sample-{i}"] = {"id": f"sample-{i}", "name": path.name, "path": path,
                                          "height": height, "width": width, "sample": True}
        self.directions = work.direction_files(config.directions)
        self.threads = torch.get_num_threads()
        self.queue.start()

    # ------------------------------------------------------------------ lookups

    def photo(self, photo_id: object) -> dict:
        with self._lock:
            if isinstance(photo_id, str) and photo_id in self.photos:
                return self.photos[photo_id]
        raise DreamkitError("no such photo here; upload it again")

    def direction(self, index: object) -> dict:
        if isinstance(index, bool) or not isinstance(index, int) or not (
                0 <= index < len(self.directions)):
            raise DreamkitError("no such direction file on this studio")
        entry = self.directions[index]
        if "error" in entry:
            raise DreamkitError(entry["error"])
        return entry

    def add_upload(self, digest: str, path: Path, name: str, size: tuple[int, int]) -> dict:
        entry = {"id": digest, "name": name[:80], "path": path, "height": size[0],
                 "width": size[1], "sample": False}
        with self._lock:
            self.photos[digest] = entry
            uploads = [k for k, v in self.photos.items() if not v["sample"]]
            for old in uploads[:max(0, len(uploads) - self.config.max_uploads)]:
                with contextlib.suppress(OSError):
                    self.photos.pop(old)["path"].unlink()
        return entry


# --------------------------------------------------------------------------- helpers


def _json_body(data: object) -> dict:
    if not isinstance(data, dict):
        raise DreamkitError("the request must be a JSON object")
    return data


def _session(value: object) -> str:
    if not isinstance(value, str) or not SESSION.fullmatch(value):
        raise DreamkitError("a session id is 8 to 64 letters, digits, - or _")
    return value


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SAFE)


def _ok(data: object) -> JSONResponse:
    return JSONResponse(data, headers=SAFE)


async def _body(request: Request) -> dict:
    try:
        return _json_body(await request.json())
    except ValueError:
        raise DreamkitError("the request is not valid JSON") from None


def _studio(request: Request) -> Studio:
    return request.app.state.studio


def _photo_view(entry: dict) -> dict:
    return {k: entry[k] for k in ("id", "name", "height", "width", "sample")} | {
        "url": f"/api/photo/{entry['id']}"}


# --------------------------------------------------------------------------- routes


async def index(request: Request) -> Response:
    return Response(page.HTML, media_type="text/html",
                    headers={**SAFE, "Content-Security-Policy": CSP})


async def script(request: Request) -> Response:
    return Response(page.SCRIPT, media_type="text/javascript", headers=SAFE)


async def style(request: Request) -> Response:
    return Response(page.STYLE, media_type="text/css", headers=SAFE)


async def info(request: Request) -> Response:
    from dreamkit.models.catalog import CATALOG

    studio = _studio(request)
    config = studio.config
    return _ok({
        "models": [{"spec": e.name, "description": e.description} for e in CATALOG.values()],
        "factories": list(config.factories),
        "settings": work.settings_spec(),
        "samples": [_photo_view(p) for p in studio.photos.values() if p["sample"]],
        "directions": [{k: v for k, v in d.items() if k != "path"} for d in studio.directions],
        "microscope": studio.microscope.site is not None,
        "limits": {"budget": studio.budget, "max_upload_bytes": config.max_upload_bytes,
                   "max_pixels": config.max_pixels, "keep": config.keep,
                   "heartbeat": config.heartbeat, "grid_page": config.grid_page,
                   **studio.queue.counts()},
        "device": str(studio.device),
    })


async def layers(request: Request) -> Response:
    studio = _studio(request)
    spec = request.query_params.get("model", "")
    table = await run_in_threadpool(studio.models.table, spec)
    return _ok({**work.table_rows(table), "settings": work.model_defaults(spec)})


async def upload(request: Request) -> Response:
    """The photo is the raw request body (the page sends the file as it is)."""
    from dreamkit.files import file_sha256
    from dreamkit.image_io import IMAGE_EXTENSIONS

    studio = _studio(request)
    limit = studio.config.max_upload_bytes
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return _error(413, f"the photo is larger than the studio's limit of {limit // 2**20} MB")
    name = request.headers.get("x-filename", "photo")[:200]
    suffix = Path(name).suffix.lower()
    suffix = suffix if suffix in IMAGE_EXTENSIONS else ".img"
    part = studio.folder / "uploads" / f".part-{secrets.token_hex(8)}"
    try:
        size = 0
        with open(part, "xb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise DreamkitError(f"the photo is larger than the studio's limit of "
                                        f"{limit // 2**20} MB")
                out.write(chunk)
        if size == 0:
            raise DreamkitError("the upload is empty")
        digest = (await run_in_threadpool(file_sha256, part, "upload"))[:32]
        try:
            shape = await run_in_threadpool(work.check_photo, part, studio.config.max_pixels)
        except DreamkitError as exc:  # the message names our temporary file: name theirs
            raise DreamkitError(str(exc).replace(str(part), name[:80])) from None
        final = studio.folder / "uploads" / f"{digest}{suffix}"
        part.replace(final)
    finally:
        with contextlib.suppress(OSError):
            part.unlink()
    return _ok(_photo_view(studio.add_upload(digest, final, Path(name).name, shape)))


async def photo(request: Request) -> Response:
    entry = _studio(request).photo(request.path_params["photo_id"])
    kind = PHOTO_TYPES.get(entry["path"].suffix.lower(), "application/octet-stream")
    return FileResponse(entry["path"], media_type=kind, headers=SAFE)


def _submit_dream(studio: Studio, ask: dict) -> dict:
    session = _session(ask.get("session"))
    source = studio.photo(ask.get("photo"))
    direction = None
    if ask.get("direction") is not None:
        direction = studio.direction(ask.get("direction"))["path"]
        ask = {**ask, "layer": None, "channel": None}
    recipe = work.dream_recipe(studio.models, ask, source["path"], direction)
    size = work.dreamed_size(source["path"], recipe.settings, studio.config.max_pixels)
    needed = work.check_work(recipe, size, studio.budget, studio.cuda)
    result_id = secrets.token_hex(8)
    out = studio.folder / "results" / f"{result_id}.png"
    label = f"{recipe.model} {recipe.target[0].stem()}"
    settings = recipe.settings

    def run(job: Job) -> dict:
        done = work.dream_picture(job, studio.models, recipe, out, studio.config.max_pixels)
        entry = {"id": result_id, "url": f"/api/result/{result_id}.png", "label": label,
                 "model": recipe.model, "target": recipe.target[0].stem(),
                 "photo": source["name"],
                 "size": f"{size[1]}x{size[0]}", "settings": settings.to_dict(),
                 "work": round(needed, 2), **done}
        studio.galleries.add(session, entry, out)
        return entry

    steps = settings.octaves * settings.steps
    job = studio.queue.submit(Job(session, "dream", label, run, steps))
    return studio.queue.poll(job.id)  # type: ignore[return-value]


async def dream(request: Request) -> Response:
    ask = await _body(request)
    return _ok(await run_in_threadpool(_submit_dream, _studio(request), ask))


def _tile_url(model: str, layer: str, channel: int) -> str:
    from urllib.parse import urlencode

    return "/api/tile?" + urlencode({"model": model, "layer": layer, "channel": channel})


def _tiles(studio: Studio, ask: dict) -> dict:
    """A page of a layer's channel pictures: a microscope site's, else rendered on demand (a
    job for the ones not rendered yet)."""
    session = _session(ask.get("session"))
    model = studio.models.check(ask.get("model"))
    table = studio.models.table(model)
    layer = table.resolve(str(ask.get("layer") or table.default)).name
    start = ask.get("start", 0)
    channels_in = table.resolve(layer).channels
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < channels_in:
        raise DreamkitError(f"start must be a channel of {layer} (0 to {channels_in - 1})")
    channels = list(range(start, min(start + studio.config.grid_page, channels_in)))
    targets = work.channel_targets(studio.models, model, layer, channels)
    folder = work.grid_folder(studio.folder / "channels", model, layer, studio.grid)
    tiles, missing = [], []
    for channel, target in zip(channels, targets, strict=True):
        site = studio.microscope.picture(model, layer, channel)
        ready = site is not None or work.channel_picture(folder, target).is_file()
        tiles.append({"channel": channel, "url": _tile_url(model, layer, channel) if ready
                      else None, "source": "microscope" if site else "rendered"})
        if not ready:
            missing.append(target)
    view = {"model": model, "layer": layer, "channels": channels_in, "start": start,
            "tiles": tiles, "job": None}
    if missing:
        from dreamkit.records import Recipe

        recipe = Recipe("vis", model, (missing[0],), studio.grid,
                        batch=tuple((t,) for t in missing))
        work.check_work(recipe, None, studio.budget, studio.cuda)

        def run(job: Job) -> dict:
            return work.render_channels(job, studio.models, model, missing, folder, studio.grid)

        label = f"{model} {layer} channels {channels[0]}-{channels[-1]}"
        job = studio.queue.submit(Job(session, "channels", label, run, len(missing)))
        view["job"] = studio.queue.poll(job.id)
    return view


async def channels(request: Request) -> Response:
    ask = await _body(request)
    return _ok(await run_in_threadpool(_tiles, _studio(request), ask))


def _tile_path(studio: Studio, query) -> Path:
    model = studio.models.check(query.get("model"))
    table = studio.models.table(model)
    layer = table.resolve(str(query.get("layer", ""))).name
    text = str(query.get("channel", ""))
    if not text.isdigit():
        raise DreamkitError("channel must be a number")
    target = work.channel_targets(studio.models, model, layer, [int(text)])[0]
    site = studio.microscope.picture(model, layer, int(text))
    if site is not None:
        return site
    path = work.channel_picture(work.grid_folder(studio.folder / "channels", model, layer,
                                                 studio.grid), target)
    if not path.is_file():
        raise DreamkitError("that channel is not rendered yet")
    return path


async def tile(request: Request) -> Response:
    studio = _studio(request)
    path = await run_in_threadpool(_tile_path, studio, request.query_params)
    kind = "image/jpeg" if path.suffix == ".jpg" else "image/png"
    return FileResponse(path, media_type=kind, headers=SAFE)


async def job(request: Request) -> Response:
    view = _studio(request).queue.poll(request.path_params["job_id"])
    return _ok(view) if view else _error(404, "no such job (it finished long ago or never was)")


async def preview(request: Request) -> Response:
    found = _studio(request).queue.get(request.path_params["job_id"])
    if found is None or found.preview is None:
        return _error(404, "no picture yet")
    return Response(found.preview, media_type="image/png", headers=SAFE)


async def cancel(request: Request) -> Response:
    if not _studio(request).queue.cancel(request.path_params["job_id"]):
        return _error(404, "no such job")
    return _ok({"cancelled": True})


async def results(request: Request) -> Response:
    session = _session(request.query_params.get("session"))
    return _ok({"results": _studio(request).galleries.list(session)})


async def result(request: Request) -> Response:
    result_id = request.path_params["result_id"]
    path = _studio(request).galleries.file(result_id) if TOKEN.fullmatch(result_id) else None
    if path is None or not path.is_file():
        return _error(404, "no such picture (a page keeps only its latest results)")
    return FileResponse(path, media_type="image/png", headers=SAFE,
                        filename=f"dreamkit-studio-{result_id}.png")


async def dreamkit_error(request: Request, exc: Exception) -> Response:
    return _error(400, str(exc))


async def queue_full(request: Request, exc: Exception) -> Response:
    return _error(429, str(exc))


# --------------------------------------------------------------------------- the app


def create_app(config: StudioConfig, *, auth: str | None = None,
               hosts: list[str] | None = None) -> Starlette:
    """The studio as an ASGI app (`uvicorn` serves it; `starlette.testclient` tests it). Its
    worker starts now and stops with the app (`app.state.studio.queue.close()`). `hosts`, when
    given, are the Host names it answers (a guard against DNS rebinding)."""
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    studio = Studio(config)
    routes = [
        Route("/", index), Route("/studio.js", script), Route("/studio.css", style),
        Route("/api/info", info), Route("/api/layers", layers),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/photo/{photo_id}", photo),
        Route("/api/dream", dream, methods=["POST"]),
        Route("/api/channels", channels, methods=["POST"]), Route("/api/tile", tile),
        Route("/api/job/{job_id}", job), Route("/api/job/{job_id}/preview.png", preview),
        Route("/api/job/{job_id}/cancel", cancel, methods=["POST"]),
        Route("/api/results", results), Route("/api/result/{result_id}.png", result),
    ]
    middleware = [Middleware(Guard, auth=check_auth(auth))]
    if hosts:
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=hosts))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        studio.queue.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={QueueFull: queue_full, DreamkitError: dreamkit_error})
    app.state.studio = studio
    return app
