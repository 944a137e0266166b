"""The studio's door: HTTP basic auth when a user:password is set, and a header every POST must
carry (a cross-site form cannot send it), as ASGI middleware."""

from __future__ import annotations

import base64
import secrets

from starlette.responses import JSONResponse, Response

from dreamkit.errors import DreamkitError

HEADER = "x-dreamkit-studio"
SAFE = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class Guard:
    """ASGI middleware: HTTP basic auth when a user:password is set, and the studio header on
    every POST (a cross-site form cannot send it)."""

    def __init__(self, app, auth: str | None):
        self.app = app
        self.expected = ("Basic " + base64.b64encode(auth.encode()).decode()) if auth else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if self.expected is not None and not secrets.compare_digest(
                headers.get("authorization", "").encode(), self.expected.encode()):
            response = Response("dreamkit studio: log in", status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="dreamkit studio"'})
            return await response(scope, receive, send)
        if scope["method"] not in ("GET", "HEAD") and headers.get(HEADER) != "1":
            message = f"a request to the studio must carry the {HEADER} header"
            response = JSONResponse({"error": message}, status_code=403, headers=SAFE)
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def check_auth(auth: str | None) -> str | None:
    """`user:password` for --auth, checked."""
    if auth is None:
        return None
    user, colon, password = auth.partition(":")
    if not colon or not user or not password or len(auth) > 200:
        raise DreamkitError("--auth must be user:password")
    try:
        auth.encode("ascii")
    except UnicodeEncodeError:
        raise DreamkitError("--auth must be ASCII user:password") from None
    return auth


