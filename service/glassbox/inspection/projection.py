"""2-D layouts of activation vectors (scikit-learn PCA and t-SNE) and how well a layout separates
labelled classes (a k-nearest-neighbour vote in the layout)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import NearestNeighbors

from glassbox.core.errors import InvalidArgument

KNN_NEIGHBOURS = 5
MIN_PERPLEXITY, MAX_PERPLEXITY = 1.0, 100.0
MIN_ITERATIONS, MAX_ITERATIONS = 250, 5000


class Projection(StrEnum):
    PCA = "pca"
    TSNE = "tsne"


@dataclass(frozen=True)
class Layout:
    projection: Projection
    coordinates: np.ndarray  # float32 [N, 2]
    explained_variance: float  # PCA: fraction of variance the two components explain; NaN otherwise


def default_perplexity(points: int) -> float:
    """min(30, (N - 1) / 3), at least 1: scikit-learn's default, kept valid for small sets."""
    return max(MIN_PERPLEXITY, min(30.0, (points - 1) / 3))


def check_tsne(points: int, perplexity: float, iterations: int) -> None:
    if not (MIN_PERPLEXITY <= perplexity <= MAX_PERPLEXITY and perplexity < points):
        raise InvalidArgument(
            f"must be in [{MIN_PERPLEXITY:g}, {MAX_PERPLEXITY:g}] and below the {points} images, "
            f"got {perplexity:g}",
            field="perplexity",
        )
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise InvalidArgument(
            f"must be in {MIN_ITERATIONS}..{MAX_ITERATIONS}, got {iterations}", field="iterations"
        )


def _two_columns(coordinates: np.ndarray) -> np.ndarray:
    """Pad to two columns when the data has a single dimension (PCA then finds one component)."""
    if coordinates.shape[1] == 2:
        return coordinates
    return np.concatenate([coordinates, np.zeros((coordinates.shape[0], 1))], axis=1)


def project(
    vectors: np.ndarray, projection: Projection, *, seed: int, perplexity: float, iterations: int
) -> Layout:
    """A 2-D layout of vectors [N, D]; deterministic given `seed`."""
    data = vectors.astype(np.float64)
    if projection is Projection.PCA:
        components = min(2, data.shape[1], data.shape[0])
        pca = PCA(n_components=components, svd_solver="full")
        coordinates = _two_columns(pca.fit_transform(data))
        total = float(pca.explained_variance_ratio_.sum()) if data.var(0).sum() > 0 else math.nan
        return Layout(projection, coordinates.astype(np.float32), total)
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        max_iter=iterations,
        init="pca",
        learning_rate="auto",
        random_state=seed % 2**32,
    )
    return Layout(projection, tsne.fit_transform(data).astype(np.float32), math.nan)


def knn_label_agreement(coordinates: np.ndarray, labels: np.ndarray, k: int = KNN_NEIGHBOURS) -> float:
    """Fraction of points whose k nearest other points (leave-one-out) vote for their own label:
    plurality vote, ties broken by the nearest neighbour among the tied labels."""
    points = coordinates.shape[0]
    k = min(k, points - 1)
    if k < 1:
        return math.nan
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(coordinates).kneighbors(coordinates)
    agree = 0
    for i in range(points):
        others = [j for j in neighbours[i] if j != i][:k]
        votes = labels[others]
        counts = np.bincount(votes)
        best = np.flatnonzero(counts == counts.max())
        winner = next(int(v) for v in votes if v in best)
        agree += int(winner == labels[i])
    return agree / points
