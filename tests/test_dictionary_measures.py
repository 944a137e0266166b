"""The dictionary's measures of use: downstream fidelity (the layer spliced: the identity
changes nothing, mean ablation recovers nothing), label purity on a constructed case, the
ImageNet groups, and the L0 / expansion sweep (its files, its determinism, its one-line
mistakes)."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
import torch

from dreamkit.cli import main
from dreamkit.dictionary.downstream import ABLATION, HeldPhotos, fidelity
from dreamkit.dictionary.purity import TOP_PHOTOS, chance, feature_groups, label_purity, purity
from dreamkit.examples import TopK
from dreamkit.imagenet import GROUPS, class_group, photo_class
from tests.helpers import PHOTOS, assert_user_error, call, requires_photos, requires_weights


def test_the_groups_cover_every_class_once_and_names_give_classes():
    covered = sorted(i for first, last, _ in GROUPS for i in range(first, last + 1))
    assert covered == list(range(1000))
    assert [class_group(i) for i in (0, 10, 30, 50, 151, 268, 291, 300, 366, 500, 950, 985)] == [
        "fish", "bird", "amphibian", "reptile", "dog", "dog", "carnivore (not dog)", "insect",
        "primate", "man-made object", "food", "plant or fungus"]
    assert photo_class("042_n01687978_agama.jpg") == 42
    assert photo_class("/a/b/998_n13133613_ear.jpg") == 998
    assert photo_class("chelsea.jpg") is None and photo_class("1234_n01440764_x.jpg") is None


def _tops(photos: list[list[int]], values: list[float]) -> TopK:
    rows = torch.tensor(photos)
    return TopK(list(range(len(photos))), rows.shape[1],
                torch.tensor(values, dtype=torch.float64)[:, None].expand(rows.shape).clone(),
                rows, torch.zeros_like(rows), torch.zeros_like(rows))


def test_label_purity_of_a_constructed_case():
    """32 photos: 16 dogs (classes 151-166), 8 birds, 8 foods. A unit whose top photos are the
    dogs is pure (1); 8 dogs + 8 birds give 0.5; a unit active on no photo is left out; random
    sets of 16 of these photos are about as pure as the dogs' share."""
    classes = list(range(151, 167)) + list(range(10, 18)) + list(range(923, 931))
    dogs, mixed = list(range(16)), list(range(8)) + list(range(16, 24))
    tops = {"features": _tops([dogs, mixed, dogs], [1.0, 1.0, 0.0]),
            "neurons": _tops([mixed, mixed], [1.0, 1.0]),
            "random directions": _tops([dogs[::-1], mixed], [1.0, 1.0])}
    report, distributions = label_purity(tops, classes, seed=0)
    group = report["group"]
    assert report["photos"] == 32 and report["groups"] == 3 and "class" not in report
    assert torch.equal(distributions["purity_features"], torch.tensor([1.0, 0.5]))
    assert group["features"]["units"] == 2 and group["features"]["left_out"] == 1
    assert group["neurons"]["median"] == 0.5 and group["neurons"]["above_chance"] == 0
    assert group["random directions"]["mean"] == 0.75
    assert 0.5 <= group["chance"]["median"] <= group["chance"]["p95"] < 0.75
    assert group["features"]["above_chance"] == 0.5  # the pure unit only
    assert feature_groups(tops["features"], classes, [0, 1, 2]) == [
        {"feature": 0, "group": "dog", "share": 1.0},
        {"feature": 1, "group": "dog", "share": 0.5},
        {"feature": 2, "group": None, "share": 0.0}]
    # several photos of a class: class purity is reported too
    report, _ = label_purity(tops, [151] * 16 + classes[16:], seed=0)
    assert report["class"]["features"]["median"] == 0.75  # (1 + 0.5) / 2
    labels = torch.tensor([0] * 16 + [1] * 16)
    assert torch.equal(purity(labels, torch.tensor([[0, 1, 16, 17]])), torch.tensor([0.5],
                                                                                     dtype=torch.float64))
    assert torch.equal(chance(labels, TOP_PHOTOS, 3), chance(labels, TOP_PHOTOS, 3))


@requires_weights
@requires_photos
@pytest.mark.slow  # nine splices of four photos: about 5 s
def test_splicing_the_clean_layer_changes_nothing_and_mean_ablation_recovers_nothing(googlenet):
    """The identity splice gives KL 0, full top-1 agreement and CE recovered 1; the mean
    ablation CE recovered 0 with a large KL; a noisy reconstruction lies between. Without
    labels the CE is against the clean top-1."""
    from dreamkit.capture import capture
    from dreamkit.image_io import load_image
    from dreamkit.photos import view

    paths = sorted(PHOTOS.glob("*.jpg"))[::50][:4]
    images = torch.stack([view(load_image(p)) for p in paths])
    with torch.no_grad():
        maps = capture(googlenet, images, ["inception4c"])["inception4c"]
    classes = torch.tensor([photo_class(p) for p in paths])
    held = HeldPhotos(images, maps, classes)
    mean = maps.mean((0, 2, 3))
    generator = torch.Generator().manual_seed(0)
    methods = {"identity": lambda x: x,
               "noisy": lambda x: x + 0.5 * x.std() * torch.randn(x.shape, generator=generator)}
    found = fidelity(googlenet, "inception4c", held, methods, mean, resamples=200)
    assert found["photos"] == 4 and found["target"] == "ImageNet class"
    assert found["ce_ablated"] > found["ce_clean"] + 1
    same, ablated, noisy = (found["methods"][n] for n in ("identity", ABLATION, "noisy"))
    assert same["kl"] < 1e-6 and same["top1_agreement"] == 1
    assert same["ce_recovered"] == pytest.approx(1, abs=1e-5)
    assert same["ce_recovered_interval"] == pytest.approx([1, 1], abs=1e-5)
    assert ablated["ce_recovered"] == 0 and ablated["kl"] > 1
    assert 0 < noisy["ce_recovered"] < 1 and same["kl"] < noisy["kl"] < ablated["kl"]
    low, high = noisy["kl_interval"]
    assert low <= noisy["kl"] <= high
    unlabelled = fidelity(googlenet, "inception4c", HeldPhotos(images, maps, classes * 0 - 1),
                          {"identity": lambda x: x}, mean, resamples=200)
    assert unlabelled["target"] == "clean top-1"
    assert unlabelled["methods"]["identity"]["ce_recovered"] == pytest.approx(1, abs=1e-5)


@pytest.fixture
def photos20(tmp_path):
    if not PHOTOS.is_dir():
        pytest.skip("set DREAMKIT_PHOTOS")
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted(PHOTOS.glob("*.jpg"))[::25][:20]:
        os.symlink(path, folder / path.name)
    return folder


@requires_weights
@pytest.mark.slow  # two sweeps of two tiny fits on 20 photos: about 30 s on one core
@pytest.mark.skipif(importlib.util.find_spec("overcomplete") is None,
                    reason="pip install 'dreamkit[dictionary]'")
def test_a_sweep_writes_its_table_and_plot_and_gives_the_same_numbers_again(photos20, workdir):
    argv = ["dictionary", "sweep", "--images", str(photos20), "--layer", "inception4c",
            "--l0", "2,4", "--expansion", "0.25", "--epochs", "1", "-q", "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert main([*argv, "-o", "one"]) == 0
        assert main([*argv, "--no-plot", "-o", "two"]) == 0
    finally:
        torch.set_num_threads(threads)
    one = json.loads((workdir / "one" / "sweep.json").read_text())
    two = json.loads((workdir / "two" / "sweep.json").read_text())
    assert one["rows"] == two["rows"] and len(one["rows"]) == 2
    assert [(r["expansion"], r["features"], r["l0"]) for r in one["rows"]] == [
        (0.25, 128, 2), (0.25, 128, 4)]
    row = one["rows"][1]
    assert set(row["downstream"]) == {ABLATION, "dictionary", "neurons (top-k)",
                                      "pca (k components)", "random directions (top-k)"}
    assert row["r2"]["neurons (top-k)"] > one["rows"][0]["r2"]["neurons (top-k)"]  # more L0
    assert one["held_out_photos"] == 2 and one["target"] == "ImageNet class"
    table = (workdir / "one" / "sweep.md").read_text()
    assert table.count("\n| 0.25 | 128 |") == 2
    assert (workdir / "one" / "sweep.png").stat().st_size > 10_000
    assert not (workdir / "two" / "sweep.png").exists()


@pytest.mark.parametrize(("flags", "words"), [
    (["--l0", "8.5"], ["l0 (--l0) must be whole numbers"]),
    (["--l0", "600", "--expansion", "1"], ["l0 (--l0) must be an integer from 1 to 512"]),
    (["--l0", "4,x"], ["l0 (--l0) must be"]),
    (["--expansion", "0"], ["expansion (--expansion) must be"]),
    (["--layer", "inception9z"], ["inception9z"]),
    (["-o", "taken.txt"], ["taken.txt", "is a file"]),
    (["-o", "photos"], ["sweep.png", "is one of this command's inputs"]),
])
def test_a_sweep_refuses_a_mistake_in_one_line_before_any_work(flags, words, workdir, capsys):
    from tests.helpers import small_png

    (workdir / "photos").mkdir()
    small_png(workdir / "photos", "sweep.png")  # a photo the plot would replace
    (workdir / "taken.txt").write_text("mine")
    argv = ["dictionary", "sweep", "--images", "photos", "--layer", "inception4c", "-o", "out",
            *flags]
    rc, err = call(capsys, argv)
    assert_user_error(rc, err, *words)
    assert sorted(p.name for p in workdir.iterdir()) == ["photos", "taken.txt"]
    assert [p.name for p in (workdir / "photos").iterdir()] == ["sweep.png"]
