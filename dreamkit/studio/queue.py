"""One worker, one queue, many users: the studio's jobs and the session galleries.

Every job runs on one worker thread, one after another (one CPU or GPU serves everyone). At
most `max_waiting` jobs wait (`per_session` of them from one page); a further submission is
refused with a message. A job is cancelled when its page asks (the stop button) or stops
asking about it (a closed tab): each poll of its progress is a heartbeat, and a job nobody
polled for `heartbeat` seconds is dropped before it starts, or stopped at its next step.

Nothing here knows about dreams: a job is a function of the `Job` (which it calls back with
`job.step_done(...)` / `job.check()`), run by the worker. What the functions do is
`dreamkit.studio.work`'s, which calls the library.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dreamkit.errors import DreamkitError

log = logging.getLogger("dreamkit.studio")

WAITING, RUNNING, DONE, FAILED, CANCELLED = "waiting", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class QueueFull(DreamkitError):
    """A submission the queue has no room for (the page shows the message)."""


class Cancelled(Exception):  # noqa: N818 - raised from a job's step callback, not an error
    """Raised inside a running job when it was stopped or abandoned."""


@dataclass(eq=False)
class Job:
    """One unit of work for the worker: `run(job)` returns the result (a JSON-able dict)."""

    session: str
    kind: str
    label: str
    run: Callable[[Job], dict]
    steps: int = 0  # the steps it will take at most (for the progress bar)
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    status: str = WAITING
    step: int = 0
    message: str = ""
    result: dict | None = None
    preview: bytes | None = None  # the latest picture as PNG
    preview_version: int = 0
    heartbeat: float = 30.0
    seen: float = field(default_factory=time.monotonic)
    started: float | None = None
    ended: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def touch(self) -> None:
        """Someone is still looking at this job."""
        self.seen = time.monotonic()

    def abandoned(self) -> bool:
        return time.monotonic() - self.seen > self.heartbeat

    def cancel(self, why: str = "stopped") -> None:
        if self.status not in FINISHED:
            self.message = why
            self._stop.set()

    def check(self) -> None:
        """Raise `Cancelled` if the job was stopped or its page went away (called each step)."""
        if self.abandoned():
            self.cancel(f"nobody watched it for {self.heartbeat:g} s (the page was closed)")
        if self._stop.is_set():
            raise Cancelled(self.message)

    def step_done(self, step: int, preview: bytes | None = None) -> None:
        """A step finished (`step` counts from 1); `preview` is the picture so far as PNG."""
        self.step = step
        if preview is not None:
            self.preview, self.preview_version = preview, self.preview_version + 1
        self.check()

    def view(self, position: int) -> dict:
        """What the page polls: status, queue position (1 = next), progress, result."""
        return {"id": self.id, "kind": self.kind, "label": self.label, "status": self.status,
                "position": position, "step": self.step, "steps": self.steps,
                "message": self.message, "preview": self.preview_version,
                "seconds": round((self.ended or time.monotonic()) - self.started, 1)
                if self.started else None,
                "result": self.result}


class JobQueue:
    """A bounded queue of `Job`s served by one worker thread (started by `start`)."""

    def __init__(self, max_waiting: int = 8, per_session: int = 3, heartbeat: float = 30.0,
                 keep_finished: int = 256, on_start: Callable[[], None] | None = None):
        self.max_waiting, self.per_session, self.heartbeat = max_waiting, per_session, heartbeat
        self.keep_finished = keep_finished
        self._on_start = on_start
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._running: Job | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the pages' side

    def submit(self, job: Job) -> Job:
        """Queue `job`, or raise QueueFull with the reason."""
        job.heartbeat = self.heartbeat
        with self._cond:
            self._drop_abandoned()
            if self._closed:
                raise QueueFull("the studio is shutting down")
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"the queue is full ({len(self._waiting)} jobs waiting); try "
                                "again when one has finished")
            mine = sum(1 for j in (*self._waiting, self._running)
                       if j is not None and j.session == job.session)
            if mine >= self.per_session:
                raise QueueFull(f"this page already has {mine} jobs queued or running (at most "
                                f"{self.per_session}); wait for one or stop it")
            self._waiting.append(job)
            self._jobs[job.id] = job
            self._trim()
            self._cond.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def poll(self, job_id: str) -> dict | None:
        """The job's view, and a heartbeat: it is still wanted."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job.touch()
            return job.view(self._position(job))

    def cancel(self, job_id: str) -> bool:
        """Stop a job: a waiting one leaves the queue at once (freeing its slot), a running one
        stops at its next step."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            job.cancel()
            if job in self._waiting:
                self._waiting.remove(job)
                self._finish(job, CANCELLED)
            self._cond.notify_all()
            return True

    def counts(self) -> dict:
        with self._cond:
            return {"waiting": len(self._waiting), "running": int(self._running is not None),
                    "max_waiting": self.max_waiting, "per_session": self.per_session}

    # ------------------------------------------------------------------ the worker

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dreamkit-studio-worker",
                                            daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs, cancel every one, and wait for the worker."""
        with self._cond:
            self._closed = True
            for job in list(self._waiting):
                job.cancel("the studio stopped")
                self._finish(job, CANCELLED)
            self._waiting.clear()
            if self._running is not None:
                self._running.cancel("the studio stopped")
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while True:
            with self._cond:
                while not self._closed:
                    self._drop_abandoned()
                    if self._waiting:
                        break
                    self._cond.wait(timeout=1.0)
                if self._closed:
                    return
                job = self._waiting.popleft()
                self._running = job
                job.status, job.started = RUNNING, time.monotonic()
            status, result, message = self._run(job)
            with self._cond:
                job.result = result
                if message:
                    job.message = message
                self._finish(job, status)
                self._running = None
                self._cond.notify_all()

    @staticmethod
    def _run(job: Job) -> tuple[str, dict | None, str]:
        try:
            job.check()
            return DONE, job.run(job), ""
        except Cancelled as exc:
            return CANCELLED, None, str(exc) or "stopped"
        except DreamkitError as exc:
            return FAILED, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - one job's bug must not stop the worker
            log.error("studio job %s failed:\n%s", job.id, traceback.format_exc())
            return FAILED, None, f"internal error: {type(exc).__name__}: {exc}"

    # ------------------------------------------------------------------ helpers (locked)

    def _position(self, job: Job) -> int:
        """0 running or finished, 1 = next in line, ..."""
        with contextlib.suppress(ValueError):
            return self._waiting.index(job) + 1
        return 0

    def _finish(self, job: Job, status: str) -> None:
        job.status, job.ended = status, time.monotonic()
        job.preview = None if status != DONE else job.preview

    def _drop_abandoned(self) -> None:
        for job in [j for j in self._waiting if j.abandoned()]:
            self._waiting.remove(job)
            job.cancel(f"nobody watched it for {self.heartbeat:g} s (the page was closed)")
            self._finish(job, CANCELLED)

    def _trim(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in FINISHED]
        for job in finished[:max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job.id]


class Galleries:
    """Each page's results (newest last), at most `keep` per session (the oldest is dropped
    with its file) and `max_sessions` sessions (the least recently used is dropped)."""

    def __init__(self, keep: int = 12, max_sessions: int = 64):
        self.keep, self.max_sessions = keep, max_sessions
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, OrderedDict[str, dict]] = OrderedDict()
        self._files: dict[str, Path] = {}

    def add(self, session: str, entry: dict, path: Path) -> None:
        with self._lock:
            results = self._sessions.setdefault(session, OrderedDict())
            self._sessions.move_to_end(session)
            results[entry["id"]] = entry
            self._files[entry["id"]] = path
            while len(results) > self.keep:
                self._forget(results.popitem(last=False)[0])
            while len(self._sessions) > self.max_sessions:
                for old in self._sessions.popitem(last=False)[1]:
                    self._forget(old)

    def list(self, session: str) -> list[dict]:
        with self._lock:
            return list(self._sessions.get(session, {}).values())

    def file(self, result_id: str) -> Path | None:
        with self._lock:
            return self._files.get(result_id)

    def _forget(self, result_id: str) -> None:
        path = self._files.pop(result_id, None)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
