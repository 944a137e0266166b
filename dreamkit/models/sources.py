"""Networks that are not rebuilt by dreamkit: `torchvision:NAME`, `timm:NAME` and a user's
`package.module:factory`, each wrapped generically (`dreamkit.models.wrapped`).

Weights: `--weights FILE` (a state dict as .safetensors, or a PyTorch file read with
`weights_only=True`), else the library's own published weights (torchvision's weights API,
timm's cache; a download when online), or none with `random_weights`.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import re
import sys
import threading
from collections.abc import Iterator

import torch
from torch import nn

from dreamkit.errors import DreamkitError
from dreamkit.models.weights import read_state
from dreamkit.models.wrapped import WrappedModel, wrap

FACTORY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
SLOW_FACTORY_S = 10.0  # after this long, say that the user's own code is what runs


def kind_of(spec: str) -> str:
    """`torchvision`, `timm`, `factory`, or `name` (a built-in name or nothing known)."""
    if spec.startswith("torchvision:"):
        return "torchvision"
    if spec.startswith("timm:"):
        return "timm"
    return "factory" if FACTORY.match(spec) else "name"


def refuse_code(spec: str, where: str, allowed: str | None = None) -> str:
    """`spec` as a file names it (a config, a record, a site's plan): a `package.module:factory`
    would import and run code, so it is refused unless the user named the same spec on the
    command line (`allowed`). Built-in, torchvision: and timm: specs pass."""
    if kind_of(spec) == "factory" and spec != allowed:
        raise DreamkitError(f"{where} names the user model {spec[:100]}; loading it imports and "
                            f"runs that code: pass --model {spec[:100]} to allow it")
    return spec


def _load_state(module: nn.Module, weights: str | os.PathLike, spec: str) -> None:
    state = read_state(weights)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DreamkitError(f"{weights}: the weights do not fit {spec} "
                            f"({str(exc).splitlines()[0]})") from None


def torchvision_model(spec: str, weights: str | os.PathLike | None,
                      random_weights: bool) -> WrappedModel:
    """torchvision's classification builder NAME, with its published or given weights."""
    import torchvision

    name = spec.removeprefix("torchvision:")
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {' or '.join('torchvision:' + c for c in close)}?" if close else ""
        raise DreamkitError(f"unknown torchvision classification model {name[:100]!r}{hint}")
    extra = {"aux_logits": False, "init_weights": False} if name in ("googlenet",
                                                                      "inception_v3") else {}
    if weights is None and not random_weights:
        published = torchvision.models.get_model_weights(name).DEFAULT
        try:
            state = published.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # noqa: BLE001 - offline, proxy, HTTP errors alike
            raise DreamkitError(
                f"no weights for {spec}: torchvision's download failed ({type(exc).__name__}); "
                f"pass --weights FILE, or run `dreamkit fetch-weights {spec}` online") from None
        module = torchvision.models.get_model(name, weights=None, **extra)
        module.load_state_dict({k: v for k, v in state.items() if not k.startswith("Aux")
                                and not k.startswith("aux")})
    else:
        module = torchvision.models.get_model(name, weights=None, **extra)
        if weights is not None:
            _load_state(module, weights, spec)
    return wrap(module, "imagenet", spec, copy=False)


def timm_model(spec: str, weights: str | os.PathLike | None, random_weights: bool) -> WrappedModel:
    """timm's model NAME (optional extra), with its own pretrained weights or given ones."""
    try:
        import timm
    except ImportError:
        raise DreamkitError(f"{spec} needs timm: pip install timm") from None
    name = spec.removeprefix("timm:")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {' or '.join('timm:' + c for c in close)}?" if close else ""
        raise DreamkitError(f"unknown timm model {name[:100]!r}{hint}")
    pretrained = weights is None and not random_weights
    try:
        module = timm.create_model(name, pretrained=pretrained)
    except Exception as exc:  # noqa: BLE001 - offline hub and the like
        raise DreamkitError(f"no weights for {spec}: timm could not get them "
                            f"({type(exc).__name__}); pass --weights FILE") from None
    if weights is not None:
        _load_state(module, weights, spec)
    return wrap(module, "auto", spec, copy=False)  # its pretrained_cfg's mean and std


@contextlib.contextmanager
def _users_code(spec: str, doing: str, failure: str) -> Iterator[None]:
    """Run the user's factory code: modules in the current folder importable (as with
    `python -m`), a note on stderr if it takes long, its failures one line naming it."""
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    note = threading.Timer(SLOW_FACTORY_S, lambda: print(
        f"dreamkit: still waiting for {doing} (model {spec}): that is your code running; "
        "Ctrl-C stops it", file=sys.stderr, flush=True))
    note.daemon = True
    note.start()
    try:
        yield
    except DreamkitError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code failed
        text = str(exc).strip().splitlines()
        raise DreamkitError(f"{failure}: {type(exc).__name__}: {text[0][:200] if text else ''} "
                            f"(model {spec})") from None
    finally:
        note.cancel()
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(here)


def factory_model(spec: str, weights: str | os.PathLike | None) -> WrappedModel:
    """`package.module:factory`: the callable's module (or (module, preprocess), or a wrapped
    model), imported and called with no arguments."""
    module_name, _, attribute = spec.partition(":")
    with _users_code(spec, f"the import of {module_name}", f"cannot import {module_name}"):
        imported = importlib.import_module(module_name)
    factory = getattr(imported, attribute, None)
    if factory is None:
        raise DreamkitError(f"{module_name} has no {attribute!r} (model {spec})")
    if not callable(factory):
        raise DreamkitError(f"{spec} is not callable; name a function returning the module")
    with _users_code(spec, f"{spec}()", f"{spec}() failed"):
        made = factory()
    preprocess: object = "auto"
    if isinstance(made, tuple) and len(made) == 2:
        made, preprocess = made
    if isinstance(made, WrappedModel):
        made.name = spec
        target = made.module
    elif isinstance(made, nn.Module):
        target = made
    else:
        raise DreamkitError(f"{spec}() returned {type(made).__name__}, not an nn.Module (or a "
                            "(module, preprocess) pair)")
    if weights is not None:
        _load_state(target, weights, spec)
    if isinstance(made, WrappedModel):
        return made
    return wrap(made, preprocess, spec, copy=False)  # type: ignore[arg-type]


def fetch_library_weights(spec: str) -> str:
    """Download a torchvision or timm model's published weights into that library's cache."""
    if kind_of(spec) == "torchvision":
        import torchvision

        name = spec.removeprefix("torchvision:")
        published = torchvision.models.get_model_weights(name).DEFAULT
        published.get_state_dict(progress=True, check_hash=True)
        return os.path.join(torch.hub.get_dir(), "checkpoints", published.url.rsplit("/", 1)[-1])
    timm_model(spec, None, random_weights=False)
    return f"timm's cache ({spec})"
