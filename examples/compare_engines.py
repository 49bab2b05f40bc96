"""Fit one small data set with every engine, and compare.

gmmlab's EM and scikit-learn (maximum likelihood), scikit-learn's variational
BayesianGaussianMixture, and the PyMC model by ADVI and by NUTS.

Run: ``python examples/compare_engines.py`` (PyMC needs ``gmmlab[bayes]``;
about a minute, most of it compiling the PyMC model once).
"""

import numpy as np

from mixtures import MixtureParams
from mixtures.align import align, recovery_metrics
from mixtures.backends import available_backends, get_backend

truth = MixtureParams(
    weights=[0.3, 0.3, 0.4],
    means=[[0.0, 0.0], [5.0, 0.5], [0.5, 5.0]],
    covariances=[
        [[0.6, 0.15], [0.15, 0.4]],
        [[0.5, -0.1], [-0.1, 0.7]],
        [[0.4, 0.0], [0.0, 0.5]],
    ],
)
X, labels = truth.sample(600, random_state=2026)

print(
    f"{'engine':<10} {'log-lik':>9} {'iters':>6} {'seconds':>8} "
    f"{'mean RMSE':>10} {'weight L1':>10} {'ARI':>6}  notes"
)
fits = {}
for name in ("em", "sklearn", "sklearn-vb", "pymc-advi", "pymc"):
    if name not in available_backends():
        print(f"{name:<10} unavailable: pip install 'gmmlab[bayes]'")
        continue
    fit = fits[name] = get_backend(name).fit(X, 3, random_state=0)
    metrics = recovery_metrics(
        fit.params, truth, X=X, true_labels=labels, random_state=0
    )
    d = fit.diagnostics
    notes = ""
    if name == "sklearn-vb":
        notes = f"{d['effective_components']} effective components"
    if name == "pymc":  # PSIS-LOO on NUTS draws only (ADVI's are no posterior)
        notes = f"elpd_loo {d['elpd_loo']:.1f}, Pareto k max {d['pareto_k_max']:.2f}"
        notes += (
            f", r_hat max {d['r_hat_max']:.3f}, bulk ESS min {d['ess_bulk_min']:.0f}, "
            f"{d['divergences']} divergences, compile {d['compile_seconds']:.0f} s, "
            f"sampling {d['sampling_seconds']:.1f} s"
        )
    print(
        f"{name:<10} {fit.log_likelihood:>9.2f} {fit.n_iter:>6} {fit.seconds:>8.2f} "
        f"{metrics['mean_rmse']:>10.4f} {metrics['weight_l1']:>10.4f} "
        f"{metrics['ari']:>6.3f}  {notes}"
    )

if "pymc" not in fits:
    raise SystemExit(0)
pymc_fit = fits["pymc"]
em_fit = align(fits["em"].params, pymc_fit.params)
low, high = np.moveaxis(pymc_fit.diagnostics["hdi_94"]["means"], -1, 0)
print("\ncomponent means: EM vs PyMC posterior mean [94% HDI]")
for k in range(3):
    cells = [
        f"{em_fit.means[k, d]:6.3f} vs {pymc_fit.params.means[k, d]:6.3f} "
        f"[{low[k, d]:6.3f}, {high[k, d]:6.3f}]"
        for d in range(2)
    ]
    print(f"  {k}: " + "   ".join(cells))
