"""numba's ``njit``, started only when a kernel runs, and then with only what shopfunnel's
kernels use (docs/adr/0157, 0159).

**Started on the first call.** ``njit`` here returns a :class:`Kernel`: the Python
function and its options. numba itself (0.25–0.35 s of imports) is imported when the first
kernel in the process is called (or :func:`start_in_background` is), so importing the
store, the timeline or a command that never counts anything costs nothing of numba. At that
moment every kernel defined so far becomes numba's dispatcher, and the names that held a
:class:`Kernel` in shopfunnel's modules are rebound to it, so compiled code calling another
kernel finds numba's own object (the same cache files as a plain ``numba.njit``).

**Without scipy.linalg.** The first compile in a process makes numba load its
implementations of NumPy, among them ``numba.np.arraymath``, which checks for BLAS by
importing ``scipy.linalg`` (with it ``numpy.f2py``, ``unittest``, array-API shims): about
0.15 s, for linear algebra no kernel here does. numba loads ``numba.np.arraymath`` once
with ``scipy.linalg`` out of reach, so it records "no BLAS"; ``scipy.linalg`` itself stays
importable afterwards for the statistics that need it. Consequence: a kernel here may not
call ``np.dot``, ``np.linalg`` or ``@`` (numba would refuse to compile it, naming scipy).
``tests/test_jit.py`` checks that no kernel does.

**Arrays typed without numpy.ma.** numba types an array argument (on a kernel's first call
in a process) by first asking whether it is a ``numpy.ma.MaskedArray``, which imports
``numpy.ma``: another 0.2 s. No masked array exists before ``numpy.ma`` is imported, so
while it is not, arrays are typed without the question (the same type: checked against
numba's own in the tests).

**Cached kernels with the runtime alone.** numba loads a kernel from its cache only after
"refreshing" its target: importing and registering every implementation it could compile
with (the rest of ``numba.np``, ``numba.typed``, random generators, polynomials...), although
a cached kernel is machine code that needs only numba's runtime (NRT). Here a cached kernel
is loaded with the runtime alone; the full refresh (and the lean start above) happens only
when a kernel is missing from the cache and must be compiled, which numba's compiler
refreshes for anyway.

**numba's own modules not imported for a cached kernel's environment.** Each compiled
function carries an "environment" (its module's globals, read only by object-mode code);
unpickling a cached kernel rebuilds the environments of numba's inlined implementations
(``np.empty``, ``np.zeros``: ``numba.np.arrayobj``) by importing their modules, 50–80 ms
that no nopython code reads. Here an environment of a numba module not yet imported gets a
globals dict holding only its ``__name__`` (enough to pickle it again); every kernel here is
nopython (``njit``), so nothing reads the rest.

Every module with kernels imports ``njit`` from here, not from numba.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["Kernel", "njit", "start", "start_in_background"]

_lock = threading.RLock()
_kernels: list[Kernel] = []
_numba_njit: Callable[..., Any] | None = None  # numba's njit, once started
_numba_typeof_ndarray: Callable[[Any, Any], Any] | None = None


class Kernel:
    """A kernel whose numba dispatcher is made when numba starts (its first call in the
    process, or :func:`start`). Calling it calls the dispatcher."""

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = py_func
        self.options = options
        self.dispatcher: Any = None
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__module__ = py_func.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.dispatcher is None:
            start()
        return self.dispatcher(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by name, as a module-level function
        return (_kernel_named, (self.__module__, self.__qualname__))

    def __repr__(self) -> str:
        return f"<kernel {self.__module__}.{self.__qualname__}>"


def _kernel_named(module: str, qualname: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), qualname)


def njit(*args: Any, **options: Any) -> Any:
    """``numba.njit`` (``@njit`` or ``@njit(cache=True, nogil=True)``), made when numba
    starts: before that a :class:`Kernel`, after it numba's dispatcher itself."""
    if args and callable(args[0]) and len(args) == 1 and not options:
        return _define(args[0], {})

    def decorate(py_func: Callable[..., Any]) -> Any:
        return _define(py_func, options)

    return decorate


def _define(py_func: Callable[..., Any], options: dict[str, Any]) -> Any:
    with _lock:
        if _numba_njit is not None:
            return _numba_njit(**options)(py_func)
        kernel = Kernel(py_func, options)
        _kernels.append(kernel)
        return kernel


def start() -> None:
    """Import numba (lean, as the module docstring says), make every kernel's dispatcher and
    rebind shopfunnel's module names that held a :class:`Kernel` to it. Idempotent."""
    global _numba_njit
    with _lock:
        if _numba_njit is not None:
            return
        from numba import njit as numba_njit

        _install_lean_numba()
        for kernel in _kernels:
            kernel.dispatcher = numba_njit(**kernel.options)(kernel.py_func)
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "shopfunnel" or name.startswith("shopfunnel.")):
                continue
            names = vars(module)
            for attr, value in list(names.items()):
                if isinstance(value, Kernel):
                    names[attr] = value.dispatcher
        _numba_njit = numba_njit


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


def _typeof_ndarray(val: Any, c: Any) -> Any:
    """numba's type of an array, without importing ``numpy.ma`` when it is not loaded."""
    from numba.core import errors, types
    from numba.np import numpy_support

    if "numpy.ma" in sys.modules:
        assert _numba_typeof_ndarray is not None
        return _numba_typeof_ndarray(val, c)
    try:
        dtype = numpy_support.from_dtype(val.dtype)
    except errors.NumbaNotImplementedError:
        raise errors.NumbaValueError(f"Unsupported array dtype: {val.dtype}") from None
    layout = numpy_support.map_layout(val)
    return types.Array(dtype, val.ndim, layout, readonly=not val.flags.writeable)


def _load_cached(self: Any, sig: Any, target_context: Any) -> Any:
    """numba's ``Cache.load_overload`` without the refresh a cached kernel does not need:
    start the runtime, load the kernel; on a miss, start numba in full (lean) for the
    compile that follows."""
    from numba.core.runtime import rtsys

    rtsys.initialize(target_context)
    with self._guard_against_spurious_io_errors():
        found = self._load_overload(sig, target_context)
    if found is None:
        _start_lean()
        target_context.refresh()
    return found


def _rebuild_env(modname: str, consts: Any, env_name: str) -> Any:
    """numba's ``environment._rebuild_env`` without importing a numba module for an
    environment only object-mode code would read (the module docstring). It stands in
    numba's module under numba's name, so cache files pickled with it name numba's own."""
    import importlib

    from numba.core import environment

    env = environment.lookup_environment(env_name)
    if env is not None:
        return env
    if modname in sys.modules or not modname.startswith("numba."):
        names = importlib.import_module(modname).__dict__
    else:
        names = {"__name__": modname}
    env = environment.Environment(names)
    env.consts[:] = consts
    env.env_name = env_name
    environment.Environment._memo[env_name] = env
    return env


_rebuild_env.__module__ = "numba.core.environment"


def _install_lean_numba() -> None:
    global _numba_typeof_ndarray
    import numpy as np
    from numba.core import caching, environment
    from numba.core.typing import typeof as numba_typeof

    _numba_typeof_ndarray = numba_typeof.typeof_impl.dispatch(np.ndarray)
    numba_typeof.typeof_impl.register(np.ndarray)(_typeof_ndarray)
    caching.Cache.load_overload = _load_cached  # type: ignore[method-assign]
    environment._rebuild_env = _rebuild_env


@njit(cache=True, nogil=True)
def _first(x):  # pragma: no cover - compiled
    return x + 1


def start_in_background() -> threading.Thread:
    """Start numba: its imports here (Python work, which a thread would only interleave
    with the caller's), then its first cached call in a thread (the runtime, NRT: LLVM
    compiles its small module, and the code generator), which overlaps the caller's
    DuckDB work (opening the store, checking names: the GIL is free meanwhile) instead of
    following it. The kernels' own first calls wait for it (numba's compile lock) and
    find numba started."""
    start()
    thread = threading.Thread(target=_first, args=(0,), name="numba-start", daemon=True)
    thread.start()
    return thread
