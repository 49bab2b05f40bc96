"""One interface, several engines: ``get_backend(name).fit(X, K) -> MixtureFit``.

>>> from mixtures.backends import available_backends, get_backend
>>> fit = get_backend("em").fit(X, 3, random_state=0)  # doctest: +SKIP
>>> fit.params.means, fit.log_likelihood, fit.loglik_trace  # doctest: +SKIP
"""

from mixtures.backends.base import (
    TRACE_KINDS,
    Backend,
    Imputation,
    MixtureFit,
    total_log_likelihood,
)
from mixtures.backends.registry import (
    ENTRY_POINT_GROUP,
    BackendStatus,
    BackendUnavailableError,
    available_backends,
    backend_statuses,
    get_backend,
    is_posterior_backend,
    reload_backends,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "TRACE_KINDS",
    "Backend",
    "BackendStatus",
    "BackendUnavailableError",
    "Imputation",
    "MixtureFit",
    "available_backends",
    "backend_statuses",
    "get_backend",
    "is_posterior_backend",
    "reload_backends",
    "total_log_likelihood",
]
