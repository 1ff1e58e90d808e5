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

Every module with kernels imports ``njit`` from here, not from numba.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from types import ModuleType

from numba import njit

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


_start_lean()
