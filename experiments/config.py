"""Sweep configurations: TOML files, validated before anything runs.

A sweep is declared as data, and the cartesian product of its entries
defines the runs::

    [sweep]
    root_seed = 2026        # every random choice derives from it
    seeds = 3               # replicates of every cell
    timeout = 300           # seconds per run (optional)

    [[datasets]]
    name = "synthetic"              # a registered data set, or "file:PATH"
    n_components = [2, 3, 4]        # optional; default: the data set's own K
    backends = ["em", "sklearn"]    # optional; default: every engine
    params = { n = [250, 1000], separation = 2.0 }   # lists are grids

    [backends.em]                   # one table per engine, holding its options
    n_init = 1
    [backends.pymc]
    seeds = 1                       # optional: fewer replicates for this engine
    draws = 300

    [grid]
    covariance_type = ["full"]
    init_params = ["kmeans", "random_from_data"]   # for engines that take it
    n_components = "data"           # or [3], or "1..6"

Each run's identity (data set, its parameters, engine, options, K,
covariance type, initialisation, replicate) is hashed into a ``run_id``; its
seeds come from ``numpy.random.SeedSequence([root_seed, hash(...)])``, so
results do not depend on the order or the machine they ran on. The data seed
depends only on the data set and the replicate, and the fit seed does not
depend on the engine, so every engine sees the same sample and EM engines the
same initialisation. Errors name the file, the key and the allowed values.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.datasets import dataset_parameters, load_dataset
from mixtures.backends import backend_statuses, get_backend
from mixtures.covariance import COVARIANCE_MODELS
from mixtures.initialization import INIT_METHODS

__all__ = ["ConfigError", "RunSpec", "SweepConfig", "load_config", "plan_runs"]

#: Engines whose initialisation strategy the ``init_params`` grid varies.
TAKES_INIT_PARAMS = {"em", "sklearn"}


class ConfigError(ValueError):
    """A sweep configuration that cannot run; the message says where and why."""


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    params: dict[str, list[Any]]
    n_components: list[int] | None
    backends: tuple[str, ...] | None


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep configuration."""

    source: str
    raw: dict[str, Any] = field(repr=False)
    root_seed: int
    seeds: int
    timeout: float | None
    datasets: tuple[DatasetEntry, ...]
    backends: dict[str, dict[str, Any]]
    covariance_types: tuple[str, ...]
    init_params: tuple[str, ...]
    n_components: Any  # "data" or a list of ints

    @property
    def config_hash(self) -> str:
        """SHA-256 of the configuration's canonical JSON form."""
        canonical = json.dumps(self.raw, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: everything a worker needs, nothing it must look up."""

    run_id: str
    dataset: str
    dataset_params: dict[str, Any]
    backend: str
    backend_options: dict[str, Any]
    n_components: int
    covariance_type: str
    init: str
    seed_index: int
    data_seed: int
    fit_seed: int
    timeout: float | None


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


def _parse_components(source, key, value):
    if value == "data":
        return "data"
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*\.\.\s*(\d+)\s*", value)
        if not match or int(match[1]) > int(match[2]) or int(match[1]) < 1:
            raise _fail(
                source,
                key,
                f"must be 'data', a list of integers or a range "
                f"like '1..6'; got {value!r}.",
            )
        return list(range(int(match[1]), int(match[2]) + 1))
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


def parse_config(raw: dict[str, Any], source: str = "<config>") -> SweepConfig:
    """Validate an already parsed configuration (see the module docstring)."""
    _check_keys(source, "top level", raw, {"sweep", "datasets", "backends", "grid"})
    sweep = raw.get("sweep", {})
    _check_keys(
        source, "sweep", sweep, {"root_seed", "seeds", "timeout", "name", "description"}
    )
    root_seed = _check_int(source, "sweep.root_seed", sweep.get("root_seed", 0), 0)
    seeds = _check_int(source, "sweep.seeds", sweep.get("seeds", 1), 1)
    timeout = sweep.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or timeout <= 0
    ):
        raise _fail(
            source,
            "sweep.timeout",
            f"must be a positive number of seconds; got {timeout!r}.",
        )

    entries = raw.get("datasets")
    if not entries or not isinstance(entries, list):
        raise _fail(source, "datasets", "at least one [[datasets]] entry is needed.")
    datasets = []
    for index, entry in enumerate(entries):
        where = f"datasets[{index}]"
        _check_keys(
            source, where, entry, {"name", "params", "n_components", "backends"}
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
            missing = sorted(set(only) - set(raw.get("backends", {})))
            if missing:
                raise _fail(
                    source,
                    f"{where}.backends",
                    f"{missing} have no "
                    f"[backends.NAME] table; defined: "
                    f"{', '.join(raw.get('backends', {}))}.",
                )
        datasets.append(DatasetEntry(name, grid, components, only))

    backends = raw.get("backends")
    if not backends or not isinstance(backends, dict):
        raise _fail(source, "backends", "at least one [backends.NAME] table is needed.")
    statuses = backend_statuses()
    for name, options in backends.items():
        where = f"backends.{name}"
        if name not in statuses:
            raise _fail(
                source, where, f"unknown backend; registered: {', '.join(statuses)}."
            )
        if not statuses[name].available:
            raise _fail(source, where, f"backend unavailable: {statuses[name].detail}.")
        accepted = getattr(get_backend(name), "options", None)
        if accepted is not None:
            # init_params is the grid's to vary; seeds is the sweep's.
            _check_keys(
                source, where, options, (set(accepted) - {"init_params"}) | {"seeds"}
            )
        if "seeds" in options:
            _check_int(source, f"{where}.seeds", options["seeds"], 1)

    grid = raw.get("grid", {})
    _check_keys(
        source, "grid", grid, {"covariance_type", "init_params", "n_components"}
    )
    covariance_types = _as_list(grid.get("covariance_type", ["full"]))
    for value in covariance_types:
        if value not in COVARIANCE_MODELS:
            raise _fail(
                source,
                "grid.covariance_type",
                f"unknown {value!r}; allowed: {', '.join(COVARIANCE_MODELS)}.",
            )
    init_params = _as_list(grid.get("init_params", ["kmeans"]))
    for value in init_params:
        if value not in INIT_METHODS:
            raise _fail(
                source,
                "grid.init_params",
                f"unknown {value!r}; allowed: {', '.join(INIT_METHODS)}.",
            )
    n_components = _parse_components(
        source, "grid.n_components", grid.get("n_components", "data")
    )
    return SweepConfig(
        source=source,
        raw=raw,
        root_seed=root_seed,
        seeds=seeds,
        timeout=None if timeout is None else float(timeout),
        datasets=tuple(datasets),
        backends={k: dict(v) for k, v in backends.items()},
        covariance_types=tuple(covariance_types),
        init_params=tuple(init_params),
        n_components=n_components,
    )


# ---------------------------------------------------------------------------
# Planning


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, default=str).encode()
    ).hexdigest()


def _seed(root_seed: int, digest: str) -> int:
    words = [int(digest[i : i + 8], 16) for i in range(0, 32, 8)]
    return int(np.random.SeedSequence([root_seed, *words]).generate_state(1)[0])


def plan_runs(config: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep, in a deterministic order."""
    runs: list[RunSpec] = []
    for entry in config.datasets:
        keys = sorted(entry.params)
        for values in itertools.product(*(entry.params[k] for k in keys)):
            dataset_params = dict(zip(keys, values, strict=True))
            components = entry.n_components or config.n_components
            if components == "data":
                known = load_dataset(entry.name, seed=0, **dataset_params).n_components
                if known is None:
                    raise ConfigError(
                        f"{config.source}: [grid.n_components] data set "
                        f"{entry.name!r} has no natural K; give n_components."
                    )
                components = [known]
            for backend, settings in config.backends.items():
                if entry.backends is not None and backend not in entry.backends:
                    continue
                options = {k: v for k, v in settings.items() if k != "seeds"}
                replicates = min(settings.get("seeds", config.seeds), config.seeds)
                inits = (
                    config.init_params if backend in TAKES_INIT_PARAMS else ("default",)
                )
                for k, covariance_type, init, seed_index in itertools.product(
                    components, config.covariance_types, inits, range(replicates)
                ):
                    data_identity = {
                        "dataset": entry.name,
                        "params": dataset_params,
                        "replicate": seed_index,
                    }
                    fit_identity = {
                        **data_identity,
                        "n_components": k,
                        "covariance_type": covariance_type,
                        "init": init,
                    }
                    digest = _digest(
                        {**fit_identity, "backend": backend, "options": options}
                    )
                    runs.append(
                        RunSpec(
                            run_id=digest[:16],
                            dataset=entry.name,
                            dataset_params=dataset_params,
                            backend=backend,
                            backend_options=options,
                            n_components=int(k),
                            covariance_type=covariance_type,
                            init=init,
                            seed_index=seed_index,
                            data_seed=_seed(config.root_seed, _digest(data_identity)),
                            fit_seed=_seed(config.root_seed, _digest(fit_identity)),
                            timeout=config.timeout,
                        )
                    )
    return runs
