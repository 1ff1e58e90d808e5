"""numba's ``njit``, started with only what shopfunnel's kernels use.

The first compiled call in a process makes numba load its implementations of NumPy,
among them ``numba.np.arraymath``, which checks for BLAS by importing
``scipy.linalg`` (with it ``numpy.f2py``, ``unittest``, array-API shims): about 0.15 s
of every command, for linear algebra no kernel here does (docs/adr/0157). This module
loads ``numba.np.arraymath`` once with ``scipy.linalg`` out of reach, so numba records
"no BLAS" and starts without it; ``scipy.linalg`` itself stays importable afterwards
for the statistics that need it.

Consequence: a kernel here may not call ``np.dot``, ``np.linalg`` or ``@`` (numba would
refuse to compile it, naming scipy). ``tests/test_jit.py`` checks that no kernel does.

Likewise, numba types an array argument (on a kernel's first call in a process) by
first asking whether it is a ``numpy.ma.MaskedArray``, which imports ``numpy.ma``: another
0.2 s. No masked array exists before ``numpy.ma`` is imported, so while it is not, arrays
are typed without the question (the same type: checked against numba's own in the tests).

Finally, numba loads a kernel from its cache only after "refreshing" its target: importing
and registering every implementation it could compile with (the rest of ``numba.np``,
``numba.typed``, random generators, polynomials...: about 0.1 CPU s), although a cached
kernel is machine code that needs only numba's runtime (NRT). Here a cached kernel is
loaded with the runtime alone; the full refresh (and the lean start above) happens only
when a kernel is missing from the cache and must be compiled, which numba's compiler
refreshes for anyway.

Every module with kernels imports ``njit`` from here, not from numba.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
from numba import njit
from numba.core import caching, errors, types
from numba.core.runtime import rtsys
from numba.core.typing import typeof as _typeof
from numba.np import numpy_support

__all__ = ["njit"]


class _WithoutLinalg(importlib.abc.MetaPathFinder):
    """An import finder that refuses ``scipy.linalg`` (only while numba starts)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> None:
        if fullname == "scipy.linalg" or fullname.startswith("scipy.linalg."):
            raise ImportError("scipy.linalg is not loaded for numba's kernels (shopfunnel.jit)")
        return None


def _start_lean() -> None:
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return  # numba has started, or scipy.linalg is here anyway: nothing to save
    finder = _WithoutLinalg()
    sys.meta_path.insert(0, finder)
    try:
        import numba.np.arraymath  # noqa: F401  # records "no BLAS" once, for the process
    finally:
        sys.meta_path.remove(finder)


_numba_typeof_ndarray = _typeof.typeof_impl.dispatch(np.ndarray)


@_typeof.typeof_impl.register(np.ndarray)
def _typeof_ndarray(val: np.ndarray, c: Any) -> types.Array:
    """numba's type of an array, without importing ``numpy.ma`` when it is not loaded."""
    if "numpy.ma" in sys.modules:
        return _numba_typeof_ndarray(val, c)
    try:
        dtype = numpy_support.from_dtype(val.dtype)
    except errors.NumbaNotImplementedError:
        raise errors.NumbaValueError(f"Unsupported array dtype: {val.dtype}") from None
    layout = numpy_support.map_layout(val)
    return types.Array(dtype, val.ndim, layout, readonly=not val.flags.writeable)


def _load_cached(self: caching.Cache, sig: Any, target_context: Any) -> Any:
    """numba's ``Cache.load_overload`` without the refresh a cached kernel does not need:
    start the runtime, load the kernel; on a miss, start numba in full (lean) for the
    compile that follows."""
    rtsys.initialize(target_context)
    with self._guard_against_spurious_io_errors():
        found = self._load_overload(sig, target_context)
    if found is None:
        _start_lean()
        target_context.refresh()
    return found


caching.Cache.load_overload = _load_cached  # type: ignore[method-assign]


@njit(cache=True, nogil=True)
def _first(x):  # pragma: no cover - compiled
    return x + 1


def start_in_background() -> threading.Thread:
    """Start numba in a thread: its first cached call starts the runtime (NRT: LLVM
    compiles its small module) and the code generator, which then overlaps the caller's
    DuckDB work (opening the store, checking names: the GIL is free meanwhile) instead of
    following it. The kernels' own first calls wait for it (numba's compile lock) and
    find numba started."""
    thread = threading.Thread(target=_first, args=(0,), name="numba-start", daemon=True)
    thread.start()
    return thread
