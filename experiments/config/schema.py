"""The shape of a sweep configuration: the dataclasses a validated file becomes.

:class:`SweepConfig` (with its :class:`DatasetEntry`, :class:`Arm`,
:class:`CheckEntry` and :class:`Stopping` parts) is what
:func:`~experiments.config.validation.parse_config` returns, and
:class:`RunSpec` one run of it, as
:func:`~experiments.config.planning.plan_runs` plans it. The constants say
which engines vary their initialisation, stop by the sweep's rule, or are
never compared. Nothing here reads a file or checks a value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_STOPPING",
    "ITERATIVE_ENGINES",
    "NEVER_COMPARED",
    "SAME_OPTIMUM_NATS",
    "TAKES_INIT_PARAMS",
    "Arm",
    "CheckEntry",
    "ConfigError",
    "DatasetEntry",
    "RunSpec",
    "Stopping",
    "SweepConfig",
]

#: Engines whose initialisation strategy the ``init_params`` grid varies.
TAKES_INIT_PARAMS = {"em", "sklearn", "function"}
#: Engines shown beside the others, never compared: someone's own EM code,
#: with its own stopping rule (a write-up's implementation, bugs included).
NEVER_COMPARED = {"function"}
#: Engines whose ``tol`` is an absolute change of the mean log-likelihood
#: (or, for those in :data:`~experiments.config.stopping.TOTAL_TOL_ENGINES`,
#: of a total over the data) and which take ``max_iter``: the sweep's
#: stopping rule is passed to them.
ITERATIVE_ENGINES = {"em", "sklearn", "sklearn-vb"}
#: Two fits on the same data are at the same optimum when their total
#: log-likelihoods differ by at most this many nats (``[sweep]`` may change it).
SAME_OPTIMUM_NATS = 0.01


class ConfigError(ValueError):
    """A sweep configuration that cannot run; the message says where and why."""


@dataclass(frozen=True)
class Stopping:
    """The sweep's stopping rule for iterative engines (see the package docstring)."""

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
    """One ``[[datasets]]`` table: a data set, its parameter grid and overrides."""

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
    def data_key(self) -> str:
        """What identifies the rows this run was fitted to.

        The data set, its parameters, the file's hash (``file:`` data sets)
        and the data seed: runs with the same key fitted the same rows.
        """
        payload = [self.dataset, self.dataset_params, self.data_hash, self.data_seed]
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def comparable(self) -> bool:
        """False for an arm run with its own stopping rule, or own EM code."""
        if self.engine in NEVER_COMPARED:
            return False
        return self.stopping is not None or self.engine not in ITERATIVE_ENGINES
