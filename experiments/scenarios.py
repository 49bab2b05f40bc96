"""Facts of the five seed scenarios (``shared/scenarios.md``) as constants.

Only numbers taken from the write-ups live here; the data sets built from
them are in :mod:`experiments.datasets`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["S1_K", "S1_REPORTED_MEANS", "S1_REPORTED_VARIANCES", "S1_SERIES"]

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
