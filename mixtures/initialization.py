"""Initial responsibilities for EM, drawn exactly as scikit-learn draws them.

Without sample weights, every method consumes the random state the way
``sklearn.mixture.GaussianMixture`` does, so the same ``random_state`` gives
the same initial parameters in both engines. With sample weights, k-means and
k-means++ use the weights, and 'random_from_data' draws points with
probability proportional to their weight.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

__all__ = ["INIT_METHODS", "initial_responsibilities"]

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hc")

#: Above this many samples 'hc' clusters a random subsample of this size
#: (drawn from the random state) and the other rows start unassigned.
HC_MAX_SAMPLES = 2000


def hc_rows(n_samples: int, random_state) -> np.ndarray:
    """The rows hierarchical clustering runs on: all of them, or a subsample.

    Above ``HC_MAX_SAMPLES`` rows, a sorted subsample of that size drawn
    from ``random_state`` (a ``RandomState`` or a ``Generator``); the rows
    left out start unassigned. The one rule for 'hc' starts and the model
    search's hierarchical starts.
    """
    if n_samples <= HC_MAX_SAMPLES:
        return np.arange(n_samples)
    return np.sort(random_state.choice(n_samples, HC_MAX_SAMPLES, replace=False))


def _one_hot_columns(n_samples: int, indices: np.ndarray) -> np.ndarray:
    resp = np.zeros((n_samples, indices.shape[0]))
    resp[indices, np.arange(indices.shape[0])] = 1.0
    return resp


_HC_MAX_LEVELS = 30


@functools.lru_cache(maxsize=4)
def _cached_tree(
    key: bytes, X_bytes: bytes, shape: tuple, dtype: str, levels: int
) -> np.ndarray:
    from mixtures.hierarchical import hierarchical_partitions

    X = np.frombuffer(X_bytes, dtype=dtype).reshape(shape)
    tree = hierarchical_partitions(X, min(levels, shape[0]))
    tree.flags.writeable = False
    return tree


def _hc_tree(X: np.ndarray, n_components: int) -> np.ndarray:
    """Partitions into 1..max(30, n_components) clusters, cached.

    A search over models and K asks for the same tree many times, and it does
    not depend on K (the key is a hash of the data).
    """
    X = np.ascontiguousarray(X)
    key = hashlib.blake2b(X.tobytes(), digest_size=16).digest()
    # Levels in powers of two, so a search over K = 31..40 builds one tree.
    levels = max(_HC_MAX_LEVELS, 1 << max(0, n_components - 1).bit_length())
    return _cached_tree(key, X.tobytes(), X.shape, X.dtype.str, levels)


def initial_responsibilities(
    X: np.ndarray,
    n_components: int,
    method: str,
    random_state: np.random.RandomState,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Responsibilities the initial parameters are estimated from.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    method : {'kmeans', 'k-means++', 'random', 'random_from_data'}
        'kmeans': one-hot labels of one k-means run; 'k-means++': one-hot at
        the k-means++ seeds; 'random': uniform random responsibilities
        normalised per sample; 'random_from_data': one-hot at randomly chosen
        samples, which become the initial means; 'hc': one-hot labels of the
        K-cluster level of model-based hierarchical clustering (Fraley 1998;
        :func:`mixtures.hierarchical.hierarchical_partitions`), deterministic
        up to ``HC_MAX_SAMPLES`` samples and unweighted.
    random_state : numpy.random.RandomState
    sample_weight : ndarray of shape (n_samples,), optional
        None means unit weights and reproduces scikit-learn's draws exactly.

    Returns
    -------
    resp : ndarray of shape (n_samples, n_components)
    """
    # Imported here: sklearn.cluster pulls in sklearn.metrics and more, which
    # importing the engine should not.
    from sklearn.cluster import KMeans, kmeans_plusplus

    n_samples = X.shape[0]
    if method == "kmeans":
        labels = (
            KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            .fit(X, sample_weight=sample_weight)
            .labels_
        )
        resp = np.zeros((n_samples, n_components))
        resp[np.arange(n_samples), labels] = 1.0
        return resp
    if method == "random":
        resp = random_state.uniform(size=(n_samples, n_components))
        return resp / resp.sum(axis=1)[:, np.newaxis]
    if method == "random_from_data":
        probabilities = (
            None if sample_weight is None else sample_weight / sample_weight.sum()
        )
        indices = random_state.choice(
            n_samples, size=n_components, replace=False, p=probabilities
        )
        return _one_hot_columns(n_samples, indices)
    if method == "k-means++":
        _, indices = kmeans_plusplus(
            X, n_components, random_state=random_state, sample_weight=sample_weight
        )
        return _one_hot_columns(n_samples, indices)
    if method == "hc":
        if n_components > HC_MAX_SAMPLES:
            raise ValueError(
                f"init_params='hc' clusters at most {HC_MAX_SAMPLES} samples, "
                f"fewer than n_components={n_components}; use another init_params."
            )
        rows = hc_rows(n_samples, random_state)
        labels = _hc_tree(X[rows], n_components)[n_components - 1]
        resp = np.zeros((n_samples, n_components))
        resp[rows, labels] = 1.0
        return resp
    allowed = ", ".join(repr(m) for m in INIT_METHODS)
    raise ValueError(f"init_params must be one of {allowed}; got {method!r}.")
