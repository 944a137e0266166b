"""Serve dreamkit studio: a local web page to dream, explore channels and compare.

Upload a photo (or pick a sample), choose a model and a layer, dream with every setting and
watch the picture grow, pick a channel from a grid of its visualizations, amplify or suppress
a direction, compare the results side by side and download each as a PNG that `dreamkit
reproduce` makes again. One worker serves every page in turn: jobs wait in a bounded queue,
each within a budget of work, and a job whose page is closed is dropped. Needs the extra:
pip install 'dreamkit[studio]'.

Listens on 127.0.0.1 only unless --host says otherwise. Uploads are untrusted (the CLI's
checks, size limits) and go only to the studio's folder (--workdir; default: a temporary
folder removed on exit, so a downloaded picture then needs `dreamkit reproduce --input
PHOTO`). The page never names a file on the server: directions come from --directions, user
models (package.module:factory, which import code) only from --allow-factory.

examples:
  dreamkit studio                              # then open http://127.0.0.1:8765
  dreamkit studio --microscope site/ --directions dirs/ --workdir studio/
  dreamkit studio --host 0.0.0.0 --auth me:secret   # reachable from the network
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
from pathlib import Path

from dreamkit.commands.common import add_device_argument, add_settings, settings_from
from dreamkit.errors import DreamkitError
from dreamkit.settings import StudioSettings

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only; "
                             "0.0.0.0 serves the network: use --auth)")
    parser.add_argument("--auth", metavar="USER:PASSWORD",
                        help="ask for this user and password (HTTP basic auth; use it behind "
                             "HTTPS when others can listen)")
    parser.add_argument("--workdir", metavar="DIR",
                        help="the studio's folder for uploads, results and channel pictures "
                             "(default: a temporary folder, removed on exit)")
    files = parser.add_argument_group("what the page may use on this machine")
    files.add_argument("--microscope", metavar="SITE",
                       help="a `dreamkit microscope` site: its channel pictures fill the grid "
                            "(otherwise channels are rendered on demand)")
    files.add_argument("--directions", metavar="DIR",
                       help="a folder of direction files (dreamkit direction / dictionary) the "
                            "page may amplify or suppress")
    files.add_argument("--samples", metavar="DIR",
                       help="sample photos to offer (default: the gallery's chelsea.jpg when "
                            "present)")
    files.add_argument("--allow-factory", action="append", default=[], metavar="SPEC",
                       help="offer this user model package.module:factory (it imports and "
                            "runs that code); repeatable")
    add_settings(parser.add_argument_group("port and limits"), StudioSettings)
    add_device_argument(parser)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _exit(signum, frame) -> None:
    raise SystemExit(128 + signum)  # the temporary folder is removed on the way out


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from dreamkit.studio.app import check_auth, create_app
        from dreamkit.studio.config import StudioConfig
    except ImportError as exc:
        raise DreamkitError(f"dreamkit studio needs its extra ({exc.name} is missing): pip "
                            "install 'dreamkit[studio]'") from None
    import shutil
    import tempfile

    from dreamkit.image_io import list_images
    from dreamkit.models.sources import kind_of

    settings = settings_from(args, StudioSettings)
    check_auth(args.auth)
    for spec in args.allow_factory:
        if kind_of(spec) != "factory":
            raise DreamkitError(f"--allow-factory {spec}: not a package.module:factory spec")
    for name, folder in (("--microscope", args.microscope), ("--directions", args.directions)):
        if folder is not None and not Path(folder).is_dir():
            raise DreamkitError(f"{name} {folder}: no such folder")
    if args.samples:
        samples = tuple(list_images(args.samples)[:32])
    else:
        gallery = Path(__file__).resolve().parents[2] / "gallery" / "chelsea.jpg"
        samples = (gallery,) if gallery.is_file() else ()
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="dreamkit-studio-")) if temporary else Path(
        args.workdir)
    config = StudioConfig.of(settings, workdir, device=args.device, microscope=args.microscope,
                             directions=args.directions, factories=tuple(args.allow_factory),
                             samples=samples)
    local = is_loopback(args.host)
    hosts = None if not local else ["127.0.0.1", "localhost", "[::1]", "::1"]
    try:
        app = create_app(config, auth=args.auth, hosts=hosts)
        if not local:
            bar = "!" * 72
            print(f"{bar}\nWARNING: dreamkit studio is listening on {args.host}: anyone who "
                  f"can reach\nthis machine can use its CPU/GPU and upload photos"
                  f"{'' if args.auth else ' (no --auth given!)'}.\nThe traffic is plain "
                  f"HTTP: put it behind HTTPS for anything but a trusted network.\n{bar}",
                  file=sys.stderr)
        shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        print(f"dreamkit studio: http://{shown}:{settings.port}  (folder {workdir}; Ctrl-C "
              "stops)", file=sys.stderr)
        signal.signal(signal.SIGTERM, _exit)  # uvicorn re-raises it once it has stopped
        uvicorn.run(app, host=args.host, port=settings.port, log_level="warning")
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0
