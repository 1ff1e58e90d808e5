"""Giveaways: the draw is repeated from its record by an independent implementation and by
the shell command the docs give; earlier winners can be kept out; preview lists."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest
from tests.conftest import log

from shopfunnel.errors import ConfigError
from shopfunnel.programs.giveaways import draw_giveaway, get_draw, preview_list, verify_draw

PEOPLE = ["ana", "bo", "chen", "dana", "émile", "fay", "gus", "hal", "ivy", "jo"]


@pytest.fixture
def shop(store):
    store.load(log(*[(p, i, "page_view") for i, p in enumerate(PEOPLE)]))
    return store


def by_hand(entrants: list[str], seed: str, k: int) -> list[str]:
    keyed = sorted((hashlib.sha256(f"{seed}\0{e}".encode()).hexdigest(), e) for e in entrants)
    return [e for _, e in keyed[:k]]


def test_the_draw_is_reproduced_from_its_record(shop):
    d = draw_giveaway(shop, "june", "all", winners=3, seed="lottery-2024-06-01: 4 8 15 16 23 42")
    record = get_draw(shop, "june")
    assert record.entrants == tuple(sorted(PEOPLE, key=str.encode))
    assert record.entrants_sha256 == hashlib.sha256("\n".join(record.entrants).encode()).hexdigest()
    assert list(record.winners) == by_hand(list(record.entrants), record.seed, 3) == list(d.winners)
    assert (
        verify_draw(shop, "june")["winners_match"] and verify_draw(shop, "june")["entrants_match"]
    )


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_the_shell_command_in_the_docs_gives_the_same_key():
    seed, entrant = "s3ed", "émile"
    out = subprocess.run(
        ["sh", "-c", 'printf "%s\\0%s" "$SEED" "$ENTRANT" | sha256sum'],
        env={"SEED": seed, "ENTRANT": entrant, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    from shopfunnel.programs.giveaways import entrant_key

    assert out == entrant_key(seed, entrant)


def test_a_random_seed_is_recorded_and_a_draw_is_never_redone(shop):
    d = draw_giveaway(shop, "july", "all", winners=2)
    assert len(d.seed) == 32 and verify_draw(shop, "july")["winners_match"]
    with pytest.raises(ConfigError, match="never redone"):
        draw_giveaway(shop, "july", "all", winners=2)


def test_winners_of_earlier_draws_can_be_kept_out(shop):
    first = draw_giveaway(shop, "d1", "all", winners=4, seed="a")
    second = draw_giveaway(shop, "d2", "all", winners=4, seed="b", exclude_winners_of=["d1"])
    assert not set(first.winners) & set(second.entrants)
    third = draw_giveaway(shop, "d3", "all", winners=2, seed="c", exclude_winners_of="all")
    assert set(third.entrants) == set(PEOPLE) - set(first.winners) - set(second.winners)
    assert verify_draw(shop, "d3")["winners_match"]
    with pytest.raises(ConfigError, match="no entrant"):
        draw_giveaway(shop, "d4", list(first.winners), winners=1, exclude_winners_of=["d1"])


def test_more_winners_than_entrants_gives_every_entrant(shop):
    d = draw_giveaway(shop, "small", ["bo", "ana"], winners=5, seed="x")
    assert sorted(d.winners) == ["ana", "bo"]


def purchase(person, day, value):
    return (person, day * 24 * 60, "purchase", {"order_id": f"{person}-{day}", "value": value})


def test_the_rfm_preview_lists_champions_by_spend_up_to_the_limit(store):
    # c_i orders i + 1 times, the last on day 20 + i: c9 and c8 score 5, 5, 5 (champions),
    # c7 scores 4 on each (loyal)
    rows = [purchase(f"c{i}", 20 + i - k, 10.0) for i in range(10) for k in range(i + 1)]
    store.load(log(*rows))
    assert preview_list(store, by="rfm", limit=5)["person_id"].tolist() == ["c9", "c8"]
    top = preview_list(store, by="rfm", limit=3, groups=["champions", "loyal"])
    assert top["person_id"].tolist() == ["c9", "c8", "c7"] and top["rank"].tolist() == [1, 2, 3]
    assert top["group"].tolist() == ["champions", "champions", "loyal"]
    assert top["monetary"].tolist() == [100.0, 90.0, 80.0]
