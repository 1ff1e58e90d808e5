"""``shopfunnel spark-cache``: where Spark keeps prepared events, and clearing them
(:mod:`shopfunnel.store.spark_cache`, docs/spark.md)."""

from __future__ import annotations

import typer

from shopfunnel.cli.application import app

spark_cache_app = typer.Typer(
    help=(
        "The events Spark prepared with the store's load rules (persons, sessions, "
        "channels), kept as Parquet per source: show where, or clear them.\n\n"
        "The directory: SHOPFUNNEL_SPARK_CACHE (off disables), else "
        "~/.cache/shopfunnel/spark. docs/spark.md."
    ),
    no_args_is_help=True,
)
app.add_typer(spark_cache_app, name="spark-cache")


@spark_cache_app.command("path")
def spark_cache_path() -> None:
    """Print the cache directory (or 'off')."""
    from shopfunnel.store.spark_cache import default_cache_dir

    root = default_cache_dir()
    typer.echo("off" if root is None else str(root))


@spark_cache_app.command("clear")
def spark_cache_clear(
    cache_dir: str | None = typer.Option(
        None, "--dir", help="The cache directory (default: the one `spark-cache path` prints)."
    ),
) -> None:
    """Delete every prepared-events entry; the next Spark command on a source prepares it again."""
    from shopfunnel.store.spark_cache import clear_cache

    n = clear_cache(cache_dir)
    typer.echo(f"deleted {n} prepared-events entr{'y' if n == 1 else 'ies'}")
