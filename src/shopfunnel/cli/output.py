"""Printing results: one place decides how a table, a record or a finding list is shown.

Every command that prints results takes ``--format table|json|csv`` and ``--out FILE``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shopfunnel.errors import ShopfunnelError
from shopfunnel.format import csv_text
from shopfunnel.frames import is_pandas_frame

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def _width() -> int | None:
    """The terminal's width, or, when the output is a file or a pipe, wide enough that a
    table is never cut (Rich's default there is 80 columns). ``COLUMNS`` wins."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return None
    return 200


console = Console(width=_width())
err_console = Console(stderr=True)
TERMINAL_ROWS = 50  # rows of a long table shown on a terminal; --limit and --out give more


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


# Use as ``Annotated[Format, FORMAT_OPTION] = Format.table``.
FORMAT_OPTION = typer.Option(
    "--format", "-f", help="table (for people), json or csv (for scripts)."
)
OUT_OPTION = typer.Option("--out", "-o", help="Write to this file instead of the terminal.")
DB_OPTION = typer.Option("--db", help="The store: a DuckDB file.", envvar="SHOPFUNNEL_DB")


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return str(value)


def is_frame(data: Any) -> bool:
    """True for a pandas DataFrame, without importing pandas."""
    return is_pandas_frame(data)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records of a frame: NaN becomes null, timestamps ISO text."""
    return orjson.loads(df.to_json(orient="records", date_format="iso"))


def to_json(data: Any) -> str:
    """JSON text (indented by 2) for a DataFrame (as a list of records), a dict or a list.

    Frames are encoded by pandas' C writer and everything else by orjson: a per-customer
    table of a million rows takes about a second, not a minute."""
    if is_frame(data):
        return data.to_json(orient="records", date_format="iso", indent=2)
    return orjson.dumps(
        data,
        default=_json_default,
        option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    ).decode()


JSON_CHUNK_ROWS = 200_000
_PLACEHOLDER = "sf-json-placeholder-7d1f"


def json_records(
    df: pd.DataFrame,
    *,
    tail_start: int | None = None,
    tail_column: str | None = None,
    more: tuple[pd.DataFrame, pa.Array] | None = None,
) -> Iterator[bytes | memoryview]:
    """:func:`to_json` of a frame (``to_json(orient="records", date_format="iso",
    indent=2)``, the same text, UTF-8), in pieces of :data:`JSON_CHUNK_ROWS` rows, so a
    large table is written as it is encoded.

    Rows from ``tail_start`` on may be known to differ only in the text column
    ``tail_column`` (RFM's prospects: every measure empty). Those rows are written from one
    row encoded by pandas, with each id put in its place, when every other column holds one
    value there and no id needs escaping; otherwise they are encoded like the rest.

    ``more`` is ``(row, values)``: after ``df``'s rows come rows equal to the one-row frame
    ``row`` with ``tail_column`` set to each of ``values`` (text), written the same way, as
    if they were rows of ``df``: the caller need not build a frame of a million prospects."""
    n = len(df)
    head_end = n if tail_start is None or tail_column is None else tail_start
    yield b"[\n"
    sep = b""
    for a in range(0, head_end, JSON_CHUNK_ROWS):
        part = df.iloc[a : min(a + JSON_CHUNK_ROWS, head_end)]
        yield sep
        yield _records_text(part).encode()
        sep = b",\n"
    if head_end < n:
        tail = df.iloc[head_end:]
        template = _uniform_row(tail, str(tail_column))
        for a in range(0, len(tail), JSON_CHUNK_ROWS):
            part = tail.iloc[a : a + JSON_CHUNK_ROWS]
            text = _from_template(template, part[tail_column]) if template else None
            yield sep
            yield text if text is not None else _records_text(part).encode()
            sep = b",\n"
    if more is not None and len(more[1]) and tail_column is not None:
        row, values = more
        template = _uniform_row(row, tail_column)
        for a in range(0, len(values), JSON_CHUNK_ROWS):
            ids = values.slice(a, JSON_CHUNK_ROWS)
            text = _from_template(template, ids) if template else None
            if text is None:
                import numpy as np
                import pandas as pd

                rows = row.iloc[np.zeros(len(ids), dtype=np.intp)].reset_index(drop=True)
                rows[tail_column] = pd.array(ids, dtype=row[tail_column].dtype)
            yield sep
            yield text if text is not None else _records_text(rows).encode()
            sep = b",\n"
    yield b"\n]"


def _records_text(df: pd.DataFrame) -> str:
    """The records of ``df`` as pandas writes them, without the enclosing brackets."""
    return df.to_json(orient="records", date_format="iso", indent=2)[2:-2]


def _uniform_row(tail: pd.DataFrame, column: str) -> tuple[bytes, bytes] | None:
    """The text of ``tail``'s first row around its ``column`` value, when every other
    column holds one value throughout ``tail`` (else None)."""
    import pandas as pd

    for c in tail.columns:
        if c == column:
            continue
        first = tail[c].iloc[0]
        same = tail[c].isna().all() if pd.isna(first) else bool((tail[c] == first).all())
        if not same:
            return None
    row = tail.iloc[:1].copy()
    row[column] = _PLACEHOLDER
    pre, mid, post = _records_text(row).partition(f'"{_PLACEHOLDER}"')
    return (pre.encode(), post.encode()) if mid and _PLACEHOLDER not in post else None


def _from_template(
    template: tuple[bytes, bytes], values: pd.Series | pa.Array
) -> memoryview | None:
    """Rows of the template with each value in place, joined as pandas joins records; None
    when a value is missing or needs escaping."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    if ids.null_count or _needs_escape(ids):
        return None
    pre, post = template
    # each row with its separator; a fresh array's text is one buffer, row after row
    rows = pc.binary_join_element_wise(
        (pre + b'"').decode(), ids, (b'"' + post + b",\n").decode(), ""
    )
    _, offsets, data = rows.buffers()
    used = int(np.frombuffer(offsets, dtype=np.int32)[len(rows)])
    return memoryview(data)[: max(used - 2, 0)]  # no copy: the file reads Arrow's buffer


def _needs_escape(ids: pa.Array) -> bool:
    """Whether any text of ``ids`` has a character pandas' JSON writer escapes: below
    U+0020, beyond U+007F (every byte of such a character in UTF-8 is >= 0x80), or one of
    ``"``, ``\\`` and ``/``. A test over the bytes: a regular expression over a million ids
    costs a third of a second."""
    import numpy as np
    import pyarrow as pa

    ids = ids.cast(pa.large_string()) if pa.types.is_string(ids.type) else ids
    if not len(ids):
        return False
    _, offsets, data = ids.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[ids.offset : ids.offset + len(ids) + 1]
    if data is None or bounds[-1] == bounds[0]:
        return False
    b = np.frombuffer(data, dtype=np.uint8)[bounds[0] : bounds[-1]]
    bad = (b < 0x20) | (b > 0x7F) | (b == 0x22) | (b == 0x5C) | (b == 0x2F)
    return bool(bad.any())


def rich_table(
    df: pd.DataFrame,
    title: str | None = None,
    formats: Mapping[str, Callable[..., str]] | None = None,
) -> Table:
    """A Rich table of a DataFrame, numbers right-aligned."""
    import pandas as pd

    formats = formats or {}
    table = Table(title=title, header_style="bold")
    for col in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for row in df.itertuples(index=False):
        cells = []
        for col, value in zip(df.columns, row, strict=True):
            if col in formats:
                cells.append(formats[col](value))
            elif value is None or (isinstance(value, float) and pd.isna(value)):
                cells.append("–")
            elif isinstance(value, float):
                cells.append(f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}")
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append(str(value))
        table.add_row(*(Text(c) for c in cells))  # data is text, never Rich markup
    return table


def emit(
    data: pd.DataFrame | dict[str, Any] | list[Any],
    fmt: Format,
    out: Path | None = None,
    *,
    table: Callable[[], Any] | None = None,
    json_tail: tuple[int, str] | None = None,
    json_more: tuple[pd.DataFrame, pa.Array] | None = None,
) -> None:
    """Print or write ``data`` in ``fmt``. ``table`` renders it for people when given. A
    frame in JSON is written as it is encoded (:func:`json_records`; ``json_tail`` is its
    ``(tail_start, tail_column)``, and ``json_more`` rows after it: see there)."""
    if fmt == Format.json and is_frame(data):
        start, column = json_tail if json_tail is not None else (None, None)
        pieces = json_records(data, tail_start=start, tail_column=column, more=json_more)  # type: ignore[arg-type]
        _write_pieces(pieces, out)
        return
    if fmt == Format.json:
        text = to_json(data)
    elif fmt == Format.csv:
        import pandas as pd

        frame: Any = data if is_frame(data) else pd.json_normalize(data)
        text = csv_text(frame)
    else:
        if out is not None:
            text = data.to_string(index=False) if is_frame(data) else to_json(data)  # type: ignore[union-attr]
        else:
            if table is None and is_frame(data) and len(data) > TERMINAL_ROWS:
                console.print(rich_table(data.head(TERMINAL_ROWS)))  # type: ignore[union-attr]
                err_console.print(
                    f"showing the first {TERMINAL_ROWS:,} of {len(data):,} rows: write them all "
                    "with --out FILE (and --format csv or json)"
                )
                return
            renderable = (
                table()
                if table is not None
                else (rich_table(data) if is_frame(data) else to_json(data))
            )
            console.print(renderable)
            return
    if out is not None:
        Path(out).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        err_console.print(f"wrote {out}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _write_pieces(pieces: Iterator[bytes | memoryview], out: Path | None) -> None:
    """UTF-8 pieces to ``out`` (or standard output), ending with a newline."""
    if out is None:
        sys.stdout.flush()
        for piece in pieces:
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
        return
    tmp = Path(out).with_name(f".{Path(out).name}.partial")
    try:
        with open(tmp, "wb") as f:
            for piece in pieces:
                f.write(piece)
            f.write(b"\n")
        tmp.replace(out)  # all or nothing: a failure leaves no half-written file
    finally:
        tmp.unlink(missing_ok=True)
    err_console.print(f"wrote {out}")


_VERBOSE = [False]


def set_verbose(on: bool) -> None:
    """``shopfunnel --verbose``: commands say how long each of their phases took."""
    _VERBOSE[0] = on


def verbose() -> bool:
    """Whether ``--verbose`` was given."""
    return _VERBOSE[0]


def say_time(what: str, seconds: float) -> None:
    """With ``--verbose``, one line on standard error: what took how long."""
    if _VERBOSE[0]:
        err_console.print(f"[dim]{what}: {seconds:.2f} s[/]", highlight=False)


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on standard error (a terminal only) while a command counts: anything that
    can take more than two seconds on a large store says what it is doing. Standard output
    stays clean for pipes and files. With ``--verbose`` the phase's time is printed after."""
    import time

    started = time.perf_counter()
    try:
        if not err_console.is_terminal:
            yield
        else:
            with err_console.status(message, spinner="dots"):
                yield
    finally:
        say_time(message.rstrip("…. "), time.perf_counter() - started)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn shopfunnel's errors into a clear message and exit code 1, not a traceback."""
    try:
        yield
    except ShopfunnelError as exc:
        err_console.print("[bold red]error:[/] ", end="")
        err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc


def store_table_command(
    group: typer.Typer, name: str, read: Callable[[Any], Any], doc: str
) -> None:
    """Add to ``group`` the command ``name``: open the store (``--db``) and print what
    ``read(store)`` returns (a table, or ``--format json|csv``, ``--out FILE``). ``read``
    imports what it needs itself, so the command line stays quick to start."""

    def command(
        db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
        format: Annotated[Format, FORMAT_OPTION] = Format.table,
        out: Annotated[Path | None, OUT_OPTION] = None,
    ) -> None:
        from shopfunnel.store.store import Store

        with friendly_errors(), Store(db) as store:
            emit(read(store), format, out)

    command.__doc__ = doc
    command.__name__ = f"{group.info.name or 'group'}_{name}".replace("-", "_")
    group.command(name)(command)
