"""From TOML to a validated :class:`~experiments.config.schema.SweepConfig`.

:func:`load_config` reads a file and :func:`parse_config` checks an already
parsed one, table by table, in a fixed order (top level, ``[[checks]]``,
``[sweep]``, ``[stopping]``, ``[backends.*]``, ``[[datasets]]``,
``[grid]``): the first problem found is raised as a
:class:`~experiments.config.schema.ConfigError` that names the file, the key
and the allowed values. :func:`parse_components` is the one parser of the
``K`` / ``A..B`` syntax.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from experiments.config.schema import (
    DEFAULT_STOPPING,
    ITERATIVE_ENGINES,
    SAME_OPTIMUM_NATS,
    Arm,
    CheckEntry,
    ConfigError,
    DatasetEntry,
    Stopping,
    SweepConfig,
)
from experiments.datasets import dataset_parameters
from experiments.starts import START_NAMES
from mixtures.backends import backend_statuses, get_backend
from mixtures.covariance import COVARIANCE_MODELS

__all__ = ["load_config", "parse_components", "parse_config"]

#: What a backend table may hold besides its engine's options.
_ARM_KEYS = {"seeds", "engine", "stopping", "inits"}
_TOP_KEYS = {"sweep", "stopping", "datasets", "backends", "grid", "checks"}
_SWEEP_KEYS = {
    "root_seed",
    "seeds",
    "data_replicates",
    "timeout",
    "same_optimum_nats",
    "name",
    "description",
}
_DATASET_KEYS = {
    "name",
    "params",
    "n_components",
    "backends",
    "data_replicates",
    "covariance_type",
    "init_params",
}
_GRID_KEYS = {"covariance_type", "init_params", "n_components"}


# ---------------------------------------------------------------------------
# Checks of single values


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


# ---------------------------------------------------------------------------
# The file, table by table


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
    """Validate an already parsed configuration (see :mod:`experiments.config`)."""
    _check_keys(source, "top level", raw, _TOP_KEYS)
    checks = _parse_checks(source, raw)
    sweep = _parse_sweep(source, raw)
    stopping = _parse_stopping(source, raw)
    arms = _parse_arms(source, raw)
    datasets = _parse_datasets(source, raw, arms)
    covariance_types, init_params, n_components = _parse_grid(source, raw)
    return SweepConfig(
        source=source,
        raw=raw,
        **sweep,
        stopping=stopping,
        datasets=datasets,
        arms=arms,
        covariance_types=covariance_types,
        init_params=init_params,
        n_components=n_components,
        checks=checks,
    )


def _parse_checks(source: str, raw: dict[str, Any]) -> tuple[CheckEntry, ...]:
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
    return tuple(checks)


def _parse_sweep(source: str, raw: dict[str, Any]) -> dict[str, Any]:
    """``[sweep]``'s settings, by their :class:`SweepConfig` field names."""
    sweep = raw.get("sweep", {})
    _check_keys(source, "sweep", sweep, _SWEEP_KEYS)
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
    return {
        "root_seed": root_seed,
        "seeds": seeds,
        "data_replicates": data_replicates,
        "timeout": timeout,
        "same_optimum_nats": same_optimum,
    }


def _parse_stopping(source: str, raw: dict[str, Any]) -> Stopping:
    stopping_table = raw.get("stopping", {})
    _check_keys(source, "stopping", stopping_table, {"tol", "max_iter"})
    return Stopping(
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


def _parse_arms(source, raw) -> dict[str, Arm]:
    backends = raw.get("backends")
    if not backends or not isinstance(backends, dict):
        raise _fail(source, "backends", "at least one [backends.NAME] table is needed.")
    statuses = backend_statuses()
    return {
        name: _parse_arm(source, name, table, statuses)
        for name, table in backends.items()
    }


def _parse_arm(source: str, name: str, table, statuses) -> Arm:
    """One ``[backends.NAME]`` table."""
    where = f"backends.{name}"
    if not isinstance(table, dict):
        raise _fail(source, where, f"must be a table; got {type(table).__name__}.")
    engine = table.get("engine", name)
    if engine not in statuses:
        key = f"{where}.engine" if "engine" in table else where
        raise _fail(source, key, f"unknown backend; registered: {', '.join(statuses)}.")
    if not statuses[engine].available:
        raise _fail(source, where, f"backend unavailable: {statuses[engine].detail}.")
    accepted = getattr(get_backend(engine), "options", None)
    if accepted is not None:
        # init_params is the grid's to vary; seeds is the sweep's.
        _check_keys(source, where, table, (set(accepted) - {"init_params"}) | _ARM_KEYS)
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
    return Arm(name, engine, options, seeds, own, inits)


def _parse_datasets(
    source: str, raw: dict[str, Any], arms: dict[str, Arm]
) -> tuple[DatasetEntry, ...]:
    entries = raw.get("datasets")
    if not entries or not isinstance(entries, list):
        raise _fail(source, "datasets", "at least one [[datasets]] entry is needed.")
    return tuple(
        _parse_dataset(source, f"datasets[{index}]", entry, arms)
        for index, entry in enumerate(entries)
    )


def _parse_dataset(
    source: str, where: str, entry, arms: dict[str, Arm]
) -> DatasetEntry:
    """One ``[[datasets]]`` table."""
    _check_keys(source, where, entry, _DATASET_KEYS)
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
                f"{missing} have no [backends.NAME] table; defined: {', '.join(arms)}.",
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
    return DatasetEntry(
        name, grid, components, only, replicates, covariances, entry_inits
    )


def _parse_grid(source: str, raw: dict[str, Any]) -> tuple[tuple, tuple, Any]:
    """``[grid]``: covariance types, starts and ``n_components``."""
    grid = raw.get("grid", {})
    _check_keys(source, "grid", grid, _GRID_KEYS)
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
    return tuple(covariance_types), tuple(init_params), n_components
