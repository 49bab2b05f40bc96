"""The one declaration of every EM option: name, type, range, default.

:class:`EMOptions` is the schema. Each field is declared once, with
:func:`option`, as its default and a :class:`Constraint`; everything else
derives from it:

* :class:`EMOptions` validates itself on construction (``__post_init__``);
* :class:`mixtures.GaussianMixture`'s constructor signature and its
  scikit-learn ``_parameter_constraints`` (:func:`estimator_parameters`,
  :func:`sklearn_constraints`);
* :func:`mixtures.fit_em`'s keywords (:func:`fit_em_signature`);
* the options a sweep may give the ``em`` backend (:data:`SWEEP_OPTIONS`).

Adding an option is one :func:`option` line here plus the code that uses
it (CONTRIBUTING.md shows one worked through; ``tests/test_options.py`` runs
that example).
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from mixtures._parallel import DEVICE_KERNEL, KERNELS, host_kernel
from mixtures.accelerate import ACCELERATIONS, STOPPING_RULES
from mixtures.covariance import COVARIANCE_MODELS, get_covariance_model
from mixtures.initialization import INIT_METHODS
from mixtures.prior import as_prior

__all__ = [
    "MISSING_VALUES",
    "SWEEP_OPTIONS",
    "Constraint",
    "EMOptions",
    "estimator_parameters",
    "fit_em_signature",
    "option",
    "reject_unknown",
    "sklearn_constraints",
    "sweep_options",
]


# ---------------------------------------------------------------------------
# Constraints: a check with gmmlab's message, and scikit-learn's equivalent


@dataclass(frozen=True)
class Constraint:
    """What values an option takes.

    ``check(value, name)`` raises a ValueError saying what is wrong and
    what to do; ``sklearn()`` is the same rule in scikit-learn's parameter
    validation vocabulary (``sklearn.utils._param_validation``), imported
    only when an estimator validates.
    """

    check: Callable[[Any, str], None]
    sklearn: Callable[[], list]


def integer(minimum: int) -> Constraint:
    """An integer >= ``minimum`` (not a bool)."""

    def check(value, name):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
        if value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value}.")

    def sklearn():
        from sklearn.utils._param_validation import Interval

        return [Interval(numbers.Integral, minimum, None, closed="left")]

    return Constraint(check, sklearn)


def non_negative() -> Constraint:
    """A finite real number >= 0 (not a bool)."""

    def check(value, name):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be a non-negative number; got {value!r}.")
        if not math.isfinite(float(value)) or value < 0:
            raise ValueError(
                f"{name} must be a non-negative finite number; got {value}."
            )

    def sklearn():
        from sklearn.utils._param_validation import Interval

        return [Interval(numbers.Real, 0.0, None, closed="left")]

    return Constraint(check, sklearn)


def boolean() -> Constraint:
    """True or False."""

    def check(value, name):
        if not isinstance(value, bool | np.bool_):
            raise ValueError(f"{name} must be a bool; got {value!r}.")

    return Constraint(check, lambda: ["boolean"])


#: What a fit does with missing values (NaN): refuse them (the default, as
#: scikit-learn does), or maximise the likelihood of the observed values
#: (:mod:`mixtures.missing`).
MISSING_VALUES = ("error", "em")


def one_of(
    choices: Iterable, why: str = "", *, validate: Callable | None = None
) -> Constraint:
    """One of ``choices`` (strings, or None); ``why`` explains them.

    ``validate(value)``, when given, is the check that owns the rule
    elsewhere (and its message), called instead of the plain membership test.
    """
    choices = tuple(choices)

    def check(value, name):
        if validate is not None:
            validate(value)
            return
        if not isinstance(value, str | type(None)) or value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ValueError(f"{name} must be one of {allowed}{why}; got {value!r}.")

    def sklearn():
        from sklearn.utils._param_validation import StrOptions

        strings = {c for c in choices if isinstance(c, str)}
        return [StrOptions(strings)] + ([None] if None in choices else [])

    return Constraint(check, sklearn)


def array_or_none() -> Constraint:
    """An array-like or None (checked against the data when the fit starts)."""
    return Constraint(lambda value, name: None, lambda: ["array-like", None])


def prior_spec() -> Constraint:
    """None, 'default', a dict of hyperparameters or a ConjugatePrior."""

    def sklearn():
        from sklearn.utils._param_validation import StrOptions

        from mixtures.prior import ConjugatePrior

        return [None, StrOptions({"default"}), dict, ConjugatePrior]

    def check(value, name):
        as_prior(value)  # raises on a malformed prior, with its own message

    return Constraint(check, sklearn)


def option(
    default: Any,
    constraint: Constraint,
    *,
    sweep: bool = True,
    shown: bool = True,
    doc: str = "",
) -> Any:
    """Declare one EM option: its default, its values, whether a sweep sets it.

    ``sweep=False`` keeps it out of :data:`SWEEP_OPTIONS` (logging, and rules
    a sweep owns itself such as its stopping rule); ``doc`` is one line for
    generated help; ``shown=False`` leaves it out of the repr (arrays).
    """
    return field(
        default=default,
        repr=shown,
        metadata={"constraint": constraint, "sweep": sweep, "doc": doc},
    )


def _check_stopping(value) -> None:
    if value not in STOPPING_RULES:
        raise ValueError(
            "stopping must be 'change' (stop when the mean log-likelihood "
            "changes by less than tol) or 'aitken' (stop when Aitken's "
            f"estimate of its limit is within tol); got {value!r}."
        )


def _check_acceleration(value) -> None:
    if value not in ACCELERATIONS:
        raise ValueError(
            f"acceleration must be None (plain EM) or 'squarem'; got {value!r}."
        )


def _check_covariance_type(value) -> None:
    if not isinstance(value, str) or value not in COVARIANCE_MODELS:
        get_covariance_model(value)  # raises with the choices


def _as_float_array(value, name: str) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric; got {value!r}.") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return array


def _check_shape(
    array: np.ndarray, shape: tuple[int, ...], name: str, sklearn_name: str
) -> None:
    # scikit-learn's sentence first, so code matching its message keeps working.
    if array.shape != shape:
        raise ValueError(
            f"The parameter '{sklearn_name}' should have the shape of {shape}, but "
            f"got {array.shape}: {name} must have one entry per component "
            "(and feature)."
        )


# ---------------------------------------------------------------------------
# The schema


@dataclass(frozen=True, eq=False)
class EMOptions:
    """Validated hyper-parameters of an EM fit (scikit-learn's meanings).

    Scalar options are checked on construction; ``*_init`` arrays are
    checked against the data by :meth:`initial_arrays`.
    See :class:`mixtures.GaussianMixture` for what each one means.
    """

    n_components: int = option(1, integer(1), sweep=False, doc="components K")
    covariance_type: str = option(
        "full",
        one_of(COVARIANCE_MODELS, validate=_check_covariance_type),
        sweep=False,
        doc="covariance model (scikit-learn's or mclust's name)",
    )
    tol: float = option(1e-3, non_negative(), doc="stopping threshold")
    reg_covar: float = option(1e-6, non_negative(), doc="added to each variance")
    max_iter: int = option(100, integer(0), doc="EM iterations per start")
    n_init: int = option(1, integer(1), doc="initialisations; the best is kept")
    init_params: str = option("kmeans", one_of(INIT_METHODS), doc="how to start")
    weights_init: object = option(
        None, array_or_none(), shown=False, doc="initial weights"
    )
    means_init: object = option(None, array_or_none(), shown=False, doc="initial means")
    precisions_init: object = option(
        None, array_or_none(), shown=False, doc="initial precisions"
    )
    verbose: int = option(0, integer(0), sweep=False, doc="log progress")
    verbose_interval: int = option(
        10, integer(1), sweep=False, doc="iterations between log lines"
    )
    prior: object = option(
        None, prior_spec(), shown=False, doc="MAP-EM's conjugate prior"
    )
    reg_covar_relative: bool = option(
        False, boolean(), doc="reg_covar in units of each feature's variance"
    )
    acceleration: str | None = option(
        None,
        one_of(ACCELERATIONS, validate=_check_acceleration),
        doc="None or 'squarem'",
    )
    # A sweep owns its stopping rule ([stopping] of its configuration).
    stopping: str = option(
        "change",
        one_of(STOPPING_RULES, validate=_check_stopping),
        sweep=False,
        doc="'change' or 'aitken'",
    )
    kernel: str = option(
        "auto",
        one_of(("auto", *KERNELS, DEVICE_KERNEL), validate=host_kernel),
        doc="'auto', 'numba', 'numpy' or 'array-api'",
    )
    missing: str = option(
        "error",
        one_of(MISSING_VALUES),
        doc="NaN: 'error' refuses it; 'em' fits over each row's observed values",
    )

    def __post_init__(self) -> None:
        for spec in fields(self):
            spec.metadata["constraint"].check(getattr(self, spec.name), spec.name)

    def check_initial_params(self, initial_params, n_features: int) -> None:
        """Raise ValueError when ``initial_params`` do not match.

        ``initial_params`` (a MixtureParams or None) must have these options'
        K and covariance model, and ``n_features``.
        """
        if initial_params is not None and (
            initial_params.n_components != self.n_components
            or initial_params.n_features != n_features
            or initial_params.covariance_type != self.covariance_type
        ):
            raise ValueError(
                "initial_params do not match the data and options: "
                f"{initial_params!r} vs n_components={self.n_components}, "
                f"n_features={n_features}, covariance_type={self.covariance_type!r}."
            )

    def initial_arrays(
        self, n_features: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Validated copies of ``weights_init``, ``means_init``, ``precisions_init``."""
        k = self.n_components
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = _as_float_array(self.weights_init, "weights_init")
            _check_shape(weights, (k,), "weights_init", "weights")
            if np.any(weights < 0) or np.any(weights > 1):
                # scikit-learn's sentence verbatim (it prints the minimum as
                # "max value" and the maximum as "min value"), then the truth.
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but "
                    f"got max value {weights.min():.5f}, min value "
                    f"{weights.max():.5f}: weights_init are proportions; they "
                    f"range from {weights.min():.5g} to {weights.max():.5g}."
                )
            # Weights given in float32 sum to one only to float32 rounding.
            given = np.asarray(self.weights_init)
            eps = np.finfo(given.dtype).eps if given.dtype.kind == "f" else 0.0
            if not np.isclose(weights.sum(), 1.0, rtol=0, atol=max(1e-8, 8 * eps)):
                raise ValueError(
                    "The parameter 'weights' should be normalized, but got "
                    f"sum(weights) = {weights.sum():.5f}: divide weights_init "
                    "by its sum."
                )
        if self.means_init is not None:
            means = _as_float_array(self.means_init, "means_init")
            _check_shape(means, (k, n_features), "means_init", "means")
        if self.precisions_init is not None:
            model = get_covariance_model(self.covariance_type)
            precisions = _as_float_array(self.precisions_init, "precisions_init")
            _check_shape(
                precisions,
                model.shape(k, n_features),
                f"precisions_init for {self.covariance_type!r}",
                f"{self.covariance_type} precision",
            )
            model.check_precisions(precisions)
        return weights, means, precisions


def _fields(schema: type) -> dict[str, Any]:
    """The declared options of ``schema`` (EMOptions or a subclass), in order."""
    return {spec.name: spec for spec in fields(schema)}


def sweep_options(schema: type = EMOptions) -> frozenset[str]:
    """Options a sweep may give the ``em`` backend (not ``sweep=False`` ones)."""
    return frozenset(
        name for name, spec in _fields(schema).items() if spec.metadata["sweep"]
    )


#: Options a sweep may give the ``em`` backend (besides K, the covariance
#: type and the seed, which the sweep sets itself).
SWEEP_OPTIONS = sweep_options()


# ---------------------------------------------------------------------------
# What derives from the schema


#: The estimator's own parameters besides the options: (name, default).
_ESTIMATOR_ONLY = (("random_state", None), ("warm_start", False))


def estimator_parameters(schema: type = EMOptions) -> list[inspect.Parameter]:
    """``GaussianMixture.__init__``'s parameters, in declaration order.

    ``n_components`` may be positional, as in scikit-learn; every other is
    keyword-only.
    """
    kinds = inspect.Parameter
    parameters = [
        kinds(
            name,
            kinds.POSITIONAL_OR_KEYWORD
            if name == "n_components"
            else kinds.KEYWORD_ONLY,
            default=spec.default,
        )
        for name, spec in _fields(schema).items()
    ]
    parameters += [
        kinds(name, kinds.KEYWORD_ONLY, default=default)
        for name, default in _ESTIMATOR_ONLY
    ]
    return parameters


def sklearn_constraints(schema: type = EMOptions) -> dict[str, list]:
    """scikit-learn's ``_parameter_constraints`` for the estimator."""
    constraints = {
        name: spec.metadata["constraint"].sklearn()
        for name, spec in _fields(schema).items()
    }
    constraints["random_state"] = ["random_state", np.random.Generator]
    constraints["warm_start"] = ["boolean"]
    return constraints


def reject_unknown(caller: str, given: Iterable[str], known: Iterable[str]) -> None:
    """TypeError naming the keywords ``caller`` does not take, as Python's own."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TypeError(
            f"{caller}() got unexpected keyword argument(s) "
            f"{', '.join(map(repr, unknown))}; its options are "
            f"{', '.join(sorted(known))} (mixtures.options.EMOptions)."
        )


def fit_em_signature(
    head: list[inspect.Parameter], schema: type = EMOptions
) -> inspect.Signature:
    """:func:`mixtures.fit_em`'s signature: ``head`` then every option."""
    names = {parameter.name for parameter in head}
    return inspect.Signature(
        [
            *head,
            *(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=spec.default
                )
                for name, spec in _fields(schema).items()
                if name not in names
            ),
        ]
    )
