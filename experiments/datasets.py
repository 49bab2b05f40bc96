"""Data sets for sweeps, with their ground truth where it is known.

Every data set is loaded by name with keyword parameters and a seed:
``load_dataset(name, seed=..., **params) -> Dataset``. The registry holds

* ``synthetic``: a mixture generator with controlled c-separation, weight
  imbalance, covariance type and condition number;
* ``s1`` ... ``s5``: the five seed scenarios (``experiments.scenarios``);
* ``iris`` and ``wine``: real data shipped with scikit-learn (labels, no truth);
* ``faithful``: Old Faithful, shipped with gmmlab (no labels, no truth);
* ``file``: a user's CSV or Parquet file, named ``file:PATH`` in configs
  (read by :mod:`experiments.files`).

c-separation (Dasgupta, 1999): components i and j are c-separated when
``|mu_i - mu_j| >= c * sqrt(D * max(lambda_max(Sigma_i), lambda_max(Sigma_j)))``.
The generator scales the means so that the closest pair is exactly
c-separated: c = 2 is clearly separated, c = 0.5 strongly overlapping.
"""

from __future__ import annotations

import hashlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd

from experiments import scenarios
from experiments.files import SEPARATORS, TEXT_SUFFIXES, read_table, sniff_table
from mixtures import MixtureParams
from mixtures.data import DATA_FOLDER as _MIXTURES_DATA
from mixtures.data import load_faithful

__all__ = [
    "DATASETS",
    "SAME_DRAW_PARAMETERS",
    "SCALINGS",
    "SEPARATORS",
    "TEXT_SUFFIXES",
    "Dataset",
    "dataset_fingerprint",
    "dataset_name",
    "dataset_parameters",
    "load_dataset",
    "read_table",
    "sniff_table",
]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Data, and what is known about where it came from.

    Attributes
    ----------
    name : str
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,) or None
        True component (or class) of every sample, where known.
    truth : MixtureParams or None
        The generating mixture, where known.
    n_components : int or None
        The natural K (truth's, the scenario's, the number of classes).
    notes : dict
    complete : ndarray of shape (n_samples, n_features) or None
        Where values were removed on purpose (``missing_synthetic``), the
        data before the removal, so that imputations of the holes can be
        scored; None otherwise. Never recorded in a table.
    """

    name: str
    X: np.ndarray
    labels: np.ndarray | None = None
    truth: MixtureParams | None = None
    n_components: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    complete: np.ndarray | None = None


# ---------------------------------------------------------------------------
# Synthetic mixtures


def _random_rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def synthetic(
    *,
    seed: int,
    n: int = 1000,
    dim: int = 2,
    n_components: int = 3,
    separation: float = 2.0,
    weight_imbalance: float = 1.0,
    covariance_type: str = "full",
    condition_number: float = 1.0,
) -> Dataset:
    """A random mixture with exactly the requested c-separation, and a sample.

    The truth comes from its own random stream, so it depends on ``seed`` and
    the mixture's settings but not on ``n``; samples are nested (the first 250
    rows of the ``n = 1000`` sample are the ``n = 250`` sample), so a series
    over ``n`` measures one truth with more and more data.

    ``weight_imbalance`` is the ratio of the largest to the smallest weight
    (weights geometric in between); ``condition_number`` the ratio of the
    largest to the smallest covariance eigenvalue ('spherical' ignores it;
    'diag' keeps axes; 'full' and 'tied' rotate at random; 'tied' shares one).
    """
    if n < n_components or n_components < 1 or dim < 1:
        raise ValueError("synthetic needs n >= n_components >= 1 and dim >= 1.")
    if separation <= 0 or weight_imbalance < 1 or condition_number < 1:
        raise ValueError(
            "synthetic needs separation > 0, weight_imbalance >= 1 and "
            "condition_number >= 1."
        )
    truth_rng, sample_rng = np.random.default_rng(seed).spawn(2)
    rng = truth_rng
    eigen = np.geomspace(1.0, 1.0 / condition_number, dim)
    matrices: list[np.ndarray] = []
    shared = None
    for _ in range(n_components):
        if covariance_type == "spherical":
            cov = np.eye(dim)
        elif covariance_type == "diag":
            cov = np.diag(rng.permutation(eigen))
        else:
            rotation = _random_rotation(rng, dim)
            cov = (rotation * eigen) @ rotation.T
        if covariance_type == "tied":
            shared = cov if shared is None else shared
            cov = shared
        matrices.append(cov)
    covariances = np.array(matrices)
    means = rng.standard_normal((n_components, dim))
    if n_components > 1:
        largest = np.linalg.eigvalsh(covariances)[:, -1]
        ratios = [
            np.linalg.norm(means[i] - means[j])
            / np.sqrt(dim * max(largest[i], largest[j]))
            for i in range(n_components)
            for j in range(i)
        ]
        means *= separation / min(ratios)
    weights = weight_imbalance ** np.linspace(0.0, -1.0, n_components)
    truth = MixtureParams(weights / weights.sum(), means, covariances)
    X, labels = truth.sample(n, random_state=sample_rng)
    return Dataset(
        "synthetic", X, labels, truth, n_components, {"separation": separation}
    )


# ---------------------------------------------------------------------------
# The five scenarios


def s1(*, seed: int) -> Dataset:
    """S1: the 50-value series with 13 identical values (no randomness)."""
    return Dataset(
        "s1",
        scenarios.S1_SERIES[:, np.newaxis].copy(),
        None,
        None,
        scenarios.S1_K,
        {"reported_means": scenarios.S1_REPORTED_MEANS},
    )


def s2(*, seed: int) -> Dataset:
    """S2: 5,000 points from the homework's learned 4-component mixture."""
    truth = MixtureParams(
        np.array(scenarios.S2_WEIGHTS) / sum(scenarios.S2_WEIGHTS),
        scenarios.S2_MEANS,
        scenarios.S2_COVARIANCES,
    )
    X, labels = truth.sample(scenarios.S2_N, random_state=seed)
    return Dataset(
        "s2", X, labels, truth, 4, {"reported_logliks": scenarios.S2_REPORTED_LOGLIKS}
    )


def s3(*, seed: int) -> Dataset:
    """S3: 2,000 + 5,000 + 10,000 points from three 1-D Gaussians."""
    x, labels = scenarios.s3_sample(random_state=seed)
    counts = np.array([c for c, _, _ in scenarios.S3_COMPONENTS], dtype=float)
    truth = MixtureParams(
        counts / counts.sum(),
        [[m] for _, m, _ in scenarios.S3_COMPONENTS],
        [[[sd**2]] for _, _, sd in scenarios.S3_COMPONENTS],
    )
    return Dataset("s3", x[:, np.newaxis], labels, truth, 3)


def s4(*, seed: int) -> Dataset:
    """S4: 600 + 400 2-D points from the lecture's two components."""
    rng = np.random.default_rng(seed)
    parts = [
        rng.multivariate_normal(mean, cov, count)
        for count, mean, cov in zip(
            scenarios.S4_COUNTS,
            scenarios.S4_MEANS,
            scenarios.S4_COVARIANCES,
            strict=True,
        )
    ]
    counts = np.array(scenarios.S4_COUNTS, dtype=float)
    truth = MixtureParams(
        counts / counts.sum(), scenarios.S4_MEANS, scenarios.S4_COVARIANCES
    )
    labels = np.repeat([0, 1], scenarios.S4_COUNTS)
    return Dataset("s4", np.vstack(parts), labels, truth, 2)


#: How values go missing in :func:`missing_synthetic`.
MECHANISMS = ("mcar", "mar", "mnar")


def missing_synthetic(
    *, seed: int, n: int = 1000, rate: float = 0.3, mechanism: str = "mar"
) -> Dataset:
    """A known 4-D, 3-component mixture with values removed (issue 26's scenario).

    The sample is :func:`synthetic`'s (``dim=4``, c-separation 2, condition
    number 3), so the truth is known; then a share ``rate`` of all values is
    removed from features 2..4 (feature 1 is always observed):

    * ``"mcar"``, completely at random: every cell with one probability;
    * ``"mar"``, at random: a cell's chance rises with the row's (observed)
      first feature, ``sigmoid(a + 2 z_1)``;
    * ``"mnar"``, not at random: with the cell's own value, ``sigmoid(a + 2 z)``;

    ``a`` is set so that the expected share removed is ``rate``; ``z`` is a
    standardised value. The holes come from their own random stream, so every
    mechanism and rate removes values from the same sample. EM over observed
    values is unbiased under MCAR and MAR, not under MNAR. The sample before
    the removal is the data set's ``complete``, for scoring imputations.
    """
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {MECHANISMS}; got {mechanism!r}.")
    dim = 4
    if not 0 <= rate <= 0.9 * (dim - 1) / dim:
        raise ValueError(f"rate must be in [0, {0.9 * (dim - 1) / dim:g}]; got {rate}.")
    base = synthetic(
        seed=seed, n=n, dim=dim, n_components=3, separation=2.0, condition_number=3.0
    )
    X = base.X.copy()
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    driver = {"mcar": np.zeros_like(z), "mar": np.repeat(z[:, :1], dim, axis=1)}.get(
        mechanism, z
    )[:, 1:]
    share = rate * dim / (dim - 1)  # of the cells of features 2..4
    slope = 0.0 if mechanism == "mcar" else 2.0
    low, high = -30.0, 30.0
    for _ in range(100):  # the intercept giving the expected share
        middle = 0.5 * (low + high)
        mean = float(np.mean(1 / (1 + np.exp(-(middle + slope * driver)))))
        low, high = (middle, high) if mean < share else (low, middle)
    chance = 1 / (1 + np.exp(-(0.5 * (low + high) + slope * driver)))
    holes_rng = np.random.default_rng([seed, 26])
    X[:, 1:][holes_rng.random(chance.shape) < chance] = np.nan
    notes = dict(base.notes, mechanism=mechanism, rate=rate)
    return Dataset(
        "missing_synthetic", X, base.labels, base.truth, 3, notes, complete=base.X
    )


def s5(*, seed: int, scaled: bool = True) -> Dataset:
    """S5: the blog's 30 + 70 points, min-max scaled to [0, 1] by default.

    The truth is mapped through the same affine scaling, so it stays exact.
    """
    rng = np.random.default_rng(seed)
    parts = [
        rng.multivariate_normal(mean, np.diag(diagonal), count)
        for count, mean, diagonal in scenarios.S5_COMPONENTS
    ]
    X = np.vstack(parts)
    means = np.array([mean for _, mean, _ in scenarios.S5_COMPONENTS], dtype=float)
    covs = np.array([np.diag(diagonal) for _, _, diagonal in scenarios.S5_COMPONENTS])
    counts = np.array([count for count, _, _ in scenarios.S5_COMPONENTS], dtype=float)
    if scaled:
        low, span = X.min(axis=0), np.ptp(X, axis=0)
        X = (X - low) / span
        means = (means - low) / span
        covs = covs / np.outer(span, span)
    truth = MixtureParams(counts / counts.sum(), means, covs)
    return Dataset(
        "s5", X, np.repeat([0, 1], [c for c, _, _ in scenarios.S5_COMPONENTS]), truth, 2
    )


# ---------------------------------------------------------------------------
# Real and user data


def _sklearn_dataset(name: str, loader: Callable) -> Dataset:
    bunch = loader()
    n_classes = int(np.unique(bunch.target).size)
    return Dataset(
        name,
        np.asarray(bunch.data, dtype=float),
        np.asarray(bunch.target),
        None,
        n_classes,
        {"features": list(bunch.feature_names)},
    )


def iris(*, seed: int) -> Dataset:
    """Fisher's Iris (scikit-learn): 150 flowers, 4 features, 3 species."""
    from sklearn.datasets import load_iris

    return _sklearn_dataset("iris", load_iris)


def wine(*, seed: int) -> Dataset:
    """Wine (scikit-learn): 178 wines, 13 features, 3 cultivars."""
    from sklearn.datasets import load_wine

    return _sklearn_dataset("wine", load_wine)


DATA_FOLDER = _MIXTURES_DATA


def faithful(*, seed: int) -> Dataset:
    """Old Faithful (272 eruptions: duration and waiting time, minutes).

    Shipped with gmmlab (``mixtures/data/``, with its source). No labels
    and no truth: a model-selection benchmark whose reference answer is R's
    mclust (three components, model EEE, by BIC).
    """
    frame = load_faithful(as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    return Dataset(
        "faithful",
        frame.to_numpy(dtype=float),
        None,
        None,
        None,
        {"columns": list(frame.columns)},
    )


def _feature_column(frame: pd.DataFrame, column: str, path: Path, header: int):
    """A column as float, or a ValueError naming the first non-numeric cell."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"data file {str(path)!r}: column {column!r} has a non-numeric value "
            f"{frame[column].iloc[row]!r} on line {row + 1 + header} (data row "
            f"{row + 1}); fix it, or leave the column out with --columns."
        )
    return values.astype(float)


def file(
    *,
    seed: int,
    path: str,
    label_column: str | None = None,
    columns: list[str] | None = None,
    sep: str | None = None,
    header: bool | None = None,
    scale: str = "none",
    missing: str = "error",
) -> Dataset:
    """A user's data file (see :func:`experiments.files.read_table`).

    ``columns`` chooses the features; by default every column but
    ``label_column`` that holds numbers (a column of text is left out, and
    the data set's notes say so). ``label_column`` (optional) holds known
    classes; it is never a feature. A non-numeric cell in a feature column,
    a missing value or a value whose square overflows is an error naming it.

    ``missing="em"`` keeps missing values (empty cells, ``NA``, ``NaN``) as
    NaN, for EM over each row's observed values; rows with every feature
    missing carry no information and are left out (their data-row indices,
    from 0, are the notes' ``dropped_rows``; ``n_missing`` counts the
    missing cells kept).

    ``scale`` maps every feature x to (x - center) / spread before fitting:
    ``"standard"`` (mean, standard deviation), ``"minmax"`` (minimum, range)
    or ``"none"``. The notes keep ``center`` and ``spread`` (lists of shape
    (n_features,)) so results can be mapped back to the file's units.
    """
    if scale not in SCALINGS:
        raise ValueError(
            f"scale must be one of {', '.join(map(repr, SCALINGS))}; got {scale!r}."
        )
    path_ = Path(path)
    frame = read_table(path_, sep=sep, header=header)
    has_header = (
        header
        if header is not None
        else path_.suffix.lower() in TEXT_SUFFIXES and sniff_table(path_)[1]
    )
    chosen, left_out = _choose_features(frame, path, columns, label_column)
    labels = None
    if label_column is not None:
        labels = pd.factorize(frame[label_column])[0]
    if missing not in ("error", "em"):
        raise ValueError(f"missing must be 'error' or 'em'; got {missing!r}.")
    features, X = _feature_matrix(
        frame, chosen, path, int(has_header), allow_missing=missing == "em"
    )
    notes: dict[str, Any] = {"path": str(path), "columns": chosen}
    if missing == "em":
        empty = np.isnan(X).all(axis=1)
        X = X[~empty]
        if labels is not None:
            labels = labels[~empty]
        notes.update(
            missing="em",
            n_missing=int(np.isnan(X).sum()),
            n_incomplete_rows=int(np.isnan(X).any(axis=1).sum()),
            dropped_rows=np.flatnonzero(empty).tolist(),
        )
    if scale != "none":
        center, spread = feature_scaling(X, scale)
        constant = [c for c, v in zip(chosen, spread, strict=True) if not v > 0]
        if constant:
            raise ValueError(
                f"data file {str(path)!r}: columns {constant} are constant and "
                f"cannot be scaled ({scale}); leave them out with --columns."
            )
        X = (X - center) / spread
        notes.update(scale=scale, center=center.tolist(), spread=spread.tolist())
    if left_out:
        notes["left_out"] = left_out
    if frame.attrs.get("decimal") == ",":
        notes["decimal"] = ","
    notes["label_like"] = [
        name
        for name in chosen
        if np.all(np.mod(features[name], 1) == 0)
        and 1 < features[name].nunique() <= 10
        and X.shape[0] >= 5 * features[name].nunique()
    ]
    n_classes = None if labels is None else int(np.unique(labels).size)
    return Dataset(path_.stem, X, labels, None, n_classes, notes)


def _choose_features(
    frame: pd.DataFrame,
    path: str,
    columns: list[str] | None,
    label_column: str | None,
) -> tuple[list[str], list[str]]:
    """The feature columns, and the text columns left out (see :func:`file`)."""
    names = [str(c) for c in frame.columns]
    for wanted in [*(columns or []), *([label_column] if label_column else [])]:
        if wanted not in names:
            raise ValueError(
                f"column {wanted!r} not in {str(path)!r}; columns: {', '.join(names)}."
            )
    left_out: list[str] = []
    if columns:
        chosen = list(columns)
        if label_column in chosen:
            raise ValueError(
                f"column {label_column!r} cannot be both label and feature."
            )
        return chosen, left_out
    chosen = []
    for name in names:
        if name == label_column:
            continue
        numeric = pd.to_numeric(frame[name], errors="coerce")
        # A column with no number at all is text (a name, a tag): left
        # out, and said so; one with some numbers is a feature, checked.
        if numeric.notna().any():
            chosen.append(name)
        else:
            left_out.append(name)
    return chosen, left_out


def _feature_matrix(
    frame: pd.DataFrame,
    chosen: list[str],
    path: str,
    header: int,
    allow_missing: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The features as floats, and as an array; ValueError for a bad value.

    A missing value is an error unless ``allow_missing`` (then it is NaN).
    """
    if not chosen:
        raise ValueError(f"data file {str(path)!r} has no numeric columns.")
    features = pd.DataFrame(
        {name: _feature_column(frame, name, Path(path), header) for name in chosen}
    )
    missing = features.columns[features.isna().any()].tolist()
    if missing and not allow_missing:
        raise ValueError(
            f"data file {str(path)!r} has missing values in columns "
            f"{', '.join(missing)}; drop or fill them, or fit over each row's "
            "observed values with --missing em."
        )
    X = features.to_numpy(dtype=float)
    if np.isinf(X).any():
        raise ValueError(f"data file {str(path)!r} contains infinite values.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
        spread = np.nanmax(np.abs(X - np.nanmean(X, axis=0)), axis=0)
    with np.errstate(over="ignore"):
        overflowing = [
            c
            for c, v in zip(chosen, spread, strict=True)
            if np.isfinite(v) and not np.isfinite(v * v * X.shape[0])
        ]
    if overflowing:
        raise ValueError(
            f"data file {str(path)!r}: columns {overflowing} hold values so large "
            "that their squares overflow (about 1e154 or more); rescale them "
            "(divide by a power of ten)."
        )
    return features, X


#: Per-feature scalings of a data file (see :func:`file`).
SCALINGS = ("none", "standard", "minmax")


def feature_scaling(X: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """``(center, spread)``, each of shape (n_features,), of a scaling of X.

    ``"standard"``: mean and (population) standard deviation; ``"minmax"``:
    minimum and range; ``"none"``: zeros and ones.
    """
    if np.isnan(X).any():  # missing values: the statistics of the observed
        if scale == "standard":
            return np.nanmean(X, axis=0), np.nanstd(X, axis=0)
        if scale == "minmax":
            low = np.nanmin(X, axis=0)
            return low, np.nanmax(X, axis=0) - low
    if scale == "standard":
        return X.mean(axis=0), X.std(axis=0)
    if scale == "minmax":
        return X.min(axis=0), np.ptp(X, axis=0)
    if scale == "none":
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    raise ValueError(
        f"scale must be one of {', '.join(map(repr, SCALINGS))}; got {scale!r}."
    )


DATASETS: dict[str, Callable[..., Dataset]] = {
    "synthetic": synthetic,
    "missing_synthetic": missing_synthetic,
    "s1": s1,
    "s2": s2,
    "s3": s3,
    "s4": s4,
    "s5": s5,
    "iris": iris,
    "wine": wine,
    "faithful": faithful,
    "file": file,
}


#: Parameters that do not change the random draw, so the data seed of a run
#: ignores them: ``synthetic``'s ``n`` only sets how many rows of one nested
#: sample are kept (one truth per data replicate across n), and ``s5``'s
#: ``scaled`` is a deterministic transform of the same sample.
SAME_DRAW_PARAMETERS: dict[str, frozenset[str]] = {
    "synthetic": frozenset({"n"}),
    # One sample; the holes differ by mechanism and rate, not the rows.
    "missing_synthetic": frozenset({"rate", "mechanism"}),
    "s5": frozenset({"scaled"}),
}


def dataset_fingerprint(name: str, params: dict[str, Any]) -> str:
    """What identifies the data beyond its name and parameters.

    For a ``file:`` data set, the SHA-256 of the file's bytes (so a changed
    file is a different data set and its runs rerun); ``""`` otherwise.
    """
    if name.startswith("file:"):
        path = Path(params.get("path", name[len("file:") :]))
    elif name == "file":
        path = Path(params["path"])
    else:
        return ""
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist.")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_parameters(name: str) -> dict[str, Any]:
    """The parameters a data set accepts, with their defaults (no seed)."""
    if name not in DATASETS:
        raise ValueError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)} "
            "(or file:PATH for a CSV/Parquet file)."
        )
    signature = inspect.signature(DATASETS[name])
    return {
        key: (None if p.default is inspect.Parameter.empty else p.default)
        for key, p in signature.parameters.items()
        if key != "seed"
    }


def load_dataset(name: str, *, seed: int = 0, **params) -> Dataset:
    """Load a registered data set; ``file:PATH`` is short for ``file`` with a path."""
    if name.startswith("file:"):
        params = {"path": name[len("file:") :], **params}
        name = "file"
    allowed = dataset_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"data set {name!r} has no parameter(s) {unknown}; "
            f"allowed: {', '.join(allowed) or 'none'}."
        )
    return DATASETS[name](seed=seed, **params)


def dataset_name(dataset: object) -> str:
    """A data set as gmmlab shows it: a ``file:PATH`` by its file's stem.

    ``file:/tmp/x/penguins.csv`` is ``penguins``: titles and figure file
    names never carry the folder the file was read from.
    """
    name = str(dataset)
    if name.startswith("file:"):
        return PurePath(name.removeprefix("file:")).stem or name
    return name
