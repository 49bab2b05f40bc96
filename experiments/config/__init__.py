"""Sweep configurations: TOML files, validated before anything runs.

A sweep is declared as data, and the cartesian product of its entries
defines the runs::

    [sweep]
    root_seed = 2026        # every random choice derives from it
    data_replicates = 1     # independent draws of every data set (default 1)
    seeds = 10              # initialisation seeds, each on the same data draw
    timeout = 300           # seconds per run (optional)
    same_optimum_nats = 0.01  # two fits are at the same optimum within this

    [stopping]              # one stopping rule for every iterative engine
    tol = 1e-8              # relative change of the total log-likelihood
    max_iter = 2000

    [[datasets]]
    name = "synthetic"              # a registered data set, or "file:PATH"
    n_components = [2, 3, 4]        # optional; default: the data set's own K
    covariance_type = ["full", "diag"]  # optional; overrides [grid]
    backends = ["em", "sklearn"]    # optional; default: every arm
    data_replicates = 5             # optional; overrides [sweep]
    params = { n = [250, 1000], separation = 2.0 }   # lists are grids

    [backends.em]                   # one table per arm, holding its options
    [backends.pymc]
    seeds = 1                       # optional: fewer seeds for this arm
    draws = 300
    [backends.sklearn-defaults]     # a named arm: scikit-learn as shipped
    engine = "sklearn"              # the registered engine (default: the name)
    stopping = "engine"             # its own tol/max_iter, never compared

    [backends.homework]             # someone's own EM code, from one start
    engine = "function"
    function = "experiments.writeups.homework:em"
    inits = ["homework"]            # only these of the grid's starts

    [grid]
    covariance_type = ["full"]
    init_params = ["kmeans", "random_from_data"]   # or a write-up's recipe
    n_components = "data"           # or [3], or "1..6"

    [[checks]]                      # gmmlab check, recorded in checks.parquet
    target = "experiments.writeups.early_return:em"

**Two kinds of replicate.** A *data replicate* is an independent draw of the
data (and, for ``synthetic``, of its true mixture); a *seed* is an
initialisation applied to that same draw. Convergence across seeds is
therefore measured on fixed data, and recovery across data replicates. The
data seed depends only on the data set, its parameters other than the sample
size or a deterministic transform
(:data:`~experiments.datasets.SAME_DRAW_PARAMETERS`) and the data
replicate, so a synthetic series over ``n`` shares one truth with nested
samples. The fit seed depends on the data, K, covariance type, initialisation
and seed, never on the engine, so every engine sees the same sample and the
EM engines the same initialisation. Seeds come from
``numpy.random.SeedSequence([root_seed, hash(...)])``: results do not depend
on the order or the machine they ran on.

**Stopping.** ``[stopping] tol`` is a relative change of the *total*
log-likelihood, ``|L_t - L_{t-1}| <= tol * max(|L_1|, n)``, where ``L_1`` is
the data's log-likelihood under one Gaussian (a fixed scale, so every engine
gets the same threshold in nats; never tighter than ``tol`` nats per
sample). It is converted to each iterative engine's own units
(:func:`engine_stopping_options`): scikit-learn's and gmmlab's ``tol`` are
absolute changes of the *mean* log-likelihood; scikit-learn's variational
``sklearn-vb`` stops on the absolute change of its lower bound, a *total*
over the data, so it gets the threshold in nats itself. An arm with ``stopping =
"engine"`` keeps the engine's own rule and is marked ``comparable = False``.

Each run's identity (data set, its parameters and, for files, their content
hash, engine and arm, options, stopping, K, covariance type, initialisation,
data replicate, seed) is hashed into a ``run_id``. Errors name the file, the
key and the allowed values.

The package, one job a module (every name is importable from here):
:mod:`.schema` the dataclasses a configuration becomes, :mod:`.validation`
TOML to a validated configuration, :mod:`.stopping` the stopping rule in
each engine's units, :mod:`.planning` the configuration's runs.
"""

from __future__ import annotations

from experiments.config.planning import plan_runs
from experiments.config.schema import (
    DEFAULT_STOPPING,
    ITERATIVE_ENGINES,
    NEVER_COMPARED,
    SAME_OPTIMUM_NATS,
    TAKES_INIT_PARAMS,
    Arm,
    CheckEntry,
    ConfigError,
    DatasetEntry,
    RunSpec,
    Stopping,
    SweepConfig,
)
from experiments.config.stopping import TOTAL_TOL_ENGINES, engine_stopping_options
from experiments.config.validation import load_config, parse_components, parse_config

__all__ = [
    "DEFAULT_STOPPING",
    "ITERATIVE_ENGINES",
    "NEVER_COMPARED",
    "SAME_OPTIMUM_NATS",
    "TAKES_INIT_PARAMS",
    "TOTAL_TOL_ENGINES",
    "Arm",
    "CheckEntry",
    "ConfigError",
    "DatasetEntry",
    "RunSpec",
    "Stopping",
    "SweepConfig",
    "engine_stopping_options",
    "load_config",
    "parse_components",
    "parse_config",
    "plan_runs",
]
