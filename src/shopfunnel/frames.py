"""Telling a pandas DataFrame apart without importing pandas.

No DataFrame exists before pandas is imported, so a funnel over a store and the command
line's output never import it just to ask (docs/adr/0158).
"""

from __future__ import annotations

import sys
from typing import Any


def is_pandas_frame(data: Any) -> bool:
    """True for a pandas DataFrame; never imports pandas."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)
