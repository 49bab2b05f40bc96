"""gmmlab's mixture engines.

``GaussianMixture`` is the from-scratch EM engine as a scikit-learn
estimator, ``fit_em`` its functional entry point, and ``MixtureParams`` the
parameter object every engine returns.
"""

from mixtures.check import check_em
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
