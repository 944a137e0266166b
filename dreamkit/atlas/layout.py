"""The atlas's map: the sample's vectors laid out in 2-D with UMAP, cut into a grid of cells.

Vectors are compared by direction: each is scaled to unit length, reduced with PCA where the
layer is wide (`PCA_DIMS`), and laid out by UMAP with a fixed seed. The layout's
trustworthiness (scikit-learn) is measured on held-out vectors placed with the fitted UMAP,
beside a 2-D PCA of the same vectors as a baseline. The map's bounds leave out the outermost
`EDGE` of the vectors on each axis (they fall in the border cells), then a grid x grid lattice
cuts it into cells. A view of the map gives each vector a weight (1 for the whole layer, its
attribution for a class atlas): a cell's direction is its vectors' weighted mean, and its
examples the members that weigh most times align best with it, one per photo. A class view
keeps only its heaviest cells, those that together hold `CLASS_MASS` of the class's
attribution.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from dreamkit.errors import DreamkitError

PCA_DIMS = 50  # vectors are reduced to this many dimensions before UMAP (when wider)
NEIGHBOURS = 15  # UMAP's n_neighbors
MIN_DIST = 0.05  # UMAP's min_dist: small keeps similar vectors together
EPOCHS = 200  # UMAP's optimization epochs (its own default for large samples), whatever N
TRUST_NEIGHBOURS = 10  # the neighbourhood trustworthiness checks
EDGE = 0.005  # the share of vectors beyond each side of the map's bounds
CLASS_MASS = 0.9  # a class view shows the heaviest cells that together hold this share


def umap_module():
    """umap-learn, or the one line that says how to install it."""
    try:
        import umap
    except ImportError:
        raise DreamkitError("an atlas lays its vectors out with umap-learn, which is not "
                            "installed: pip install 'dreamkit[atlas]'") from None
    return umap


@dataclass
class Layout:
    """Where each sampled vector falls: its 2-D position (N, 2) and cell (N,), and the
    figures (trustworthiness of UMAP and of the PCA baseline, the dimensions used)."""

    position: np.ndarray
    cell: np.ndarray
    figures: dict


@contextlib.contextmanager
def _restored(threads: int):
    """Give torch back its thread count after the block."""
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _unit(vectors: torch.Tensor) -> np.ndarray:
    return (vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()


def lay_out(train: torch.Tensor, held: torch.Tensor, grid: int, seed: int) -> Layout:
    """UMAP of the vectors `train` (N, C) on a grid x grid lattice; trustworthiness measured
    on `held` (M, C), vectors the layout never saw."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import trustworthiness

    umap = umap_module()
    if len(train) < 8:
        raise DreamkitError(f"only {len(train)} activation vectors were sampled; an atlas needs "
                            "more photos (or --positions)")
    unit, unit_held = _unit(train), _unit(held)
    dims = min(PCA_DIMS, *unit.shape)
    reduce = PCA(dims, random_state=seed).fit(unit) if unit.shape[1] > PCA_DIMS else None
    points = reduce.transform(unit) if reduce else unit
    k = min(TRUST_NEIGHBOURS, (len(held) - 1) // 2)  # trustworthiness needs k < M / 2
    threads = torch.get_num_threads()  # UMAP's numba sets OpenMP's, which torch shares
    with warnings.catch_warnings(), _restored(threads):  # no umap notes on seeds and sizes
        warnings.simplefilter("ignore")
        fitted = umap.UMAP(n_neighbors=min(NEIGHBOURS, len(points) - 1), min_dist=MIN_DIST,
                           n_epochs=EPOCHS, random_state=seed, n_jobs=1).fit(points)
        placed = fitted.transform(reduce.transform(unit_held) if reduce else unit_held) \
            if k >= 1 else None
    position = np.asarray(fitted.embedding_, dtype=np.float64)
    figures: dict = {"vectors": len(train), "held_out": len(held), "channels": unit.shape[1],
                     "pca_dims": dims if reduce else None, "umap_neighbours": NEIGHBOURS,
                     "trustworthiness": None, "trustworthiness_pca": None}
    if placed is not None:
        flat = PCA(2, random_state=seed).fit(unit).transform(unit_held)
        figures.update(trustworthiness=float(trustworthiness(unit_held, placed, n_neighbors=k)),
                       trustworthiness_pca=float(trustworthiness(unit_held, flat,
                                                                 n_neighbors=k)),
                       trust_neighbours=k)
    low, high = np.quantile(position, [EDGE, 1 - EDGE], axis=0)
    scaled = (position - low) / np.maximum(high - low, 1e-12)
    column, row = (np.clip(np.floor(scaled * grid), 0, grid - 1).astype(np.int64).T)
    return Layout(scaled, row * grid + column, figures)


@dataclass
class Cell:
    """One cell of a view: its number (row x grid + column), how many vectors fell in it,
    their weight, their weighted mean direction (C,), and its examples (sample rows)."""

    cell: int
    count: int
    weight: float
    direction: torch.Tensor
    examples: list[int]


def cells(vectors: torch.Tensor, photo: torch.Tensor, cell_of: np.ndarray, grid: int,
          weights: torch.Tensor | None = None, *, min_count: int = 3, examples: int = 4
          ) -> list[Cell]:
    """The cells of one view, in cell order: those holding at least `min_count` vectors and,
    with `weights` (a class view), among the heaviest that hold `CLASS_MASS` of the weight."""
    where = torch.as_tensor(cell_of)
    w = torch.ones(len(vectors)) if weights is None else weights.float()
    counts = torch.bincount(where, minlength=grid * grid)
    mass = torch.zeros(grid * grid).index_add_(0, where, w)
    sums = torch.zeros(grid * grid, vectors.shape[1]).index_add_(0, where, vectors * w[:, None])
    keep = (counts >= min_count) & (mass > 0)
    if weights is not None:
        order = torch.argsort(mass, descending=True, stable=True)
        total = torch.cumsum(mass[order], 0)
        heaviest = torch.zeros_like(keep)
        heaviest[order[:int((total < CLASS_MASS * total[-1]).sum()) + 1]] = True
        keep &= heaviest
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    found = []
    for c in keep.nonzero().flatten().tolist():
        direction = sums[c] / mass[c]
        if float(direction.norm()) < 1e-6:  # no direction to render (vectors that cancel)
            continue
        members = (where == c).nonzero().flatten()
        score = w[members] * (unit[members] @ (direction / direction.norm().clamp_min(1e-12)))
        chosen, photos = [], set()
        for i in members[torch.argsort(score, descending=True, stable=True)].tolist():
            if len(chosen) == examples:
                break
            if int(photo[i]) not in photos and float(w[i]) > 0:
                chosen.append(i)
                photos.add(int(photo[i]))
        found.append(Cell(c, int(counts[c]), float(mass[c]), direction, chosen))
    return found


def neighbours(cell: int, grid: int) -> list[int]:
    """The up to 8 cells around `cell` on the grid."""
    row, column = divmod(cell, grid)
    return [r * grid + c for r in range(max(0, row - 1), min(grid, row + 2))
            for c in range(max(0, column - 1), min(grid, column + 2)) if (r, c) != (row, column)]
