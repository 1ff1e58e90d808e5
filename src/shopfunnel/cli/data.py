"""Commands that put events into a store and describe it: ``ingest`` and ``info``."""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from shopfunnel.cli.application import app
from shopfunnel.cli.output import (
    DB_OPTION,
    FORMAT_OPTION,
    OUT_OPTION,
    Format,
    console,
    emit,
    friendly_errors,
    working,
)
from shopfunnel.errors import ConfigError, InputError
from shopfunnel.format import csv_cell
from shopfunnel.store.staged import LoadResult, Staged, joinable, same_columns, together
from shopfunnel.store.store import Store

# the formats of shopfunnel.ingest.FORMATS (tests/test_cli_info.py checks they match), named
# here so that `info` does not import the importers (and pandas with them)
FORMAT_NAMES = ("csv", "ga4", "jsonl", "orders", "parquet", "rees46", "segment")


def _parse_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(
                f"--map {pair!r} is not valid: write canonical=source, e.g. --map ts=created_at"
            )
        key, value = pair.split("=", 1)
        mapping[key.strip()] = value.strip()
    return mapping


@app.command()
def ingest(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Event files: CSV, Parquet or JSON Lines (or a source format, see --format)."
        ),
    ],
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"Source format, guessed from the file name if omitted: {', '.join(FORMAT_NAMES)}.",
        ),
    ] = None,
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error",
            help="fail: load nothing if any row is bad (default). skip: load the good rows, write the bad ones to --rejects.",
        ),
    ] = "fail",
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Where --on-error skip writes rejected rows (default: <file>.rejects.csv).",
        ),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="Column mapping canonical=source, repeatable: --map ts=created_at --map event=event_type.",
        ),
    ] = None,
    extra: Annotated[
        str,
        typer.Option(
            "--extra",
            help="Columns that are not canonical: error (default) or properties (kept as JSON).",
        ),
    ] = "error",
    mapping_file: Annotated[
        Path | None,
        typer.Option(
            "--mapping-file", help='A TOML file with a [columns] table of canonical = "source".'
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding", help="Text encoding of CSV files (default utf-8), e.g. latin-1."
        ),
    ] = None,
) -> None:
    """Load event files into the store. Loading the same rows twice adds nothing.

    Each file is checked row by row before anything is written: with the default
    `--on-error fail` one bad row stops the load and nothing is written; the message names
    the file, line, column and reason.

    Several files with the same columns (a month of daily exports) load together, up to
    about a million rows a load, while the next files are read: much faster than one load
    a file. If one of them has a bad row, they load one by one as above.
    """
    with friendly_errors():
        if on_error not in ("fail", "skip"):
            raise ConfigError(f"--on-error {on_error!r} is not valid: use fail or skip")
        if extra not in ("error", "properties"):
            raise ConfigError(f"--extra {extra!r} is not valid: use error or properties")
        mapping = _parse_map(map_ or [])
        if mapping_file is not None:
            import tomllib

            try:
                mapping = {**tomllib.loads(mapping_file.read_text()).get("columns", {}), **mapping}
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read the mapping file {mapping_file}: {exc}") from exc
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from shopfunnel.ingest import read

        with Store(db) as store:
            written: set[Path] = set()
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:

                def load(name: str, staged: Staged, mode: str) -> LoadResult:
                    task = progress.add_task(f"{name}: writing", total=None)

                    def note(msg: str) -> None:
                        progress.update(task, description=f"{name}: {msg}")

                    try:
                        return store.load_staged(
                            staged,
                            on_error=mode,  # type: ignore[arg-type]
                            progress=note,
                        )
                    finally:
                        progress.remove_task(task)

                def report(name: str, path: Path, result: LoadResult) -> None:
                    console.print(
                        f"{name}: read {result.rows_read:,} rows, added {result.rows_added:,}, "
                        f"{result.duplicates:,} already stored, {len(result.rejects):,} rejected"
                    )
                    if result.rejects:
                        target = rejects or path.with_name(path.name + ".rejects.csv")
                        # One --rejects file collects the rejects of every file of this run.
                        _write_rejects(target, result, first=target not in written)
                        written.add(target)
                        console.print(f"  rejected rows and reasons written to {target}")

                def load_one(path: Path, staged: Staged) -> None:
                    report(str(path), path, load(path.name, staged, on_error))

                # Files that stage as Arrow tables of the same columns load together, up to
                # about a million rows a load (ADR 0198): a load pays a part that grows with
                # the store once, not once a file. A group that does not load (a bad row) is
                # loaded again file by file, as before (the failed load wrote nothing): its
                # messages and rejects name their own file and line.
                group: list[tuple[Path, Staged]] = []

                def flush() -> None:
                    if len(group) == 1:
                        load_one(*group[0])
                    elif group:
                        joined = together([s for _, s in group])
                        try:
                            result = load(joined.source, joined, "fail")
                        except InputError:  # a bad row, or a file that cannot load at all
                            for path, staged in group:
                                load_one(path, staged)
                        else:
                            report(joined.source, group[-1][0], result)
                    group.clear()

                options = {} if encoding is None else {"encoding": encoding}

                def stage(path: Path) -> Staged:
                    return read(
                        path,
                        format=format,
                        mapping=mapping or None,
                        extra_columns=extra,  # type: ignore[arg-type]
                        **options,
                    )

                staged_files = read_ahead(files, stage)
                try:
                    for coming in files:
                        task = progress.add_task(f"{coming.name}: reading", total=None)
                        try:
                            path, staged = next(staged_files)
                        except Exception:
                            flush()  # the files read before it load as they would have
                            raise
                        finally:
                            progress.remove_task(task)
                        if not joinable(staged) or not same_columns(
                            [*(s for _, s in group), staged]
                        ):
                            flush()
                            if not joinable(staged):
                                load_one(path, staged)
                                continue
                        group.append((path, staged))
                        if sum(s.table.num_rows for _, s in group) >= GROUP_ROWS:
                            flush()
                    flush()
                finally:
                    staged_files.close()  # the reads still running end before the store closes


def read_ahead(
    paths: list[Path], stage: Callable[[Path], Staged], ahead: int = 2
) -> Generator[tuple[Path, Staged], None, None]:
    """Each path with its staged file, in order, the next ``ahead`` files staged on
    other threads meanwhile (ADR 0198: a small file's mapping runs on one DuckDB thread,
    and the importers' queries leave the GIL). A file that cannot be read raises when its
    turn comes, after every file before it; at most ``ahead`` files wait in memory."""
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="read-ahead") as pool:
        waiting: deque[tuple[Path, Future[Staged]]] = deque()
        rest = iter(paths)
        for path in islice(rest, ahead):
            waiting.append((path, pool.submit(stage, path)))
        try:
            while waiting:
                path, future = waiting.popleft()
                staged = future.result()
                following = next(rest, None)
                if following is not None:
                    waiting.append((following, pool.submit(stage, following)))
                yield path, staged
        finally:
            for _, future in waiting:
                future.cancel()


def _write_rejects(target: Path, result: LoadResult, *, first: bool) -> None:
    """Write (``first``) or append a load's rejects to the CSV file ``target``."""
    with open(target, "w" if first else "a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if first:
            writer.writerow(["source", "line", "column", "reason", "value"])
        for r in result.rejects:
            writer.writerow([csv_cell(c) for c in (r.source, r.line, r.column, r.reason, r.value)])


# Rows from which the files gathered for one load are loaded (ADR 0198): about the
# store's large-load size, so a group holds no more in memory than one large file does.
GROUP_ROWS = 1_000_000


@app.command()
def info(
    db: Annotated[str, DB_OPTION] = "shopfunnel.duckdb",
    format: Annotated[Format, FORMAT_OPTION] = Format.table,
    out: Annotated[Path | None, OUT_OPTION] = None,
) -> None:
    """What the store holds: events, persons, sessions, orders, date range, events by name and channel."""
    with friendly_errors():
        with Store(db, read_only=True) as store, working("counting the store…"):
            # the counts kept beside the timeline, else one compiled pass over it when it is
            # current (store/counts.py; numba starts only then), else the SQL's scans
            data = store.info(timeline_pass=True)

        def render() -> object:
            from rich.console import Group

            head = ("events", "persons", "sessions", "orders", "first_event", "last_event")
            return Group(
                _small_table(f"store {db}", head, [tuple(data[k] for k in head)]),
                _small_table(
                    "events by name", ("event", "events"), list(data["events_by_name"].items())
                ),
                _small_table(
                    "sessions by channel",
                    ("channel", "sessions"),
                    list(data["sessions_by_channel"].items()),
                ),
            )

        emit(data, format, out, table=render)


def _small_table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Table:
    """A few rows as :func:`shopfunnel.cli.output.rich_table` lays out a DataFrame (a
    column of integers right-aligned with thousands separators, a missing value as "–"),
    without pandas: ``info`` then imports none."""
    from rich.text import Text

    table = Table(title=title, header_style="bold")
    for i, name in enumerate(columns):
        values = [row[i] for row in rows]
        numeric = bool(values) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in values
        )
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(
            *(Text("–" if v is None else f"{v:,}" if isinstance(v, int) else str(v)) for v in row)
        )
    return table
