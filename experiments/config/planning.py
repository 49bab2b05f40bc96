"""From a validated configuration to its runs: :func:`plan_runs`.

Expands every data set entry's parameter grid, arm, data replicate, K,
covariance type, initialisation and seed into a
:class:`~experiments.config.schema.RunSpec`, with the run's identity hashed
into its ``run_id`` and its data and fit seeds derived from the root seed
(see :mod:`experiments.config`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.config.schema import (
    TAKES_INIT_PARAMS,
    Arm,
    ConfigError,
    DatasetEntry,
    RunSpec,
    Stopping,
    SweepConfig,
)
from experiments.datasets import (
    SAME_DRAW_PARAMETERS,
    dataset_fingerprint,
    load_dataset,
)

__all__ = ["plan_runs"]


@dataclass(frozen=True)
class _Variant:
    """One data set entry at one point of its parameter grid."""

    name: str
    params: dict[str, Any]
    data_hash: str
    #: The parameters that change the random draw (the data seed's).
    drawn_by: dict[str, Any]


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


def _arm_inits(config: SweepConfig, entry: DatasetEntry, arm: Arm) -> tuple:
    """The initialisations ``arm`` runs on ``entry``."""
    if arm.engine not in TAKES_INIT_PARAMS:
        return ("default",)
    inits = entry.init_params or config.init_params
    if arm.inits is not None:
        inits = tuple(i for i in inits if i in arm.inits)
    return inits


def plan_runs(config: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep, in a deterministic order.

    Raises ValueError when a ``file:`` data set cannot be read (its content
    hash is part of every run's identity).
    """
    runs: list[RunSpec] = []
    for entry in config.datasets:
        keys = sorted(entry.params)
        for values in itertools.product(*(entry.params[k] for k in keys)):
            runs.extend(
                _variant_runs(config, entry, dict(zip(keys, values, strict=True)))
            )
    # Two entries may plan the same run (the same data set in a convergence
    # study and a model search): it runs once.
    unique = {run.run_id: run for run in reversed(runs)}
    return [run for run in runs if unique.pop(run.run_id, None) is not None]


def _variant_runs(
    config: SweepConfig, entry: DatasetEntry, dataset_params: dict[str, Any]
) -> Iterator[RunSpec]:
    """The runs of one entry at one point of its parameter grid, in order."""
    replicates = entry.data_replicates or config.data_replicates
    data_hash = dataset_fingerprint(entry.name, dataset_params)
    same_draw = SAME_DRAW_PARAMETERS.get(entry.name, frozenset())
    variant = _Variant(
        entry.name,
        dataset_params,
        data_hash,
        {k: v for k, v in dataset_params.items() if k not in same_draw},
    )
    components = _entry_components(config, entry, dataset_params)
    for arm in config.arms.values():
        if entry.backends is not None and arm.name not in entry.backends:
            continue
        seeds = min(arm.seeds or config.seeds, config.seeds)
        inits = _arm_inits(config, entry, arm)
        stopping = None if arm.own_stopping else config.stopping
        # (replicate, k, covariance_type, init, seed), as _run_spec takes them
        for cell in itertools.product(
            range(replicates),
            components,
            entry.covariance_types or config.covariance_types,
            inits,
            range(seeds),
        ):
            yield _run_spec(config, variant, arm, stopping, *cell)


def _run_spec(
    config: SweepConfig,
    variant: _Variant,
    arm: Arm,
    stopping: Stopping | None,
    replicate: int,
    k: int,
    covariance_type: str,
    init: str,
    seed: int,
) -> RunSpec:
    """One run, its identity hashed into ``run_id`` and its two seeds."""
    data_identity = {
        "dataset": variant.name,
        "params": variant.drawn_by,
        "data_hash": variant.data_hash,
        "data_replicate": replicate,
    }
    fit_identity = {
        **data_identity,
        "params": variant.params,
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
    return RunSpec(
        run_id=digest[:16],
        dataset=variant.name,
        dataset_params=variant.params,
        data_hash=variant.data_hash,
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
