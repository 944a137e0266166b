"""dreamkit studio: a local web page to dream, explore channels and compare
(`dreamkit studio`, the optional extra `dreamkit[studio]`: Starlette and uvicorn).

* `app` — the web server (Starlette): HTTP glue only, `create_app(StudioConfig(...))`;
* `work` — what each button does, every step a call to the library (see its table);
* `queue` — one worker thread, a bounded job queue with heartbeats, the session galleries;
* `page` — the one HTML page with its script and style.

Importing this package imports nothing heavy; `dreamkit.studio.app` needs Starlette.
"""
