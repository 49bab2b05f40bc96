"""The ``pymc`` (NUTS) and ``pymc-advi`` backends: a Bayesian Gaussian mixture.

The model
---------
The component labels are marginalised out. With ``K`` components, ``D``
features and the data's mean ``xbar`` and (unbiased) covariance ``S``::

    w                     ~ Dirichlet(1, ..., 1)
    Sigma_k               ~ InverseWishart(nu_P, Lambda_P)
    mu_k | Sigma_k        ~ Normal(mu_P, Sigma_k / kappa_P)
    x_n                   ~ sum_k w_k Normal(mu_k, Sigma_k)

with the hyper-parameters of Fraley & Raftery (2007), "Bayesian
regularization for normal mixture estimation and model-based clustering",
*Journal of Classification* 24:155-181 (also R mclust's ``defaultPrior``):
``mu_P = xbar``, ``kappa_P = 0.01``, ``nu_P = D + 2`` and
``Lambda_P = S / K^(2/D)``. For ``tied`` the inverse Wishart is put once on
the shared covariance; for ``diag`` and ``spherical`` it is the same density
evaluated on the model's diagonal or scalar covariances. This is exactly the
prior of gmmlab's MAP-EM (``prior="default"``, :mod:`mixtures.prior`), so
MAP-EM's estimate is this posterior's mode (in the ``Sigma`` parametrisation)
and is reported beside the posterior mean.

Why this prior
~~~~~~~~~~~~~~
*It keeps variances away from zero.* The likelihood of a mixture is unbounded:
a component centred on a data point whose variance tends to zero sends it to
infinity. A prior whose density is positive at ``Sigma = 0`` (the half-normal
scale priors of the previous version) leaves the posterior improper near
that point, and on data with ties (a series with 13 tied values) NUTS found a
component of variance 6e-10. The inverse-Wishart density contains
``exp(-tr(Lambda_P Sigma^-1) / 2)``, which vanishes faster than any power of
``Sigma`` as ``Sigma -> 0``: the posterior is proper and has no mass there.
*It is scaled to the data,* through ``S`` and ``xbar``, so it is the same
model whatever the units. *It is weak on the means, not always on the
covariances:* ``kappa_P = 0.01`` makes the prior on a mean worth a hundredth
of a data point, and ``nu_P = D + 2`` is the smallest integer degree of
freedom with a finite prior mean of ``Sigma``; but in the MAP covariance it
acts as ``2D + 4`` extra points carrying the scatter ``Lambda_P``, about one
cluster's spread. Against a component of a few points, or one much tighter
than ``Lambda_P``, that dominates: the MAP and the posterior's covariance
then sit well above the maximum-likelihood one. Every fit records the
prior's weight per component (:func:`prior_strength`: its points against the
component's ``n_k``, and its share of the covariance's scatter). The
hierarchical prior of Richardson & Green (1997), with a common
Gamma-distributed scale, was considered and rejected: it is zero-avoiding only
through its hyper-prior, and with many tied values its marginal is improper
near the scale's zero.

Sampling
--------
The sampled coordinates are unconstrained: ``K - 1`` weight logits
(``w = softmax(logits, 0)``), the means, and each precision's Cholesky factor
``U_k`` (``Sigma_k^-1 = U_k U_k^T``, lower triangular) with log diagonal.
The log density is written directly in those coordinates (likelihood by
``logsumexp`` over components, the priors above, and the Jacobians of the
changes of variables), so the likelihood costs one pass over the data per
gradient. All the data are conditioned on by default; ``max_samples`` (an
explicit option) conditions on a random subsample instead, and the fit then
reports ``n_conditioned`` beside its numbers.

Chain starts, and what r-hat certifies
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
MAP-EM is restarted 20 times (k-means++ seeds) and its results grouped into
distinct modes (:func:`_map_em_modes`). The chains are dealt round the modes
within 10 nats of log posterior density of the best, best first, so chains
start in different modes whenever the restarts found several; and every
chain starts scattered about its mode by about one component standard
deviation on each mean (:func:`_chain_starts`, :func:`_dispersed`), which is
``sqrt(n_k)`` posterior standard deviations: overdispersed relative to the
posterior, as r-hat needs. (The previous starts moved means by a tenth of a
standard deviation: for a component of 8 points, a third of the posterior's
own spread.) ``init="random"`` starts every chain at a random point instead.
The diagnostics say where each chain started (``chain_starts``: "mode i" or
"random"), how many distinct modes the restarts found (``map_em_modes``) and
how many the chains started in (``chain_start_modes``, beside
``chain_random_starts``).

There is no ordering constraint: in more than one dimension no coordinate
ordering identifies components that overlap in that coordinate. Label
switching is resolved from the posterior itself, by the Kullback-Leibler
relabelling of Stephens (2000) (:mod:`mixtures.relabel`), never by matching
draws to an EM fit; r-hat and ESS are computed on the relabelled draws.
Chains that settle in different modes (not permutations of one another) stay
different after relabelling, so r-hat reports them; the fit is then
classified unconverged with that reason
(:func:`mixtures.diagnostics.sampler_findings`). An r-hat at most
:data:`~mixtures.diagnostics.MAX_R_HAT` certifies that chains from those
starts came to sample one distribution; it cannot
certify that no other mode holds mass that no start led to. When every
restart reached one mode (``chain_start_modes`` 1), it certifies mixing
within that mode, from starts far wider than the posterior.

The default sampler is nutpie (a Rust NUTS, with the log density compiled by
PyTensor's numba backend), called on a compiled model cached per
``(D, K, covariance type)`` in the process; PyTensor caches the compiled
kernels on disk, so a new process pays a fraction of the first compile.
``nuts_sampler="pymc"`` uses PyMC's own NUTS (C backend, also disk-cached).

Reproducibility
~~~~~~~~~~~~~~~
A fit is a function of its seed: the chain starts are computed from it
before sampling, and nutpie's chains are seeded from it. nutpie asks for
each chain's start from its worker threads in whatever order they run, so
each start is tied to the seed nutpie gives that chain, never to the order
of the calls (:func:`_nutpie_chain_seeds`). On one machine and one
installation, two fits with the same seed are identical to the last bit,
in one process or in two, whatever the number of cores. On another CPU they
are not: numba compiles gmmlab's EM kernel (which finds the chain starts)
and PyTensor's log density for the host's instruction set, with fast-math,
so vector widths and fused multiply-adds change the last bits of the
arithmetic, and a Hamiltonian trajectory amplifies a last-bit difference
until the chains are different random walks. The draws are then another
sample from the same posterior: the estimates agree within their Monte
Carlo error, and sample-based summaries (bulk ESS, Pareto-k counts) vary as
they do between seeds. On S1 with the default sweep's seed, compiling for
three CPU targets (``NUMBA_CPU_NAME`` host, haswell, generic) on one machine
gave log-likelihoods at the posterior mean of -114.602, -114.734 and
-114.523 and minimum bulk ESS of 2285, 2445 and 2015 (with the previous,
tighter starts: -114.888, -114.864 and -114.577; 972, 1296 and 2905).

Missing values
--------------
With ``missing="marginal"`` (the default ``"error"`` refuses NaN), each
row's likelihood is its marginal density over its observed coordinates,
the parameters' posterior is sampled as above, and the missing cells are
imputed afterwards from their conditional distribution under each
posterior draw: posterior means and 90% intervals in the fit's
``imputation`` (:mod:`.incomplete`, which also says why this, not PyMC's
automatic imputation of masked observations).

Criticism
---------
From up to ``pointwise_draws`` thinned draws: the pointwise log-likelihood
(PSIS-LOO and WAIC with ArviZ, Pareto-k; NUTS only, since ADVI's draws are
not posterior draws), each point's responsibilities with their posterior
standard deviation, the posterior predictive density of each feature (mean
and 94% band), the data's histogram of each feature against a
*simultaneous* 94% band of replicated histograms with the number of bars
expected outside it under the model (:func:`_predictive_density`), and a
posterior predictive check on tied values (the number of tied values in
replicated data sets against the data's). Wherever the MAP or the posterior
is set beside the maximum-likelihood estimate, :func:`prior_strength` says
how much of each MAP covariance the prior supplies.
"""

# The modules, one job each: model (the model and its coordinates), starts
# (where the chains start), sampling (the two samplers), posterior (draws to
# a fit), criticism (the posterior checks), incomplete (missing values) and
# backend (the two backends).
# Private names are re-exported for the callers that read them here (the
# tests); ``_map_em_modes`` and ``_summaries`` are looked up on this package
# when called, so replacing them here changes what the backends do.
from mixtures.backends.pymc.backend import PyMCAdviBackend, PyMCBackend
from mixtures.backends.pymc.backend import _elbo_stationary as _elbo_stationary
from mixtures.backends.pymc.criticism import _resolution as _resolution
from mixtures.backends.pymc.criticism import _ties as _ties
from mixtures.backends.pymc.criticism import (
    posterior_criticism,
    prior_strength,
    simultaneous_band,
)
from mixtures.backends.pymc.model import FREE_VARIABLES as FREE_VARIABLES
from mixtures.backends.pymc.model import INSTALL_HINT as INSTALL_HINT
from mixtures.backends.pymc.model import _subsample as _subsample
from mixtures.backends.pymc.model import _subsample_rows as _subsample_rows
from mixtures.backends.pymc.model import (
    build_model,
    draws_to_params,
    params_to_free,
)
from mixtures.backends.pymc.posterior import _summaries as _summaries
from mixtures.backends.pymc.sampling import _compiled_nutpie as _compiled_nutpie
from mixtures.backends.pymc.starts import MODE_GAP as MODE_GAP
from mixtures.backends.pymc.starts import MODE_RESTARTS as MODE_RESTARTS
from mixtures.backends.pymc.starts import _chain_starts as _chain_starts
from mixtures.backends.pymc.starts import _map_em_modes as _map_em_modes
from mixtures.backends.pymc.starts import _Mode as _Mode
from mixtures.backends.pymc.starts import _same_mode as _same_mode
from mixtures.em import e_step as e_step

__all__ = [
    "PyMCAdviBackend",
    "PyMCBackend",
    "build_model",
    "draws_to_params",
    "params_to_free",
    "posterior_criticism",
    "prior_strength",
    "simultaneous_band",
]
