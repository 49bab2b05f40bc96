"""gmmlab's mixture engines: everything a user needs, from one import.

Fitting
    ``GaussianMixture`` (the from-scratch EM engine as a scikit-learn
    estimator), ``fit_em`` (its functional entry point), ``MixtureParams``
    (the parameter object every engine returns), ``EMResult``.
Model-based clustering (mclust's model family)
    ``search`` (covariance models x K by BIC/ICL), ``best_model``,
    ``bic_table``, ``models_for``; ``bootstrap`` (standard errors and
    intervals of a fitted mixture).
mclust's wider toolbox
    ``bootstrap_lrt`` (the bootstrap likelihood-ratio test for K),
    ``fit_density`` (density estimation with highest-density regions),
    ``MixtureDiscriminant`` (EDDA and MclustDA classifiers),
    ``NoiseMixture`` and ``search_noise`` (a uniform noise component).
Validating other people's EM
    ``check_em``.
Data
    ``load_faithful`` (Old Faithful, as R distributes it).
Events and warnings
    ``DegenerateEvent``, ``DegenerateComponentWarning``.

Every name is imported on first use (PEP 562), so ``import mixtures`` (and
any of its submodules, e.g. in a worker process) does not import
scikit-learn, numba or the checker until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_EXPORTS = {
    "GaussianMixture": "mixtures.estimator",
    "fit_em": "mixtures.fitting",
    "EMResult": "mixtures.fitting",
    "DegenerateComponentWarning": "mixtures.fitting",
    "MixtureParams": "mixtures.params",
    "DegenerateEvent": "mixtures.em",
    "search": "mixtures.select",
    "best_model": "mixtures.select",
    "bic_table": "mixtures.select",
    "models_for": "mixtures.covariance",
    "bootstrap": "mixtures.bootstrapping",
    "check_em": "mixtures.check",
    "load_faithful": "mixtures.data",
    "bootstrap_lrt": "mixtures.lrt",
    "fit_density": "mixtures.density",
    "MixtureDiscriminant": "mixtures.classify",
    "NoiseMixture": "mixtures.noise_estimator",
    "search_noise": "mixtures.noise_search",
}

__all__ = [
    "DegenerateComponentWarning",
    "DegenerateEvent",
    "EMResult",
    "GaussianMixture",
    "MixtureDiscriminant",
    "MixtureParams",
    "NoiseMixture",
    "best_model",
    "bic_table",
    "bootstrap",
    "bootstrap_lrt",
    "check_em",
    "fit_density",
    "fit_em",
    "load_faithful",
    "models_for",
    "search",
    "search_noise",
]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from mixtures.bootstrapping import bootstrap
    from mixtures.check import check_em
    from mixtures.classify import MixtureDiscriminant
    from mixtures.covariance import models_for
    from mixtures.data import load_faithful
    from mixtures.density import fit_density
    from mixtures.em import DegenerateEvent
    from mixtures.estimator import GaussianMixture
    from mixtures.fitting import DegenerateComponentWarning, EMResult, fit_em
    from mixtures.lrt import bootstrap_lrt
    from mixtures.noise_estimator import NoiseMixture
    from mixtures.noise_search import search_noise
    from mixtures.params import MixtureParams
    from mixtures.select import best_model, bic_table, search


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mixtures' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
