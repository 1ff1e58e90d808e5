"""Audiences: abandoned carts and platform exports hashed as Meta and Google expect."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from conftest import log
from shopfunnel.audiences import (
    NoContactsError,
    abandoned_carts,
    export_audience,
    normalize_email,
    normalize_phone,
    sha256_hex,
)
from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store

# Digests from ../shared/REFERENCES.md §7, computed independently with hashlib.
EMAIL_DIGEST = "32c97a063b41feacaa44f43cc5df374905fc0a05139dc8235f5b8d448e735323"
META_PHONE_DIGEST = "26cb4f0c031f8e3956a484b9af6e06210874c4f08470f03f4f8a4d411da745ec"
GOOGLE_PHONE_DIGEST = "4feaaadc0ff47808bdc09d5ed71dadd9ac8d92aeac7a56972c58e697a61c69f0"


def item(item_id: str, price: float, quantity: int = 1) -> list[dict]:
    return [
        {
            "item_id": item_id,
            "item_name": item_id.title(),
            "item_category": "x",
            "price": price,
            "quantity": quantity,
        }
    ]


def test_email_is_trimmed_and_lowercased_but_tags_and_dots_stay() -> None:
    assert normalize_email("  John.Doe+Shop@Example.COM ") == "john.doe+shop@example.com"
    assert sha256_hex(normalize_email("  John.Doe+Shop@Example.COM ")) == EMAIL_DIGEST


def test_phone_digests_differ_between_meta_and_google_by_the_plus() -> None:
    assert normalize_phone("+1 (650) 555-0123", "meta") == "16505550123"
    assert normalize_phone("+1 (650) 555-0123", "google") == "+16505550123"
    assert sha256_hex(normalize_phone("+1 (650) 555-0123", "meta")) == META_PHONE_DIGEST
    assert sha256_hex(normalize_phone("+1 (650) 555-0123", "google")) == GOOGLE_PHONE_DIGEST


def test_a_phone_without_country_code_cannot_be_matched() -> None:
    assert normalize_phone("(650) 555-0123", "meta") is None
    assert normalize_phone("0044 20 7946 0958", "meta") == "442079460958"


def cart_store(store: Store) -> Store:
    props = json.dumps({"email": "  John.Doe+Shop@Example.COM ", "phone": "+1 (650) 555-0123"})
    store.load(
        log(
            # a: adds two items, removes one, never buys -> abandoned with the kept item
            ("a", 0, "add_to_cart", {"items": item("shoe", 50.0)}),
            ("a", 5, "add_to_cart", {"items": item("sock", 5.0, 2)}),
            ("a", 6, "remove_from_cart", {"items": item("sock", 5.0, 2)}),
            ("a", 7, "page_view", {"properties": props}),
            # b: adds and buys -> not abandoned
            ("b", 0, "add_to_cart", {"items": item("hat", 20.0)}),
            ("b", 9, "purchase", {"order_id": "o1", "value": 20.0}),
            # c: bought earlier, then carted again without buying -> abandoned, only the new cart counts
            ("c", 0, "add_to_cart", {"items": item("hat", 20.0)}),
            ("c", 1, "purchase", {"order_id": "o2", "value": 20.0}),
            ("c", 30, "add_to_cart", {"items": item("coat", 120.0)}),
            # d: carted too recently to call it abandoned (the store ends at minute 240)
            ("d", 230, "add_to_cart", {"items": item("scarf", 15.0)}),
            ("e", 240, "page_view"),
        )
    )
    return store


def test_abandoned_carts_lists_carts_without_a_later_purchase(store: Store) -> None:
    carts = abandoned_carts(cart_store(store), after="1h")
    assert carts["person_id"].tolist() == ["c", "a"]
    assert carts["cart_value"].tolist() == [120.0, 50.0]
    assert carts.set_index("person_id").loc["a", "items"] == "Shoe"
    assert carts.set_index("person_id").loc["a", "email"].strip() == "John.Doe+Shop@Example.COM"


def test_a_shorter_wait_includes_the_recent_cart(store: Store) -> None:
    carts = abandoned_carts(cart_store(store), after="5m")
    assert set(carts["person_id"]) == {"a", "c", "d"}


def test_platform_exports_hash_contacts_and_drop_people_without_any(store: Store) -> None:
    carts = abandoned_carts(cart_store(store), after="1h")
    meta = export_audience(carts, "meta")
    assert meta.to_dict("records") == [
        {
            "EMAIL": EMAIL_DIGEST,
            "PHONE": META_PHONE_DIGEST,
            "EXTERN_ID": hashlib.sha256(b"a").hexdigest(),
        }
    ]
    google = export_audience(carts, "google")
    assert google.to_dict("records") == [{"Email": EMAIL_DIGEST, "Phone": GOOGLE_PHONE_DIGEST}]
    assert len(export_audience(carts, "csv")) == 2


def test_an_unknown_platform_is_refused() -> None:
    import pandas as pd

    with pytest.raises(ConfigError, match="use one of csv, meta, google"):
        export_audience(pd.DataFrame({"person_id": []}), "tiktok")  # type: ignore[arg-type]


# -- test vectors from each platform's documented normalisation (REFERENCES §7) --------------
# Each expected digest is hashlib over a string normalised by hand from the rules: Meta e-mail
# trimmed and lower-cased (dots and +tags kept); Meta phone digits only, country code, no
# leading zeros; Google e-mail the same, Google phone E.164 with the "+".
VECTORS = [
    # raw e-mail, raw phone, hand-normalised e-mail, Meta phone, Google phone
    (
        "  John.Doe+Shop@Example.COM ",
        "+1 (650) 555-0123",
        "john.doe+shop@example.com",
        "16505550123",
        "+16505550123",
    ),
    (
        "MARIE.Curie@Example.FR",
        "+33 1 23 45 67 89",
        "marie.curie@example.fr",
        "33123456789",
        "+33123456789",
    ),
    (
        "\tsam.o'neil@example.co.uk\n",
        "0044 20 7946 0958",
        "sam.o'neil@example.co.uk",
        "442079460958",
        "+442079460958",
    ),
    ("Ana@Example.PT", "+44 (0)20 7946 0958", "ana@example.pt", "442079460958", "+442079460958"),
]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vector_audience() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": [f"p{i}" for i in range(len(VECTORS))],
            "email": [v[0] for v in VECTORS],
            "phone": [v[1] for v in VECTORS],
        }
    )


def test_meta_export_matches_hashes_of_hand_normalised_contacts() -> None:
    meta = export_audience(vector_audience(), "meta")
    assert meta["EMAIL"].tolist() == [sha(v[2]) for v in VECTORS]
    assert meta["PHONE"].tolist() == [sha(v[3]) for v in VECTORS]
    assert meta["EXTERN_ID"].tolist() == [sha(f"p{i}") for i in range(len(VECTORS))]
    # and the first row against the digests published in the reference, computed elsewhere
    assert (meta["EMAIL"][0], meta["PHONE"][0]) == (EMAIL_DIGEST, META_PHONE_DIGEST)


def test_google_export_matches_hashes_of_hand_normalised_contacts() -> None:
    google = export_audience(vector_audience(), "google")
    assert list(google.columns) == ["Email", "Phone"]
    assert google["Email"].tolist() == [sha(v[2]) for v in VECTORS]
    assert google["Phone"].tolist() == [sha(v[4]) for v in VECTORS]
    assert google["Phone"][0] == GOOGLE_PHONE_DIGEST


# The documented rules, written again here from the platforms' pages (not from the package):
# Meta Custom Audiences: EMAIL "trim, lowercase"; PHONE "digits only (drop +, spaces, symbols,
# letters), drop leading zeros, include country code". Google Customer Match: "lowercase, remove
# extra spaces, format phones as E.164 with the +". One step both leave implicit: a "(0)" after
# the country code is the national trunk digit, which E.164 numbers never contain.
def documented_email(raw: str) -> str:
    return raw.strip().lower()


def documented_meta_phone(raw: str) -> str:
    digits = "".join(ch for ch in raw.replace("(0)", "") if ch in "0123456789")
    return digits.lstrip("0")


def documented_google_phone(raw: str) -> str:
    return "+" + documented_meta_phone(raw)


MORE_RAW = [  # raw e-mail, raw phone: each normalised above, then hashed with hashlib
    ("  Chloe.Martin+News@Example.org", "+33 6 12 34 56 78"),
    ("OLA@EXAMPLE.NO ", "+47 22-33-44-55"),
    ("x.y@example.com", "00 1 650.555.0199"),
]


def test_exports_equal_the_documented_normalisation_hashed_independently() -> None:
    raw = [(v[0], v[1]) for v in VECTORS] + MORE_RAW
    audience = pd.DataFrame(
        {
            "person_id": [f"p{i}" for i in range(len(raw))],
            "email": [e for e, _ in raw],
            "phone": [ph for _, ph in raw],
        }
    )
    meta = export_audience(audience, "meta")
    google = export_audience(audience, "google")
    assert meta["EMAIL"].tolist() == [sha(documented_email(e)) for e, _ in raw]
    assert meta["PHONE"].tolist() == [sha(documented_meta_phone(ph)) for _, ph in raw]
    assert google["Email"].tolist() == [sha(documented_email(e)) for e, _ in raw]
    assert google["Phone"].tolist() == [sha(documented_google_phone(ph)) for _, ph in raw]
    # the hand-normalised strings of VECTORS agree with the rules written out
    for e, ph, email, meta_phone, google_phone in VECTORS:
        assert (documented_email(e), documented_meta_phone(ph), documented_google_phone(ph)) == (
            email,
            meta_phone,
            google_phone,
        )


def test_no_contact_is_in_clear_in_a_platform_file() -> None:
    audience = vector_audience()
    for platform in ("meta", "google"):
        text = export_audience(audience, platform).to_csv(index=False).lower()  # type: ignore[arg-type]
        for _raw_email, _raw_phone, email, meta_phone, _google_phone in VECTORS:
            assert email not in text and meta_phone not in text and "p0" not in text


def test_a_csv_export_has_contacts_only_when_asked() -> None:
    audience = vector_audience()
    assert list(export_audience(audience, "csv").columns) == ["person_id"]
    assert list(export_audience(audience, "csv", contacts=True).columns) == [
        "person_id",
        "email",
        "phone",
    ]


@pytest.mark.parametrize("platform", ["meta", "google"])
def test_a_platform_export_without_contacts_says_so_and_why(platform: str) -> None:
    audience = pd.DataFrame(
        {"person_id": ["a", "b"], "email": [None, " "], "phone": ["(650) 555-0123", None]}
    )
    with pytest.raises(
        NoContactsError,
        match=r"none of the 2 person\(s\) has an e-mail and 1 phone "
        r"number\(s\) lack a country code",
    ):
        export_audience(audience, platform)  # type: ignore[arg-type]
    with pytest.raises(NoContactsError, match="audience is empty"):
        export_audience(audience.iloc[:0], platform)  # type: ignore[arg-type]


def test_the_cli_writes_no_platform_file_without_contacts(tmp_path) -> None:
    from typer.testing import CliRunner

    from shopfunnel.cli import app

    db = tmp_path / "shop.duckdb"
    with Store(db) as s:
        s.load(log(("a", 0, "add_to_cart", {"items": item("shoe", 50.0)}), ("e", 240, "page_view")))
    out = tmp_path / "meta.csv"
    result = CliRunner().invoke(
        app,
        [
            "audience",
            "abandoned-carts",
            "--db",
            str(db),
            "--export",
            "meta",
            "--format",
            "csv",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1
    assert "no Meta file written" in result.output and "contacts only" in result.output
    assert not out.exists()
