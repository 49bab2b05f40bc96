"""Array-API inputs at the estimator's boundary.

The EM engine computes in NumPy. An input from another array library that
implements the Python array API standard (PyTorch, CuPy, array-api-strict,
...) is converted to NumPy on the way in, through DLPack. Under
``sklearn.config_context(array_api_dispatch=True)`` the fitted attributes and
every array an estimator method returns are converted back to the input's
namespace and device, so code written for scikit-learn's array-API support
gets arrays of the kind it passed; without dispatch, results are NumPy, as
scikit-learn's are. Nothing here needs ``array-api-compat`` unless such an
input actually arrives (it is how the namespace and device are read).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sklearn

__all__ = ["ArrayKind", "array_kind", "on_accelerator", "to_namespace", "to_numpy"]


def _is_foreign(array: Any) -> bool:
    """An array-API array that is not a NumPy array."""
    if isinstance(array, np.ndarray | np.generic):
        return False
    return hasattr(array, "__array_namespace__") or _library(array) in (
        "torch",
        "cupy",
    )


def _library(array: Any) -> str:
    return type(array).__module__.split(".")[0]


def on_accelerator(array: Any) -> bool:
    """Whether ``array`` is a PyTorch tensor off the CPU or a CuPy array."""
    module = _library(array)
    if module == "torch":
        return array.device.type != "cpu"
    return module == "cupy"


def to_numpy(array: Any) -> Any:
    """``array`` as a NumPy array if it is a foreign array-API array, else as is.

    Moves it to the host first when it lives on another device (a GPU).
    """
    if array is None or not _is_foreign(array):
        return array
    module = _library(array)
    if module == "torch":
        return array.detach().cpu().numpy()
    if module == "cupy":
        return array.get()
    try:
        return np.from_dlpack(array)
    except (BufferError, RuntimeError, TypeError, ValueError):
        namespace = array.__array_namespace__()
        host = namespace.__array_namespace_info__().default_device()
        return np.from_dlpack(array.to_device(host))


class ArrayKind:
    """The namespace and device results go back to (``None``: NumPy)."""

    __slots__ = ("device", "namespace")

    def __init__(self, namespace: Any = None, device: Any = None) -> None:
        self.namespace = namespace
        self.device = device

    def __call__(self, array: np.ndarray) -> Any:
        """``array`` converted to this kind."""
        return to_namespace(array, self)


NUMPY = ArrayKind()


def array_kind(array: Any) -> ArrayKind:
    """Where results for input ``array`` go.

    Its own kind under scikit-learn's ``array_api_dispatch``; NumPy otherwise
    or for NumPy input.
    """
    if not _is_foreign(array) or not sklearn.get_config().get("array_api_dispatch"):
        return NUMPY
    import array_api_compat  # scikit-learn's dispatch requires it

    return ArrayKind(
        array_api_compat.array_namespace(array), array_api_compat.device(array)
    )


def to_namespace(array: np.ndarray, kind: ArrayKind) -> Any:
    """A NumPy result in ``kind``'s namespace and on its device."""
    if kind.namespace is None or array is None:
        return array
    return kind.namespace.asarray(np.ascontiguousarray(array), device=kind.device)
