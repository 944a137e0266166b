"""Optical flow between two frames, warping along it, and where it can be trusted.

`backward_flow(method, frame, previous)` gives, for every pixel of `frame`, where it was in
`previous` (H, W, 2 pixel offsets, x then y): OpenCV's DIS (default) or Farneback, or
torchvision's RAFT when its weights are on this machine. `warp(image, flow)` moves an image of
`previous`'s coordinates into `frame`'s. `reliable(backward, forward)` is 1 where the two
flows agree (forward/backward consistency: what moves from a to b moves back from b to a) and 0
at occlusions, disocclusions and the frame's border. Frames are (H, W, 3) uint8 RGB arrays.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dreamkit.errors import DreamkitError

# Forward/backward consistency (Sundaram et al. 2010, as in Ruder et al. 2016's video style
# transfer): a pixel is occluded when |b + f(x + b)|^2 > ALPHA (|b|^2 + |f(x + b)|^2) + BETA.
ALPHA, BETA = 0.01, 0.5
SHARP = True  # move the dream detail bicubically: it is moved again every frame
RAFT_WEIGHTS = "raft_small_C_T_V2-01064c6d.pth"  # torchvision's Raft_Small_Weights.C_T_V2

Flow = Callable[[np.ndarray, np.ndarray], np.ndarray]


def need_opencv() -> None:
    """OpenCV, or the one line that says how to get it."""
    if importlib.util.find_spec("cv2") is None:
        raise DreamkitError("optical flow needs OpenCV: pip install 'dreamkit[video]' (or "
                            "opencv-python-headless), or use --flow none")


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _dis() -> Flow:
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return lambda a, b: dis.calc(_gray(a), _gray(b), None)


def _farneback() -> Flow:
    import cv2

    return lambda a, b: cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, 0.5, 4, 21, 3,
                                                     7, 1.5, 0)


def raft_weights() -> Path:
    """Where torchvision keeps RAFT's weights (torch hub's checkpoints folder)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / RAFT_WEIGHTS


def _raft() -> Flow:
    path = raft_weights()
    if not path.is_file():
        raise DreamkitError(f"--flow raft needs torchvision's RAFT weights at {path} (not "
                            "downloaded here); use --flow dis")
    import torch
    from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

    model = raft_small(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    transforms = Raft_Small_Weights.C_T_V2.transforms()

    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        pad_h, pad_w = -h % 8, -w % 8  # RAFT works on sides divisible by 8
        ta, tb = (torch.from_numpy(np.pad(x, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge"))
                  .permute(2, 0, 1)[None] for x in (a, b))
        ta, tb = transforms(ta, tb)
        with torch.no_grad():
            out = model(ta, tb)[-1][0]
        return out.permute(1, 2, 0)[:h, :w].numpy().astype(np.float32)

    return flow


METHODS: dict[str, Callable[[], Flow]] = {"dis": _dis, "farneback": _farneback, "raft": _raft}


def flow_method(name: str) -> Flow:
    """The flow function `name` (dis, farneback, raft): f(a, b)[y, x] = where a's pixel (x, y)
    is in b, as an offset. Refuses a method that cannot run here, before any work."""
    if name not in METHODS:
        raise DreamkitError(f"flow must be one of {', '.join(METHODS)}, not {name!r}")
    need_opencv()
    return METHODS[name]()


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray, sharp: bool = False) -> np.ndarray:
    """`image` (H, W, C) float32 moved along `flow` (H, W, 2): out[y, x] = image at (x, y) +
    flow[y, x], bilinear (`sharp`: bicubic, which blurs less when repeated); 0 outside."""
    import cv2

    xs, ys = _grid(*flow.shape[:2])
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1],
                     cv2.INTER_CUBIC if sharp else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def reliable(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """(H, W) float32 mask: 1 where `backward` (frame -> previous) and `forward` (previous ->
    frame) agree and the pixel came from inside the previous frame, else 0."""
    h, w = backward.shape[:2]
    there = warp(forward, backward)  # the forward flow where each pixel was
    total = backward + there
    error = (total**2).sum(-1)
    limit = ALPHA * ((backward**2).sum(-1) + (there**2).sum(-1)) + BETA
    xs, ys = _grid(h, w)
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return ((error <= limit) & inside).astype(np.float32)


def moved_detail(detail: np.ndarray, frame: np.ndarray, previous: np.ndarray,
                 flow: Flow) -> tuple[np.ndarray, np.ndarray]:
    """The previous frame's dream `detail` (H, W, 3 float32) moved into `frame`'s place, and
    the mask of where the flow between the two input frames is reliable."""
    backward = flow(frame, previous)
    forward = flow(previous, frame)
    return warp(detail, backward, sharp=SHARP), reliable(backward, forward)
