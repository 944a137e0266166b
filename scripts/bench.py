"""Benchmark dreamkit against plain PyTorch loops, side by side in one run.

  (a) octave DeepDream of a square image (4 octaves x 10 steps, inception4c): dreamkit's `dream`
      vs the google/deepdream notebook's loop written plainly in PyTorch (fp32, NCHW, forward
      truncated at the layer, stock torch modules such as nn.LocalResponseNorm, no blur);
  (b) channel visualizations of inception4c (fft + decorrelated, standard transforms):
      dreamkit's `render` of all channels in one batch vs one channel at a time;
  (c) one step of (b)'s batched render vs a bare fp32 forward + backward of the truncated
      network at the same batch and size (dreamkit's overhead);
  (d) (b)'s batched render on torchvision's GoogLeNet, wrapped generically (`dreamkit.wrap`,
      fx-truncated) vs the same weights as dreamkit's staged `googlenet` (the cost of wrapping);
  (e) the microscope's dataset-example pass over a photo folder (every channel of inception3b
      and inception4c, top 6): dreamkit's streaming pass (batched, background loader, forward
      stopped at the deepest layer) vs a plain loop (one photo at a time, full forward), in
      photos per second;
  (g), (h), (i) the compiled loop, the 512-channel sweep and a 4096x4096 dream (see
      `bench_compiled.py`; h and i only when asked, they are GPU cases);
  (v) a dreamed video, only when asked (`--cases v`, about 10 minutes on 2 CPU cores):
      temporal stability (warp error of consecutive output frames over the input's own, with
      the input frames' optical flow, occlusions masked) and dream strength (the layer's gain
      over the input frame, relative to dreaming every frame alone) of the variants
      independent / blend / flow, on 24 frames of ../shared/videos/bikes.mp4 at 320 px and on
      a synthetic pan + zoom over a photo; and frames per second at 640x272 with the share of
      time spent in optical flow;
  (t) an activation atlas of inception4c over the photo folder, only when asked (`--cases t`,
      a long case on a CPU; see `bench_atlas.py`): time, share per phase, memory;
  (f) start-up: `dream --help`, `dreamkit --help` and an argument error, each in a fresh
      Python process, vs a process that only imports torch (what every answer cost when the
      CLI imported torch first).

Times are medians over `--repeats` runs after one warm-up run; peak memory is
`torch.cuda.max_memory_allocated` on CUDA and the process's peak resident set (VmHWM, reset
before each case) on the CPU. The process keeps freed memory as the CLI does
(`dreamkit.allocator`). Prints a table; `-o bench.json` writes every number.

  python scripts/bench.py                 # the full sizes (for a GPU)
  python scripts/bench.py --quick         # small sizes: a CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import (  # noqa: E402
    LAYER,
    _peak_mb,
    _sync,
    measure,
    stock_network,
    truncated_forward,
)

from dreamkit import load_model  # noqa: E402
from dreamkit.allocator import keep_freed_memory  # noqa: E402
from dreamkit.dream import DreamSettings, dream, octave_sizes  # noqa: E402
from dreamkit.models.base import Model  # noqa: E402
from dreamkit.objectives import channel  # noqa: E402

BARE = "bare fp32 forward + backward (stock modules, one pass)"
FULL = dict(dream_size=1024, dream_steps=10, channels=64, vis_steps=512, vis_size=128, repeats=3)
QUICK = dict(dream_size=128, dream_steps=10, channels=4, vis_steps=4, vis_size=64, repeats=1)
FULL["photos"], QUICK["photos"] = 128, 8
FULL.update(video_frames=24, video_side=320, speed_frames=3)
QUICK.update(video_frames=4, video_side=160, speed_frames=1)
FULL["atlas_photos"], QUICK["atlas_photos"] = 500, 12
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
EXAMPLE_LAYERS = ("inception3b", "inception4c")
PLAIN_EXAMPLES = "plain loop: one photo at a time, full forward, stock torch modules"
PLAIN_EXAMPLES_OWN = "plain loop: one photo at a time, full forward, dreamkit's network"


def reference_dream(net: Model, image: torch.Tensor, settings: DreamSettings) -> torch.Tensor:
    """The notebook's octave DeepDream, plainly: roll, L2 objective, step = lr g / mean|g|."""
    generator = torch.Generator().manual_seed(settings.seed)
    sizes = octave_sizes(image.shape[-2], image.shape[-1], settings)
    octaves = [F.interpolate(image, size=s, mode="bilinear", align_corners=False) for s in sizes]
    detail = torch.zeros_like(octaves[0])
    for octave in octaves:
        detail = F.interpolate(detail, size=octave.shape[-2:], mode="bilinear", align_corners=False)
        x = octave + detail
        for _ in range(settings.steps):
            dy, dx = (int(v) for v in torch.randint(-settings.jitter, settings.jitter + 1, (2,),
                                                    generator=generator))
            x = x.roll((dy, dx), (2, 3)).detach().requires_grad_(True)
            acts = truncated_forward(net, x, LAYER)
            acts.pow(2).sum().backward()
            g = x.grad
            x = (x.detach() + settings.lr / 255.0 * g / g.abs().mean()).roll((-dy, -dx), (2, 3))
            x = x.clamp(0.0, 1.0)
        detail = x - octave
    return x


def bare_step(net: Model, x: torch.Tensor) -> None:
    """One fp32 forward + backward of the truncated network: the floor a step cannot beat."""
    x = x.detach().requires_grad_(True)
    truncated_forward(net, x, LAYER).mean().backward()


# ------------------------------------------------------------------------------ the cases


def bench_dream(net: Model, device: torch.device, size: int, steps: int,
                repeats: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    image = F.interpolate(torch.rand(1, 3, size // 16, size // 16, generator=generator),
                          size=(size, size), mode="bicubic").clamp(0, 1).to(device)
    settings = DreamSettings(octaves=4, steps=steps)
    plain = stock_network(net)
    rows = [
        ("reference: plain fp32 loop, stock torch modules", lambda: reference_dream(plain, image,
                                                                                    settings)),
        ("reference: plain fp32 loop, dreamkit's network", lambda: reference_dream(net, image,
                                                                                   settings)),
        ("dreamkit dream (defaults)", lambda: dream(net, image, LAYER, settings)),
    ]
    what = f"(a) DeepDream {size}x{size}, 4 octaves x {steps} steps, {LAYER}"
    return [dict(case=what, variant=v, **measure(fn, device, repeats)) for v, fn in rows]


def bench_render(net: Model, device: torch.device, channels: int, steps: int, size: int,
                 repeats: int, single: bool) -> list[dict]:
    """The batched render, preceded by the one-at-a-time renders when `single`."""
    from dreamkit.render import render

    def batched() -> None:
        render(net, channel(LAYER, list(range(channels))), size=size, steps=steps, device=device)

    def one_at_a_time() -> None:
        for c in range(channels):
            render(net, channel(LAYER, c), size=size, steps=steps, device=device)

    what = f"(b) {channels} channels of {LAYER}, {steps} steps, {size} px, fft + decorrelated"
    rows = [dict(case=what, variant="dreamkit render, one channel at a time",
                 **measure(one_at_a_time, device, repeats))] if single else []
    return rows + [dict(case=what, variant="dreamkit render, all channels in one batch",
                        **measure(batched, device, repeats))]


def bench_overhead(net: Model, device: torch.device, render_row: dict, channels: int,
                   steps: int, size: int, repeats: int) -> list[dict]:
    x = torch.rand(channels, 3, size, size, device=device)
    plain = stock_network(net)
    what = f"(c) one step at batch {channels}, {size} px, to {LAYER}"
    bare = dict(case=what, variant=BARE,
                **measure(lambda: bare_step(plain, x), device, max(repeats, 5)))
    step = dict(case=what, variant="dreamkit render step (batched run / steps)",
                seconds=render_row["seconds"] / steps, peak_mb=render_row["peak_mb"])
    return [bare, step]


def bench_wrapped(device: torch.device, channels: int, steps: int, size: int,
                  repeats: int) -> list[dict]:
    """torchvision's GoogLeNet, the same weights, staged by hand and wrapped generically."""
    import torchvision

    from dreamkit.models.torchvision_zoo import Halves, googlenet
    from dreamkit.models.wrapped import wrap
    from dreamkit.render import render

    torch.manual_seed(0)
    module = torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=False,
                                          init_weights=True)
    staged = googlenet(module.state_dict())
    nets = {"staged googlenet (hand-written stages)": staged,
            "torchvision GoogLeNet wrapped generically": wrap(module, Halves(), "googlenet")}
    what = f"(d) render of {channels} channels of {LAYER}, {steps} steps, {size} px"
    runs = {}
    for variant, net in nets.items():
        net = net.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)
        runs[variant] = lambda net=net: render(net, channel(LAYER, list(range(channels))),
                                               size=size, steps=steps)
    return [dict(case=what, variant=v, **m) for v, m in interleaved(runs, device, repeats).items()]


def plain_examples(net: Model, paths: list[Path], k: int) -> dict:
    """The examples as a plain loop finds them: each photo alone, the whole network run."""
    from dreamkit.capture import capture_resolved
    from dreamkit.examples import TopK
    from dreamkit.image_io import load_image
    from dreamkit.photos import view

    found = {layer: TopK.empty(range(net.layers.resolve(layer).channels), k)
             for layer in EXAMPLE_LAYERS}
    for i, path in enumerate(paths):
        x = view(load_image(path))[None].to(net.device)
        with torch.no_grad():
            acts = capture_resolved(net, x, [*EXAMPLE_LAYERS, "logits"])
        for layer, top in found.items():
            best, where = acts[layer][0].flatten(1).max(1)
            width = acts[layer].shape[-1]
            top.add(best[:, None].cpu(), torch.full_like(best, i)[:, None].cpu(),
                    (where // width)[:, None].cpu(), (where % width)[:, None].cpu())
    return found


def bench_examples(net: Model, device: torch.device, folder: Path, count: int,
                   repeats: int) -> list[dict]:
    from dreamkit.examples import stream
    from dreamkit.image_io import list_images

    paths = list_images(folder)[:count]
    layers = {layer: list(range(net.layers.resolve(layer).channels)) for layer in EXAMPLE_LAYERS}
    what = f"(e) dataset examples of {' + '.join(EXAMPLE_LAYERS)}, {len(paths)} photos"
    stock = stock_network(net)
    runs = {PLAIN_EXAMPLES: lambda: plain_examples(stock, paths, 6),
            PLAIN_EXAMPLES_OWN: lambda: plain_examples(net, paths, 6),
            "dreamkit streaming pass": lambda: stream(net, paths, layers, 6)}
    rows = [dict(case=what, variant=v, **m) for v, m in interleaved(runs, device, repeats).items()]
    for row in rows:
        row["photos_per_second"] = len(paths) / row["seconds"]
    return rows


def _photo_folder(folder: Path | None, count: int, scratch: Path) -> Path:
    """`folder`, the shared photos, or (neither present) `count` generated JPEGs."""
    if folder is not None:
        return folder
    if PHOTOS.is_dir():
        return PHOTOS
    from dreamkit.image_io import save_image

    generator = torch.Generator().manual_seed(0)
    for i in range(count):
        small = torch.rand(3, 24, 32, generator=generator)
        save_image(F.interpolate(small[None], size=(375, 500), mode="bicubic")[0].clamp(0, 1),
                   scratch / f"photo{i:03d}.jpg")
    return scratch


STARTUP = {
    "dream --help": "dream_main(['--help'])",
    "dreamkit --help": "main(['--help'])",
    "dream with a bad argument (exit 2)": "dream_main(['photo.jpg', '--octaves', 'four'])",
}
IMPORT_TORCH = "a Python process that imports torch"


def bench_startup(repeats: int) -> list[dict]:
    """Fresh processes, alternating; each row says whether torch got imported."""
    root = Path(__file__).resolve().parents[1]
    probe = "; print('torch' in sys.modules, file=sys.stderr)"
    scripts = {name: "import sys, contextlib, io\nfrom dreamkit.cli import dream_main, main\n"
               f"with contextlib.redirect_stdout(io.StringIO()):\n    try: {call}\n"
               f"    except SystemExit: pass\nsys.stderr = sys.__stderr__{probe}"
               for name, call in STARTUP.items()}
    scripts[IMPORT_TORCH] = f"import sys, torch{probe}"
    times: dict[str, list[float]] = {name: [] for name in scripts}
    imports: dict[str, bool] = {}
    for _ in range(max(5, repeats)):
        for name, script in scripts.items():
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", script], cwd=root, text=True,
                                  capture_output=True)
            times[name].append(time.perf_counter() - start)
            imports[name] = done.stderr.strip().splitlines()[-1] == "True"
    return [{"case": "f start-up", "variant": name, "seconds": statistics.median(t),
             "times": t, "imports_torch": imports[name]} for name, t in times.items()]


VIDEO = Path(__file__).resolve().parents[2] / "shared" / "videos" / "bikes.mp4"
PAN_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "images" / "chelsea.jpg"


def bench_video(net: Model, frames: int, side: int, speed_frames: int) -> list[dict]:
    """(v) stability and strength of the three variants on two clips, then the speed."""
    from dreamkit.settings import VideoSettings
    from dreamkit.targets import Target, objective_of
    from dreamkit.video import pan_zoom_clip, video_stability
    from dreamkit.video.coherence import Chain
    from dreamkit.video.stream import probe, read_frames

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        pan = pan_zoom_clip(PAN_PHOTO, Path(scratch) / "pan.mp4", frames, (side * 17 // 40 // 2
                                                                           * 2, side))
        clips = {f"bikes.mp4 frames 0-{frames - 1}": VIDEO, "pan + zoom over chelsea.jpg": pan}
        for name, clip in clips.items():
            table = video_stability(net, clip, LAYER, DreamSettings(size=side),
                                    VideoSettings(frames=f"0-{frames - 1}"))
            what = (f"(v) video {name}, {table['size'][0]}x{table['size'][1]}, {LAYER}, "
                    f"blend {table['blend']}")
            for variant, row in table["variants"].items():
                rows.append(dict(case=what, variant=variant, seconds=row["seconds"],
                                 peak_mb=None, stability=row["ratio"],
                                 strength=row["strength_vs_independent"], gain=row["gain"],
                                 input_warp_error=table["input_warp_error"]))
    info = probe(VIDEO)
    objective = objective_of((Target.layer_norm(LAYER).resolve(net.layers, net.name),), net.name)
    chain = Chain(net, objective, DreamSettings(), VideoSettings())
    start = time.perf_counter()
    for index, frame in read_frames(VIDEO, 0, 1, speed_frames, (info.height, info.width)):
        chain(index, frame)
    seconds = time.perf_counter() - start
    rows.append(dict(case=f"(v) video speed, {info.width}x{info.height}, default settings",
                     variant="flow (dis), per frame", seconds=seconds / speed_frames,
                     peak_mb=None, frames_per_second=speed_frames / seconds,
                     flow_share=chain.seconds["flow"] / seconds))
    return rows


def interleaved(runs: dict[str, Callable[[], object]], device: torch.device,
                repeats: int) -> dict[str, dict]:
    """`measure` for variants that are compared with each other: their runs alternate, so a
    change in the machine's load falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in runs.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: {"seconds": statistics.median(t), "times": t, "peak_mb": _peak_mb(device)}
            for name, t in times.items()}


def ratios(rows: list[dict]) -> dict[str, float]:
    by = {row["variant"]: row["seconds"] for row in rows}
    out = {}
    if "dreamkit dream (defaults)" in by:
        dk = by["dreamkit dream (defaults)"]
        out["dream / reference (stock modules)"] = dk / by[
            "reference: plain fp32 loop, stock torch modules"]
        out["dream / reference (dreamkit's network)"] = dk / by[
            "reference: plain fp32 loop, dreamkit's network"]
    if "dreamkit render, one channel at a time" in by:
        out["batched / one at a time"] = (by["dreamkit render, all channels in one batch"]
                                          / by["dreamkit render, one channel at a time"])
    if BARE in by:
        out["render step / bare step"] = by["dreamkit render step (batched run / steps)"] / by[BARE]
    if "staged googlenet (hand-written stages)" in by:
        out["wrapped / staged googlenet"] = (by["torchvision GoogLeNet wrapped generically"]
                                             / by["staged googlenet (hand-written stages)"])
    if PLAIN_EXAMPLES in by:
        out["examples pass speed-up (photos/s, streaming / plain, stock modules)"] = (
            by[PLAIN_EXAMPLES] / by["dreamkit streaming pass"])
        out["examples pass speed-up (photos/s, streaming / plain on dreamkit's network)"] = (
            by[PLAIN_EXAMPLES_OWN] / by["dreamkit streaming pass"])
    for precision in ("fp32", "bf16", "fp16"):
        eager, compiled = (by.get(f"render step, {v}, {precision}") for v in ("eager", "compiled"))
        if eager and compiled:
            out[f"compiled / eager render step ({precision})"] = compiled / eager
    if "bare forward + backward, compiled (stock modules, fp32)" in by and \
            "render step, compiled, fp32" in by:
        out["compiled render step / bare compiled step (fp32)"] = (
            by["render step, compiled, fp32"] / by["bare forward + backward, compiled (stock "
                                                  "modules, fp32)"])
    objective = {row["variant"]: row["objective"] for row in rows if "objective" in row}
    if "render step, compiled, bf16" in objective and "render step, compiled, fp32" in objective:
        out["objective bf16 / fp32 (compiled)"] = (objective["render step, compiled, bf16"]
                                                  / objective["render step, compiled, fp32"])
    for row in rows:
        if "stability" in row:
            clip = row["case"].split(",")[0].removeprefix("(v) video ")
            out[f"video warp error / input's, {row['variant']}, {clip}"] = row["stability"]
            out[f"video strength / independent, {row['variant']}, {clip}"] = row["strength"]
        if "atlas_shares" in row:
            out.update({f"atlas share of time in {k}": v for k, v in row["atlas_shares"].items()})
            out["atlas faithfulness (cells beating their neighbours)"] = row["faithfulness"]
            out["atlas layout trustworthiness"] = row["trustworthiness"]
        if "flow_share" in row:
            out["video frames per second (640x272)"] = row["frames_per_second"]
            out["video share of time in optical flow"] = row["flow_share"]
    if IMPORT_TORCH in by:
        out["dream --help / importing torch"] = by["dream --help"] / by[IMPORT_TORCH]
    return out


def table(rows: list[dict], summary: dict[str, float]) -> str:
    lines = ["| case | variant | median | peak memory |", "|---|---|---:|---:|"]
    for row in rows:
        peak = f"{row['peak_mb']:.0f} MB" if row.get("peak_mb") else "n/a"
        rate = f" ({row['photos_per_second']:.1f} photos/s)" if "photos_per_second" in row else ""
        lines.append(f"| {row['case']} | {row['variant']} | {row['seconds']:.3f} s{rate} | "
                     f"{peak} |")
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in summary.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a CPU smoke run")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--cases", default="abcdefg",
                        help="which of the cases a-i, t and v to run (h and i: GPU cases, t: "
                             "the atlas, v: the video case; not default)")
    parser.add_argument("--precisions", metavar="LIST",
                        help="case g's precisions (default: fp32,bf16 on CUDA, fp32 on a CPU)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help=f"photos for case e (default: {PHOTOS}, else generated ones)")
    parser.add_argument("-o", "--output", metavar="JSON", help="write the results here")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads (default: torch's, one per core)")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, metavar="N",
                            help=f"(full: {value}, quick: {QUICK[key]})")
    args = parser.parse_args(argv)
    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = {k: getattr(args, k) or (QUICK if args.quick else FULL)[k] for k in FULL}
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    net = load_model("bvlc_googlenet", device=device)
    rows: list[dict] = []
    if "a" in args.cases:
        rows += bench_dream(net, device, sizes["dream_size"], sizes["dream_steps"],
                            sizes["repeats"])
    if "b" in args.cases or "c" in args.cases:
        rendered = bench_render(net, device, sizes["channels"], sizes["vis_steps"],
                                sizes["vis_size"], sizes["repeats"], single="b" in args.cases)
        rows += rendered if "b" in args.cases else []
        if "c" in args.cases:
            rows += bench_overhead(net, device, rendered[-1], sizes["channels"],
                                   sizes["vis_steps"], sizes["vis_size"], sizes["repeats"])
    if "d" in args.cases:
        rows += bench_wrapped(device, sizes["channels"], sizes["vis_steps"], sizes["vis_size"],
                              sizes["repeats"])
    if "e" in args.cases:
        with tempfile.TemporaryDirectory() as scratch:
            folder = _photo_folder(args.images, sizes["photos"], Path(scratch))
            rows += bench_examples(net, device, folder, sizes["photos"], sizes["repeats"])
    if "f" in args.cases:
        rows += bench_startup(sizes["repeats"])
    if "t" in args.cases:
        from bench_atlas import bench_atlas

        with tempfile.TemporaryDirectory() as scratch:
            folder = _photo_folder(args.images, sizes["atlas_photos"], Path(scratch))
            rows += bench_atlas(net, device, folder, sizes["atlas_photos"])
    if "v" in args.cases:
        rows += bench_video(net, sizes["video_frames"], sizes["video_side"],
                            sizes["speed_frames"])
    if set("ghi") & set(args.cases):
        from bench_compiled import bench_big_dream, bench_compiled, bench_sweep

        if "g" in args.cases:
            precisions = args.precisions.split(",") if args.precisions else \
                ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
            rows += bench_compiled(net, device, sizes["channels"], sizes["vis_steps"],
                                   sizes["vis_size"], sizes["repeats"], precisions)
        if "h" in args.cases:
            rows += bench_sweep(net, device, sizes["vis_size"], sizes["vis_steps"])
        if "i" in args.cases:
            rows += bench_big_dream(net, device)
    summary = ratios(rows)
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, "
                    f"{torch.get_num_threads()} threads")
    print(f"device: {device.type} ({machine}), torch {torch.__version__}, sizes {sizes}")
    print(table(rows, summary))
    if args.output:
        record = {"device": device.type, "machine": machine, "torch": torch.__version__,
                  "sizes": sizes, "rows": rows, "ratios": summary}
        Path(args.output).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
