"""Facts of the five seed scenarios (``shared/scenarios.md``) as constants.

Only numbers taken from the write-ups live here; the data sets built from
them are in :mod:`experiments.datasets`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "S1_K",
    "S1_REPORTED_MEANS",
    "S1_REPORTED_VARIANCES",
    "S1_SERIES",
    "S3_COMPONENTS",
    "s3_sample",
]

# S1: a 1-D time series of 50 values, K = 3, 100 iterations; the write-up's
# fixed code (k-means initialisation) reported these means and variances.
S1_SERIES = np.array(
    [25.31, 24.31, 24.12, 43.46, 41.48666667, 41.48666667, 37.54, 41.175, 44.81]
    + [44.44571429] * 13
    + [
        39.71,
        26.69,
        34.15,
        24.94,
        24.75,
        24.56,
        24.38,
        35.25,
        44.62,
        44.94,
        44.815,
        44.69,
        42.31,
        40.81,
        44.38,
        44.56,
        44.44,
        44.25,
    ]
    + [43.66666667] * 5
    + [40.75, 32.31, 36.08, 30.135, 24.19]
)
S1_K = 3
S1_REPORTED_MEANS = (44.43, 24.51, 35.41)
S1_REPORTED_VARIANCES = (0.076, 0.106, 0.521)

# S3: three 1-D Gaussians, (count, mean, standard deviation); 17,000 points,
# fitted with K = 3, 'full', tol = 1e-3; density evaluated on 5,000 points
# from -2 to 1.5.
S3_COMPONENTS = ((2000, -0.5, 0.2), (5000, -0.1, 0.07), (10000, 0.2, 0.13))
S3_GRID = (-2.0, 1.5, 5000)


def s3_sample(random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """S3's 17,000 points (in component order) and their component labels."""
    rng = np.random.default_rng(random_state)
    values = [rng.normal(mean, sd, count) for count, mean, sd in S3_COMPONENTS]
    labels = [np.full(count, k) for k, (count, _, _) in enumerate(S3_COMPONENTS)]
    return np.concatenate(values), np.concatenate(labels)
