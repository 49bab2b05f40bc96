"""gmmlab's mixture engines.

``GaussianMixture`` is the from-scratch EM engine as a scikit-learn
estimator, ``fit_em`` its functional entry point, and ``MixtureParams`` the
parameter object every engine returns. ``check_em`` (the checker of other
people's EM functions, :mod:`mixtures.check`) is imported on first use, so
importing the engine does not import the checker.
"""

from typing import Any

from mixtures.em import DegenerateEvent
from mixtures.estimator import GaussianMixture
from mixtures.fitting import DegenerateComponentWarning, EMResult, fit_em
from mixtures.params import MixtureParams

__all__ = [
    "DegenerateComponentWarning",
    "DegenerateEvent",
    "EMResult",
    "GaussianMixture",
    "MixtureParams",
    "check_em",
    "fit_em",
]


def __getattr__(name: str) -> Any:
    """``mixtures.check_em``, imported from :mod:`mixtures.check` on first use."""
    if name == "check_em":
        from mixtures.check import check_em

        return check_em
    raise AttributeError(f"module 'mixtures' has no attribute {name!r}")
