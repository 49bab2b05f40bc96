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
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.datasets import (
    SAME_DRAW_PARAMETERS,
    dataset_fingerprint,
    dataset_parameters,
    load_dataset,
)
from experiments.starts import START_NAMES
from mixtures.backends import backend_statuses, get_backend
from mixtures.covariance import COVARIANCE_MODELS

__all__ = [
    "DEFAULT_STOPPING",
    "SAME_OPTIMUM_NATS",
    "ConfigError",
    "RunSpec",
    "Stopping",
    "SweepConfig",
    "engine_stopping_options",
    "load_config",
    "parse_components",
    "plan_runs",
]

#: Engines whose initialisation strategy the ``init_params`` grid varies.
TAKES_INIT_PARAMS = {"em", "sklearn", "function"}
#: Engines shown beside the others, never compared: someone's own EM code,
#: with its own stopping rule (a write-up's implementation, bugs included).
NEVER_COMPARED = {"function"}
#: Engines whose ``tol`` is an absolute change of the mean log-likelihood
#: (or, for those in :data:`TOTAL_TOL_ENGINES`, of a total over the data)
#: and which take ``max_iter``: the sweep's stopping rule is passed to them.
ITERATIVE_ENGINES = {"em", "sklearn", "sklearn-vb"}
#: Iterative engines whose ``tol`` is an absolute change of a *total* over the
#: data: scikit-learn's ``BayesianGaussianMixture`` compares successive values
#: of its variational lower bound, which is summed over the samples.
TOTAL_TOL_ENGINES = {"sklearn-vb"}
#: Two fits on the same data are at the same optimum when their total
#: log-likelihoods differ by at most this many nats (``[sweep]`` may change it).
SAME_OPTIMUM_NATS = 0.01
#: What a backend table may hold besides its engine's options.
_ARM_KEYS = {"seeds", "engine", "stopping", "inits"}


class ConfigError(ValueError):
    """A sweep configuration that cannot run; the message says where and why."""


@dataclass(frozen=True)
class Stopping:
    """The sweep's stopping rule for iterative engines (see the module docstring)."""

    tol: float = 1e-8
    max_iter: int = 2000


DEFAULT_STOPPING = Stopping()


@dataclass(frozen=True)
class CheckEntry:
    """One ``[[checks]]`` table: an EM implementation for ``gmmlab check``."""

    target: str
    convention: str = "auto"


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    params: dict[str, list[Any]]
    n_components: list[int] | None
    backends: tuple[str, ...] | None
    data_replicates: int | None
    covariance_types: tuple[str, ...] | None = None
    init_params: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Arm:
    """One ``[backends.NAME]`` table: an engine with its options."""

    name: str
    engine: str
    options: dict[str, Any]
    seeds: int | None
    own_stopping: bool
    inits: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep configuration."""

    source: str
    raw: dict[str, Any] = field(repr=False)
    root_seed: int
    seeds: int
    data_replicates: int
    timeout: float | None
    same_optimum_nats: float
    stopping: Stopping
    datasets: tuple[DatasetEntry, ...]
    arms: dict[str, Arm]
    covariance_types: tuple[str, ...]
    init_params: tuple[str, ...]
    n_components: Any  # "data" or a list of ints
    checks: tuple[CheckEntry, ...] = ()

    @property
    def config_hash(self) -> str:
        """SHA-256 of the configuration's canonical JSON form."""
        canonical = json.dumps(self.raw, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def backends(self) -> dict[str, dict[str, Any]]:
        """Each arm's engine options, by arm name."""
        return {name: dict(arm.options) for name, arm in self.arms.items()}


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: everything a worker needs, nothing it must look up.

    ``backend`` is the arm's name and ``engine`` the registered engine it
    runs (the same unless the configuration names an arm). ``stopping`` is
    the sweep's rule, or None for an arm that keeps its engine's own.
    """

    run_id: str
    dataset: str
    dataset_params: dict[str, Any]
    data_hash: str
    backend: str
    engine: str
    backend_options: dict[str, Any]
    n_components: int
    covariance_type: str
    init: str
    data_replicate: int
    seed: int
    data_seed: int
    fit_seed: int
    timeout: float | None
    stopping: Stopping | None

    @property
    def comparable(self) -> bool:
        """False for an arm run with its own stopping rule, or own EM code."""
        if self.engine in NEVER_COMPARED:
            return False
        return self.stopping is not None or self.engine not in ITERATIVE_ENGINES


# ---------------------------------------------------------------------------
# Validation helpers


def _fail(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: [{key}] {problem}")


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _check_keys(source, where, table, allowed):
    if not isinstance(table, dict):
        raise _fail(source, where, f"must be a table; got {type(table).__name__}.")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise _fail(
            source,
            where,
            f"unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}.",
        )


def _check_int(source, key, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(source, key, f"must be an integer >= {minimum}; got {value!r}.")
    return value


def parse_components(text: str) -> list[int]:
    """Numbers of components from text: ``"3"`` -> [3], ``"1..6"`` -> [1, ..., 6].

    The one parser of this syntax, for sweep files and ``gmmlab fit``.
    Raises ValueError for anything else, including ranges that start below
    1 or run backwards.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?", text)
    if not match:
        raise ValueError(f"expected K or a range like 1..6; got {text!r}.")
    low, high = int(match[1]), int(match[2] or match[1])
    if low < 1 or low > high:
        raise ValueError(
            f"a range of components must run upwards from 1 or more; got {text!r}."
        )
    return list(range(low, high + 1))


def _parse_components(source, key, value):
    if value == "data":
        return "data"
    if isinstance(value, str):
        try:
            return parse_components(value)
        except ValueError:
            raise _fail(
                source,
                key,
                f"must be 'data', a list of integers or a range "
                f"like '1..6'; got {value!r}.",
            ) from None
    values = _as_list(value)
    for item in values:
        _check_int(source, key, item, 1)
    return values


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep configuration file."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"{source}: no such configuration file.")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    return parse_config(raw, source)


def _check_positive(source, key, value):
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(source, key, f"must be a positive number; got {value!r}.")
    return float(value)


def _check_choices(source, key, values, allowed) -> tuple:
    """``values`` as a tuple, or ConfigError naming the first unknown one."""
    values = tuple(_as_list(values))
    for value in values:
        if value not in allowed:
            raise _fail(
                source, key, f"unknown {value!r}; allowed: {', '.join(allowed)}."
            )
    return values


def _parse_arms(source, raw) -> dict[str, Arm]:
    backends = raw.get("backends")
    if not backends or not isinstance(backends, dict):
        raise _fail(source, "backends", "at least one [backends.NAME] table is needed.")
    statuses = backend_statuses()
    arms = {}
    for name, table in backends.items():
        where = f"backends.{name}"
        if not isinstance(table, dict):
            raise _fail(source, where, f"must be a table; got {type(table).__name__}.")
        engine = table.get("engine", name)
        if engine not in statuses:
            key = f"{where}.engine" if "engine" in table else where
            raise _fail(
                source, key, f"unknown backend; registered: {', '.join(statuses)}."
            )
        if not statuses[engine].available:
            raise _fail(
                source, where, f"backend unavailable: {statuses[engine].detail}."
            )
        accepted = getattr(get_backend(engine), "options", None)
        if accepted is not None:
            # init_params is the grid's to vary; seeds is the sweep's.
            _check_keys(
                source, where, table, (set(accepted) - {"init_params"}) | _ARM_KEYS
            )
        seeds = table.get("seeds")
        if seeds is not None:
            _check_int(source, f"{where}.seeds", seeds, 1)
        stopping = table.get("stopping", "sweep")
        if stopping not in ("sweep", "engine"):
            raise _fail(
                source,
                f"{where}.stopping",
                f"must be 'sweep' or 'engine'; got {stopping!r}.",
            )
        options = {k: v for k, v in table.items() if k not in _ARM_KEYS}
        own = stopping == "engine"
        if engine == "function" and "function" not in options:
            raise _fail(
                source,
                where,
                "a function arm needs function = 'module:name' (an EM "
                "implementation in one of mixtures.check's conventions).",
            )
        if engine in ITERATIVE_ENGINES and not own:
            clash = sorted({"tol", "max_iter"} & set(options))
            if clash:
                raise _fail(
                    source,
                    where,
                    f"{clash} are set for every engine by [stopping]; remove "
                    'them, or add stopping = "engine" to make this a '
                    "separate arm with its engine's own rule (never compared).",
                )
        inits = table.get("inits")
        if inits is not None:
            inits = _check_choices(source, f"{where}.inits", inits, START_NAMES)
        arms[name] = Arm(name, engine, options, seeds, own, inits)
    return arms


def parse_config(raw: dict[str, Any], source: str = "<config>") -> SweepConfig:
    """Validate an already parsed configuration (see the module docstring)."""
    _check_keys(
        source,
        "top level",
        raw,
        {"sweep", "stopping", "datasets", "backends", "grid", "checks"},
    )
    checks = []
    for index, entry in enumerate(raw.get("checks", [])):
        where = f"checks[{index}]"
        _check_keys(source, where, entry, {"target", "convention"})
        if not isinstance(entry.get("target"), str) or ":" not in entry["target"]:
            raise _fail(
                source,
                f"{where}.target",
                "must be 'module:function' or 'file.py:function'.",
            )
        checks.append(CheckEntry(entry["target"], str(entry.get("convention", "auto"))))
    sweep = raw.get("sweep", {})
    _check_keys(
        source,
        "sweep",
        sweep,
        {
            "root_seed",
            "seeds",
            "data_replicates",
            "timeout",
            "same_optimum_nats",
            "name",
            "description",
        },
    )
    root_seed = _check_int(source, "sweep.root_seed", sweep.get("root_seed", 0), 0)
    seeds = _check_int(source, "sweep.seeds", sweep.get("seeds", 1), 1)
    data_replicates = _check_int(
        source, "sweep.data_replicates", sweep.get("data_replicates", 1), 1
    )
    timeout = sweep.get("timeout")
    if timeout is not None:
        timeout = _check_positive(source, "sweep.timeout", timeout)
    same_optimum = _check_positive(
        source,
        "sweep.same_optimum_nats",
        sweep.get("same_optimum_nats", SAME_OPTIMUM_NATS),
    )
    stopping_table = raw.get("stopping", {})
    _check_keys(source, "stopping", stopping_table, {"tol", "max_iter"})
    stopping = Stopping(
        tol=_check_positive(
            source, "stopping.tol", stopping_table.get("tol", DEFAULT_STOPPING.tol)
        ),
        max_iter=_check_int(
            source,
            "stopping.max_iter",
            stopping_table.get("max_iter", DEFAULT_STOPPING.max_iter),
            1,
        ),
    )
    arms = _parse_arms(source, raw)

    entries = raw.get("datasets")
    if not entries or not isinstance(entries, list):
        raise _fail(source, "datasets", "at least one [[datasets]] entry is needed.")
    datasets = []
    for index, entry in enumerate(entries):
        where = f"datasets[{index}]"
        _check_keys(
            source,
            where,
            entry,
            {
                "name",
                "params",
                "n_components",
                "backends",
                "data_replicates",
                "covariance_type",
                "init_params",
            },
        )
        name = entry.get("name")
        if not isinstance(name, str):
            raise _fail(source, f"{where}.name", "a data set name is required.")
        try:
            allowed = dataset_parameters("file" if name.startswith("file:") else name)
        except ValueError as error:
            raise _fail(source, f"{where}.name", str(error)) from None
        params = entry.get("params", {})
        _check_keys(source, f"{where}.params", params, set(allowed))
        grid = {key: _as_list(value) for key, value in params.items()}
        components = entry.get("n_components")
        if components is not None:
            components = _parse_components(source, f"{where}.n_components", components)
        only = entry.get("backends")
        if only is not None:
            only = tuple(_as_list(only))
            missing = sorted(set(only) - set(arms))
            if missing:
                raise _fail(
                    source,
                    f"{where}.backends",
                    f"{missing} have no [backends.NAME] table; defined: "
                    f"{', '.join(arms)}.",
                )
        replicates = entry.get("data_replicates")
        if replicates is not None:
            _check_int(source, f"{where}.data_replicates", replicates, 1)
        covariances = entry.get("covariance_type")
        if covariances is not None:
            covariances = _check_choices(
                source, f"{where}.covariance_type", covariances, COVARIANCE_MODELS
            )
        entry_inits = entry.get("init_params")
        if entry_inits is not None:
            entry_inits = _check_choices(
                source, f"{where}.init_params", entry_inits, START_NAMES
            )
        datasets.append(
            DatasetEntry(
                name, grid, components, only, replicates, covariances, entry_inits
            )
        )

    grid = raw.get("grid", {})
    _check_keys(
        source, "grid", grid, {"covariance_type", "init_params", "n_components"}
    )
    covariance_types = _check_choices(
        source,
        "grid.covariance_type",
        grid.get("covariance_type", ["full"]),
        COVARIANCE_MODELS,
    )
    init_params = _check_choices(
        source, "grid.init_params", grid.get("init_params", ["kmeans"]), START_NAMES
    )
    n_components = _parse_components(
        source, "grid.n_components", grid.get("n_components", "data")
    )
    return SweepConfig(
        source=source,
        raw=raw,
        root_seed=root_seed,
        seeds=seeds,
        data_replicates=data_replicates,
        timeout=timeout,
        same_optimum_nats=same_optimum,
        stopping=stopping,
        datasets=tuple(datasets),
        arms=arms,
        covariance_types=tuple(covariance_types),
        init_params=tuple(init_params),
        n_components=n_components,
        checks=tuple(checks),
    )


# ---------------------------------------------------------------------------
# Stopping, in each engine's units


def engine_stopping_options(
    engine: str, stopping: Stopping, X: np.ndarray
) -> dict[str, Any]:
    """The sweep's stopping rule as ``engine``'s own options (``{}`` if none).

    gmmlab's EM and scikit-learn stop when the *mean* log-likelihood changes
    by less than their ``tol``; the sweep's rule is a change of the *total*
    below ``stopping.tol * max(|L_1|, n)``, so their ``tol`` is
    ``stopping.tol * max(|L_1| / n, 1)``, with ``L_1`` the log-likelihood of
    ``X`` (n_samples, n_features) under one Gaussian fitted to it.

    scikit-learn's variational mixture (``sklearn-vb``, in
    :data:`TOTAL_TOL_ENGINES`) stops when its lower bound, a total over the
    data (``BayesianGaussianMixture._compute_lower_bound`` sums over the
    samples; ``GaussianMixture``'s is a mean), changes by less than its
    ``tol``: it gets the same threshold in nats, ``stopping.tol * max(|L_1|,
    n)``, applied to the change of its lower bound instead of the
    log-likelihood.
    """
    if engine not in ITERATIVE_ENGINES:
        return {}
    tol = stopping.tol * max(abs(_one_gaussian_mean_loglik(X)), 1.0)
    if engine in TOTAL_TOL_ENGINES:
        tol *= np.shape(X)[0]
    return {"tol": tol, "max_iter": stopping.max_iter}


def _one_gaussian_mean_loglik(X: np.ndarray) -> float:
    """Mean log-likelihood of ``X`` under its maximum-likelihood Gaussian."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, np.newaxis]
    n_features = X.shape[1]
    covariance = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    sign, logdet = np.linalg.slogdet(covariance)
    if sign <= 0 or not np.isfinite(logdet):
        return float("nan") if X.shape[0] == 0 else 0.0
    return float(-0.5 * (n_features * np.log(2 * np.pi) + logdet + n_features))


# ---------------------------------------------------------------------------
# Planning


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str).encode()
    ).hexdigest()


def _seed(root_seed: int, digest: str) -> int:
    words = [int(digest[i : i + 8], 16) for i in range(0, 32, 8)]
    return int(np.random.SeedSequence([root_seed, *words]).generate_state(1)[0])


def _entry_components(config: SweepConfig, entry: DatasetEntry, params) -> list[int]:
    components = entry.n_components or config.n_components
    if components != "data":
        return list(components)
    known = load_dataset(entry.name, seed=0, **params).n_components
    if known is None:
        raise ConfigError(
            f"{config.source}: [grid.n_components] data set "
            f"{entry.name!r} has no natural K; give n_components."
        )
    return [known]


def plan_runs(config: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep, in a deterministic order.

    Raises ValueError when a ``file:`` data set cannot be read (its content
    hash is part of every run's identity).
    """
    runs: list[RunSpec] = []
    for entry in config.datasets:
        keys = sorted(entry.params)
        replicates = entry.data_replicates or config.data_replicates
        for values in itertools.product(*(entry.params[k] for k in keys)):
            dataset_params = dict(zip(keys, values, strict=True))
            data_hash = dataset_fingerprint(entry.name, dataset_params)
            same_draw = SAME_DRAW_PARAMETERS.get(entry.name, frozenset())
            drawn_by = {k: v for k, v in dataset_params.items() if k not in same_draw}
            components = _entry_components(config, entry, dataset_params)
            for arm in config.arms.values():
                if entry.backends is not None and arm.name not in entry.backends:
                    continue
                seeds = min(arm.seeds or config.seeds, config.seeds)
                if arm.engine in TAKES_INIT_PARAMS:
                    inits = entry.init_params or config.init_params
                    if arm.inits is not None:
                        inits = tuple(i for i in inits if i in arm.inits)
                else:
                    inits = ("default",)
                stopping = None if arm.own_stopping else config.stopping
                for replicate, k, covariance_type, init, seed in itertools.product(
                    range(replicates),
                    components,
                    entry.covariance_types or config.covariance_types,
                    inits,
                    range(seeds),
                ):
                    data_identity = {
                        "dataset": entry.name,
                        "params": drawn_by,
                        "data_hash": data_hash,
                        "data_replicate": replicate,
                    }
                    fit_identity = {
                        **data_identity,
                        "params": dataset_params,
                        "n_components": k,
                        "covariance_type": covariance_type,
                        "init": init,
                        "seed": seed,
                    }
                    digest = _digest(
                        {
                            **fit_identity,
                            "backend": arm.name,
                            "engine": arm.engine,
                            "options": arm.options,
                            "stopping": None if stopping is None else asdict(stopping),
                        }
                    )
                    runs.append(
                        RunSpec(
                            run_id=digest[:16],
                            dataset=entry.name,
                            dataset_params=dataset_params,
                            data_hash=data_hash,
                            backend=arm.name,
                            engine=arm.engine,
                            backend_options=dict(arm.options),
                            n_components=int(k),
                            covariance_type=covariance_type,
                            init=init,
                            data_replicate=replicate,
                            seed=seed,
                            data_seed=_seed(config.root_seed, _digest(data_identity)),
                            fit_seed=_seed(config.root_seed, _digest(fit_identity)),
                            timeout=config.timeout,
                            stopping=stopping,
                        )
                    )
    # Two entries may plan the same run (the same data set in a convergence
    # study and a model search): it runs once.
    unique = {run.run_id: run for run in reversed(runs)}
    return [run for run in runs if unique.pop(run.run_id, None) is not None]
