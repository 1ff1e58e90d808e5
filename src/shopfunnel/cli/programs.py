"""What the programme commands share (``offer``, ``referral``, ``giveaway``, ``preview``,
``recommend``: one module each in this package): the audience read from the options, a
person list made ready for delivery, a summary table; and the sample store's programmes that
``demo`` records.

Every figure is defined in docs/programs.md; the commands parse, call one function of
:mod:`shopfunnel.programs` and lay out what it returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopfunnel.cli.output import rich_table
from shopfunnel.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from shopfunnel.store.store import Store


def audience_spec(
    audience: str | None, persons_file: Path | None, default: str | None = "all"
) -> Any:
    """The audience spec from the options: a spec text, or the ids in a file."""
    if audience is not None and persons_file is not None:
        raise ConfigError("give --audience or --persons-file, not both")
    if persons_file is None:
        if audience is None and default is None:
            raise ConfigError("say who: --audience SPEC (e.g. customers) or --persons-file FILE")
        return audience or default
    try:
        lines = [line.strip() for line in persons_file.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise ConfigError(
            f"cannot read --persons-file {str(persons_file)!r}: {exc.strerror}"
        ) from exc
    lines = [line for line in lines if line]
    if lines and "person_id" in [c.strip() for c in lines[0].split(",")]:
        import pandas as pd

        return pd.read_csv(persons_file, dtype=str)["person_id"].dropna().tolist()
    return lines


def list_out(store: Store, frame: pd.DataFrame, export: str, contacts: bool) -> pd.DataFrame:
    """A person list for delivery: contacts joined when asked for or for an ad platform."""
    from shopfunnel.audiences import PLATFORMS, export_audience
    from shopfunnel.audiences import contacts as contacts_of

    if export not in PLATFORMS:
        raise ConfigError(f"--export {export!r} is not known: use one of {', '.join(PLATFORMS)}")
    if contacts or export != "csv":
        frame = frame.merge(contacts_of(store), on="person_id", how="left")
    return export_audience(frame, export, contacts=contacts)  # type: ignore[arg-type]


COUNTS = frozenset(
    {
        "codes_issued",
        "codes_redeemed",
        "reuses",
        "uses_outside_period",
        "redeemed_by_other",
        "redeemed_orders",
        "orders_shipped_free",
        "comparable_persons",
        "comparable_orders",
        "holder_orders",
    }
)


def summary_table(summary: dict[str, Any], title: str) -> Any:
    """A two-column table (figure, value) of a programme's summary, each value formatted
    by its kind: rates as percents, counts as integers, amounts as money."""
    import pandas as pd

    from shopfunnel.format import cell

    def kind(key: str) -> str | None:
        if key.endswith(("_rate", "_share_of_revenue", "uplift", "_margin")):
            return "pct"
        if key in COUNTS:
            return "int"
        if key == "breakeven_extra_orders":
            return "number"
        return "money" if isinstance(summary[key], float) else None

    rows = [{"figure": k, "value": cell(v, kind(k))} for k, v in summary.items()]
    return rich_table(pd.DataFrame(rows), title=title)


def load_sample_programs(
    store: Store, *, seed: int, start: Any = "2024-01-01", days: int = 120
) -> dict[str, int]:
    """Record the sample store's offer, its codes and the referral codes (the ones its
    events carry: :mod:`shopfunnel.sample.programs`) in a store loaded with that sample."""
    import pandas as pd

    from shopfunnel.programs.audience import qualifying_persons
    from shopfunnel.programs.codes import import_codes
    from shopfunnel.programs.offers import create_offer, get_offer, offer_persons
    from shopfunnel.programs.referrals import import_referral_codes
    from shopfunnel.sample import programs as sp
    from shopfunnel.sample.incidents import to_datetime

    begins, ends = sp.offer_period(to_datetime(start), days)
    create_offer(
        store,
        sp.OFFER_NAME,
        starts_at=begins,
        ends_at=ends,
        tiers=sp.OFFER_TIERS,
        audience="customers",
        description="the sample store's offer to its customers",
    )
    holders = offer_persons(store, get_offer(store, sp.OFFER_NAME))
    codes = sp.offer_codes_for(seed, holders)
    import_codes(
        store, sp.OFFER_NAME, pd.DataFrame({"person_id": list(codes), "code": list(codes.values())})
    )
    customers = qualifying_persons(store, "customers")
    refs = sp.referral_codes_for(seed, customers)
    import_referral_codes(
        store, pd.DataFrame({"person_id": list(refs), "code": list(refs.values())})
    )
    return {"offer_codes": len(codes), "referral_codes": len(refs)}
