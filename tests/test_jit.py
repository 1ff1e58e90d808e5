"""numba starts without scipy.linalg (shopfunnel.jit), and no kernel needs it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "shopfunnel"
BLAS = {"dot", "vdot", "matmul", "inner", "linalg", "kron", "tensordot", "einsum"}


def _kernels() -> list[tuple[Path, ast.FunctionDef]]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                "njit" in ast.unparse(d) for d in node.decorator_list
            ):
                found.append((path, node))
    return found


def test_no_kernel_uses_linear_algebra():
    kernels = _kernels()
    assert len(kernels) > 10  # the scan sees the kernels
    for path, fn in kernels:
        for node in ast.walk(fn):
            assert not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult)), (
                f"{path.name}:{fn.name} multiplies matrices: numba starts without BLAS"
            )
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert not (node.value.id == "np" and node.attr in BLAS), (
                    f"{path.name}:{fn.name} calls np.{node.attr}: numba starts without BLAS"
                )


def test_every_kernel_module_takes_njit_from_shopfunnel_jit():
    for path, _ in _kernels():
        if path.name == "jit.py":
            continue  # where njit comes from
        source = path.read_text()
        assert "from numba import njit" not in source, f"{path}: import njit from shopfunnel.jit"


def test_a_funnel_runs_without_loading_scipy_linalg_which_stays_importable(tmp_path):
    script = """
import sys
import pandas as pd
from shopfunnel.funnel.api import funnel
events = pd.DataFrame({"anonymous_id": ["a", "a", "b"], "event": ["view", "buy", "view"],
                       "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:05",
                                             "2024-01-01 11:00"])})
persons = funnel(events, ["view", "buy"]).steps["persons"].tolist()
assert persons == [2, 1], persons
assert "scipy.linalg" not in sys.modules, "numba loaded scipy.linalg"
import scipy.stats  # the statistics that need scipy.linalg still load it
assert "scipy.linalg" in sys.modules
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


_FUNNEL_IN_A_PROCESS = """
import sys
import pandas as pd
from shopfunnel.funnel.api import funnel
events = pd.DataFrame({"anonymous_id": ["a", "a", "b"], "event": ["view", "buy", "view"],
                       "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:05",
                                             "2024-01-01 11:00"])})
persons = funnel(events, ["view", "buy"]).steps["persons"].tolist()
assert persons == [2, 1], persons
assert "scipy.linalg" not in sys.modules, "numba loaded scipy.linalg"
print("compile registries loaded" if "numba.np.npyimpl" in sys.modules else "runtime only")
"""


def _funnel_process(env: dict[str, str] | None = None) -> str:
    import os

    run = subprocess.run(
        [sys.executable, "-c", _FUNNEL_IN_A_PROCESS],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_kernels_found_in_the_cache_load_with_numba_runtime_alone():
    _funnel_process()  # fills the cache if this checkout's kernels were never compiled
    assert _funnel_process() == "runtime only"


def test_kernels_missing_from_the_cache_are_compiled_with_numba_in_full(tmp_path):
    # an empty cache: every kernel is compiled, after the refresh numba needs for it
    assert _funnel_process({"NUMBA_CACHE_DIR": str(tmp_path)}) == "compile registries loaded"
    assert any(tmp_path.rglob("*.nbi"))  # and kept: the next process loads them
    assert _funnel_process({"NUMBA_CACHE_DIR": str(tmp_path)}) == "runtime only"


_FUNNEL_THEN_MODULES = (
    _FUNNEL_IN_A_PROCESS
    + """
print("numba.np.arrayobj" in sys.modules, "numba.cpython.charseq" in sys.modules)
"""
)


def test_cached_kernels_import_no_numba_module_for_their_environments():
    _funnel_process()  # fills the cache if needed
    run = subprocess.run(
        [sys.executable, "-c", _FUNNEL_THEN_MODULES], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().split("\n")[-2:] == ["runtime only", "False False"]


def test_an_environment_of_a_numba_module_not_imported_gets_its_name_alone_and_pickles_as_numbas():
    script = """
import pickle, pickletools, sys
from shopfunnel import jit
jit.start()
from numba.core import environment
assert "numba.np.polynomial.polynomial_functions" not in sys.modules
env = jit._rebuild_env("numba.np.polynomial.polynomial_functions", [7], "an-env")
assert env.globals == {"__name__": "numba.np.polynomial.polynomial_functions"}, env.globals
assert list(env.consts) == [7]
assert "numba.np.polynomial.polynomial_functions" not in sys.modules
assert jit._rebuild_env("numba.np.polynomial.polynomial_functions", [7], "an-env") is env
data = pickle.dumps(env)
names = [arg for op, arg, _ in pickletools.genops(data) if op.name in ("GLOBAL", "STACK_GLOBAL", "SHORT_BINUNICODE")]
assert "numba.core.environment" in names and "_rebuild_env" in names, names
assert not any("shopfunnel" in str(n) for n in names), names
mine = environment.Environment({"__name__": "shopfunnel.jit"})
mine.env_name = "shopfunnel-env"
again = pickle.loads(pickle.dumps(mine))
assert again.globals is vars(sys.modules["shopfunnel.jit"])  # a module imported: its globals
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_arrays_are_typed_as_numba_types_them_without_asking_numpy_ma():
    import numpy as np
    from numba.core.typing.typeof import Purpose, typeof

    from shopfunnel import jit

    jit.start()
    base = np.arange(24, dtype=np.int64).reshape(4, 6)
    readonly = np.arange(5, dtype=np.uint64)
    readonly.flags.writeable = False
    arrays = [
        np.zeros(3, dtype=t) for t in (np.int8, np.int16, np.int32, np.uint64, np.bool_, float)
    ] + [base, base.T, base[:, ::2], np.asfortranarray(base), readonly, np.zeros((2, 0))]
    for arr in arrays:
        assert jit._typeof_ndarray(arr, None) == jit._numba_typeof_ndarray(arr, None)
        assert typeof(arr, Purpose.argument) == jit._numba_typeof_ndarray(arr, None)


def test_importing_the_store_and_the_kernel_modules_loads_no_numba():
    script = """
import sys
import shopfunnel.store.store, shopfunnel.store.timeline, shopfunnel.store.counts
import shopfunnel.store.timeline_select
import shopfunnel.funnel.kernel, shopfunnel.funnel.tallies, shopfunnel.stages.status
assert "numba" not in sys.modules, "numba was imported before any kernel ran"
from shopfunnel.funnel import kernel
assert type(kernel.run_units).__name__ == "Kernel"
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_starting_numba_turns_every_kernel_name_into_numbas_dispatcher():
    import pickle

    import numpy as np
    from numba.core.registry import CPUDispatcher

    from shopfunnel import jit
    from shopfunnel.funnel import kernel
    from shopfunnel.store import timeline_select

    jit.start()
    assert isinstance(kernel.run_units, CPUDispatcher)
    assert isinstance(timeline_select.group_sessions, CPUDispatcher)
    assert not [
        (name, attr)
        for name, module in list(sys.modules.items())
        if name.startswith("shopfunnel")
        for attr, value in vars(module).items()
        if isinstance(value, jit.Kernel)
    ]
    # a kernel defined after the start is numba's own; a Kernel pickles by its name
    late = jit.njit(cache=False)(lambda x: x * 2)
    assert isinstance(late, CPUDispatcher) and late(np.int64(21)) == 42
    unstarted = jit.Kernel(kernel.run_units.py_func, {"cache": True})
    assert pickle.loads(pickle.dumps(unstarted)) is kernel.run_units
