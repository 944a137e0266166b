"""How well a dictionary describes a layer, against same-size baselines, and what its features
say about superposition.

All measures use the held-out vectors (photos the dictionary never saw):

* R^2 (explained variance about the training mean) and mean L0 of the dictionary; the same R^2
  for the baselines at the same sparsity: the neuron basis (each vector's k largest centred
  neurons kept), PCA with k components, and K random unit directions (each vector's k
  directions of largest |projection|, coefficients by least squares);
* dead features: never among a held-out vector's k;
* superposition: alive features per dimension, |cos| between atoms (against random unit
  directions in as many dimensions), and how often a feature's top examples share one neuron
  (their largest neuron is the same);
* monosemanticity: for each feature and each neuron, the mean pairwise cosine of its top views'
  pooled activations at a later layer (centred); random views give the floor;
* steering: the homogeneity of the logits' response along a direction added at every
  position, g(h + t d) against g(h) + t (g(h + d) - g(h)), for features, neurons and random
  directions, as `dreamkit linearity`'s latent probes measure it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dreamkit.dictionary.sae import Codec
from dreamkit.models.base import Model
from dreamkit.probing import Prober

TOP_EXAMPLES = 16  # top held-out vectors per feature for the shared-neuron measure
TOP_VIEWS = 8  # top held-out views per feature / neuron for monosemanticity
STEPS = (2.0, -1.0)  # homogeneity multipliers of the steering probe


def r_squared(x: torch.Tensor, x_hat: torch.Tensor, mean: torch.Tensor) -> float:
    x, x_hat = x.double(), x_hat.double()
    return float(1 - (x - x_hat).pow(2).sum() / (x - mean.double()).pow(2).sum())


def neuron_top_k(x: torch.Tensor, mean: torch.Tensor, k: int) -> torch.Tensor:
    """Each vector's k largest-magnitude centred neurons kept, the rest at the mean."""
    centred = x - mean
    top = torch.topk(centred.abs(), k, dim=1).indices
    return mean + torch.zeros_like(centred).scatter(1, top, centred.gather(1, top))


def pca_k(x: torch.Tensor, train: torch.Tensor, mean: torch.Tensor, k: int) -> torch.Tensor:
    """Projection on the training vectors' top k principal directions."""
    _, _, vh = torch.linalg.svd((train - mean).double(), full_matrices=False)
    basis = vh[:k]
    return (mean.double() + ((x - mean).double() @ basis.T) @ basis).float()


def random_directions(count: int, channels: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    atoms = torch.randn(count, channels, generator=generator)
    return atoms / atoms.norm(dim=1, keepdim=True)


def random_top_k(x: torch.Tensor, mean: torch.Tensor, atoms: torch.Tensor, k: int,
                 batch: int = 1024) -> torch.Tensor:
    """Each centred vector on its k random atoms of largest |projection|, least squares."""
    parts = []
    for chunk in (x - mean).double().split(batch):
        chosen = torch.topk((chunk @ atoms.double().T).abs(), k, dim=1).indices
        basis = atoms.double()[chosen]  # (b, k, C)
        coef = torch.linalg.lstsq(basis.transpose(1, 2), chunk[..., None]).solution
        parts.append((coef.transpose(1, 2) @ basis)[:, 0])
    return (mean.double() + torch.cat(parts)).float()


def abs_cosines(atoms: torch.Tensor, limit: int = 2048) -> torch.Tensor:
    """|cos| of every pair of (up to `limit`) atoms."""
    atoms = atoms[:limit].double()
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    cos = (atoms @ atoms.T).abs()
    upper = torch.triu_indices(len(atoms), len(atoms), 1)
    return cos[upper[0], upper[1]].float()


def shared_neuron(codes: torch.Tensor, x: torch.Tensor, mean: torch.Tensor,
                  alive: torch.Tensor) -> torch.Tensor:
    """Per alive feature: the largest share of its top examples whose largest centred neuron
    is one and the same."""
    top = torch.topk(codes[:, alive], min(TOP_EXAMPLES, len(codes)), dim=0).indices  # (T, F)
    neuron = (x - mean).argmax(1)[top]  # (T, F)
    return torch.stack([torch.bincount(column).max() for column in neuron.T]).float() / len(top)


def view_consistency(per_view: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
    """For each unit (column of `per_view`, views x units): the mean pairwise cosine of its
    top views' centred later-layer vectors."""
    centred = later - later.mean(0)
    unit = centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-12)
    top = torch.topk(per_view, min(TOP_VIEWS, len(per_view)), dim=0).indices  # (T, U)
    chosen = unit[top]  # (T, U, D)
    gram = torch.einsum("tud,sud->uts", chosen, chosen)
    n = top.shape[0]
    return (gram.sum((1, 2)) - n) / (n * (n - 1))


def per_view_max(values: torch.Tensor, view: torch.Tensor, views: int) -> torch.Tensor:
    """(N, U) per-vector values -> (views, U) maximum over each view's vectors."""
    out = torch.full((views, values.shape[1]), float("-inf"))
    return out.scatter_reduce(0, view[:, None].expand_as(values), values, "amax")


def steering(net: Model, layer: str, photos: torch.Tensor, directions: dict[str, torch.Tensor],
             size: float) -> dict[str, float]:
    """Mean relative homogeneity error of the logits along each kind of direction (rows of
    unit vectors), added with norm `size` at every position of `photos`' activations."""
    from dreamkit.capture import capture_resolved

    with torch.no_grad():
        h = capture_resolved(net, photos.to(net.device, net.dtype), [layer])[layer].float().cpu()

    def decode(z: torch.Tensor) -> dict[str, torch.Tensor]:
        images = photos[:1].expand(len(z), -1, -1, -1).to(net.device, net.dtype)
        with torch.no_grad():
            return {"logits": net.logits_from(layer, z.to(net.device, net.dtype),
                                              images).float().cpu()}

    prober = Prober(decode, batch=8)
    base = decode(h)["logits"]
    found = {}
    for kind, rows in directions.items():
        errors = []
        for d in rows:
            step = (size * d)[None, :, None, None]
            once = decode(h + step)["logits"]
            for t in STEPS:
                predicted = base + t * (once - base)
                probe = prober.score(h + t * step, lambda _, p=predicted: p,
                                     lambda _: base)["logits"]
                errors.append(probe.error / probe.change.clamp_min(1e-12))
        found[kind] = float(torch.cat(errors).mean())
    return found


def evaluate(codec: Codec, train: torch.Tensor, held: torch.Tensor, held_view: torch.Tensor,
             later: torch.Tensor, seed: int = 0) -> tuple[dict, dict[str, torch.Tensor]]:
    """The report's numbers (a JSON-able dict) and the distributions behind its plot."""
    features, channels = codec.decoder.shape
    k = codec.k
    mean = train.mean(0)
    codes = codec.encode(held)
    active = (codes > 0).sum(0)
    alive = active > 0
    random_atoms = random_directions(features, channels, seed)
    r2 = {
        "dictionary": r_squared(held, codec.decode(codes), mean),
        "neurons (top-k)": r_squared(held, neuron_top_k(held, mean, k), mean),
        "pca (k components)": r_squared(held, pca_k(held, train, mean, min(k, channels)), mean),
        "random directions (top-k)": r_squared(held, random_top_k(held, mean, random_atoms, k),
                                               mean),
    }
    cos = abs_cosines(codec.decoder)
    cos_random = abs_cosines(random_atoms)
    shares = shared_neuron(codes, held, mean, alive)
    views = len(later)
    feature_views = per_view_max(codes, held_view, views)[:, alive]
    neuron_views = per_view_max(held - mean, held_view, views)
    generator = torch.Generator().manual_seed(seed)
    random_views = torch.rand(views, 256, generator=generator)
    mono = {"features": view_consistency(feature_views, later),
            "neurons": view_consistency(neuron_views, later),
            "random views": view_consistency(random_views, later)}
    report = {
        "features": features, "channels": channels, "k": k,
        "train_vectors": len(train), "held_out_vectors": len(held), "held_out_views": views,
        "r2": r2,
        "mean_l0": float((codes > 0).sum(1).float().mean()),
        "dead_features": int((~alive).sum()), "dead_share": float((~alive).float().mean()),
        "features_per_dimension": float(alive.sum()) / channels,
        "abs_cos": {"mean": float(cos.mean()), "p99": float(cos.quantile(0.99)),
                    "random_mean": float(cos_random.mean()),
                    "random_p99": float(cos_random.quantile(0.99))},
        "top_examples_share_one_neuron": {
            "mean_share": float(shares.mean()),
            "features_mostly_one_neuron": float((shares > 0.5).float().mean())},
        "monosemanticity": {name: float(v.median()) for name, v in mono.items()},
        "features_above_median_neuron": float(
            (mono["features"] > mono["neurons"].median()).float().mean()),
    }
    distributions = {"abs_cos": cos, "abs_cos_random": cos_random, **{
        f"mono_{name.split()[0]}": v for name, v in mono.items()}}
    return report, distributions


def top_features(codec: Codec, held: torch.Tensor, count: int) -> list[int]:
    """The `count` features most often active on held-out vectors, most active first."""
    activity = (codec.encode(held) > 0).sum(0)
    return torch.argsort(activity, descending=True, stable=True)[:count].tolist()


def steering_directions(codec: Codec, features: Sequence[int], seed: int
                        ) -> dict[str, torch.Tensor]:
    count = len(features)
    channels = codec.decoder.shape[1]
    neurons = torch.eye(channels)[torch.randperm(channels, generator=torch.Generator()
                                                 .manual_seed(seed))[:count]]
    return {"features": codec.decoder[list(features)], "neurons": neurons,
            "random directions": random_directions(count, channels, seed + 1)}
