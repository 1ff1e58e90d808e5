"""Helpers shared by the section builders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

import pandas as pd


def usable(frame: pd.DataFrame | None, needed: Sequence[str] = ()) -> TypeGuard[pd.DataFrame]:
    """True when ``frame`` has rows and every column in ``needed``."""
    return frame is not None and len(frame) > 0 and all(c in frame.columns for c in needed)


def as_text(value: Any) -> str:
    """``value`` as text; ``""`` for None and missing values (NaN, NaT, pd.NA)."""
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    return str(value)
