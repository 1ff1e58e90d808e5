"""The compiled passes behind the statuses give what the NumPy definitions give.

:func:`shopfunnel.stages.status.furthest_stages` computes each person's stage, entry time,
later evidence and the movers of each stage in one pass; on random first-evidence
matrices it must equal the definitions written with whole-array NumPy operations.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfunnel.stages.status import (
    NEVER,
    furthest_stages,
    later_evidence,
    movements,
    return_gaps,
)


@settings(deadline=None)  # the first call loads the compiled pass
@given(
    rows=st.lists(
        st.lists(st.one_of(st.just(NEVER), st.integers(0, 20)), min_size=4, max_size=4),
        max_size=30,
    ).map(lambda r: [[0, *x[1:]] for x in r])  # everyone has evidence of the first stage
)
def test_furthest_stages_match_the_array_definitions(rows) -> None:
    first = np.array(rows, dtype=np.int64).reshape(len(rows), 4)
    stage, entered, later, movers = furthest_stages(first)
    reached = first < NEVER
    want_stage = 3 - np.argmax(reached[:, ::-1], axis=1)
    assert stage.tolist() == want_stage.tolist()
    assert entered.tolist() == first[np.arange(len(first)), want_stage].tolist()
    want_later = later_evidence(first)
    assert later.tolist() == want_later.tolist()
    want_movers = ((first < want_later) & (want_later < NEVER)).sum(axis=0)
    assert movers.tolist() == want_movers.tolist()


@settings(deadline=None)  # the first call loads the compiled passes
@given(
    rows=st.lists(
        st.lists(st.one_of(st.just(NEVER), st.integers(0, 40)), min_size=4, max_size=4),
        max_size=30,
    ),
    visits=st.lists(
        st.tuples(st.integers(0, 29), st.integers(0, 45), st.integers(1, 5 * 86_400_000_000)),
        max_size=60,
    ),
)
def test_movements_equal_furthest_stages_and_the_return_gap_matrix(rows, visits) -> None:
    """The fused pass gives the stages, entry times and movers of :func:`furthest_stages`
    and, per stage, the non-empty cells of :func:`return_gaps`' column in row order."""
    first = np.array(rows, dtype=np.int64).reshape(len(rows), 4)
    visits = [v for v in visits if v[0] < len(rows)]
    v_rows = np.array([v[0] for v in visits], dtype=np.int64)
    v_starts = np.array([v[1] for v in visits], dtype=np.int64)
    v_gaps = np.array([v[2] for v in visits], dtype=np.int64)
    stage, entered, movers, per_stage = movements(first, v_rows, v_starts, v_gaps)
    want_stage, want_entered, _, want_movers = furthest_stages(first)
    assert stage.tolist() == want_stage.tolist()
    assert entered.tolist() == want_entered.tolist()
    assert movers.tolist() == want_movers.tolist()
    matrix = return_gaps(first, v_rows, v_starts, v_gaps)
    for k in range(4):
        column = matrix[:, k]
        assert per_stage[k].tolist() == column[~np.isnan(column)].tolist()
