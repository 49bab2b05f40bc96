"""Statistics over recorded runs, shared by the runner's tables and the reports.

Only reads tables; never fits a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["AT_BEST_RTOL", "GROUP_COLUMNS", "convergence_summary"]

#: A seed "reaches the best optimum" when within this relative tolerance of it.
AT_BEST_RTOL = 1e-6
GROUP_COLUMNS = ["dataset", "backend", "n_components", "covariance_type", "init"]


def convergence_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Convergence across seeds, one row per sweep cell.

    A cell is (data set, its ``p_*`` parameters, backend, K, covariance type,
    initialisation). Columns: ``n_runs``, ``n_ok``, ``best_log_likelihood``
    (the best final total log-likelihood any seed found), ``share_at_best``
    (share of successful seeds within 1e-6 relative of it), the spread of the
    final log-likelihoods (``log_likelihood_std``/``_min``/``_max``) and of the
    iteration counts (``n_iter_median``/``_min``/``_max``).
    """
    if runs.empty or "log_likelihood" not in runs:
        return pd.DataFrame(columns=[*GROUP_COLUMNS, "n_runs", "n_ok"])
    params = sorted(c for c in runs.columns if c.startswith("p_"))
    keys = GROUP_COLUMNS + params
    rows = []
    for key, group in runs.groupby(keys, dropna=False, sort=True):
        ok = group[group["status"] == "ok"]
        row = dict(zip(keys, key, strict=True))
        row.update(n_runs=len(group), n_ok=len(ok))
        if len(ok):
            values = ok["log_likelihood"].to_numpy(dtype=float)
            best = values.max()
            iterations = ok["n_iter"].to_numpy(dtype=float)
            row.update(
                best_log_likelihood=best,
                share_at_best=float(
                    np.mean(np.abs(values - best) <= AT_BEST_RTOL * abs(best))
                ),
                log_likelihood_std=float(values.std(ddof=0)),
                log_likelihood_min=float(values.min()),
                log_likelihood_max=float(best),
                n_iter_median=float(np.median(iterations)),
                n_iter_min=float(iterations.min()),
                n_iter_max=float(iterations.max()),
            )
        rows.append(row)
    return pd.DataFrame(rows)
