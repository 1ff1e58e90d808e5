"""The dashboard's Experiments page: the list, one experiment's results, escaped names."""

from __future__ import annotations

from server.kit import ADMIN_PASSWORD, LiveServer

SCRIPT = "<script>alert('x')</script>"


def exposures(experiment: str) -> list[dict]:
    out = []
    for p in range(240):
        variant = str(p % 2)
        out.append(
            {
                "event_id": f"x{p}",
                "ts": 1709287200 + p * 60,
                "event": "experiment_exposure",
                "anonymous_id": f"a{p}",
                "properties": {"experiment": experiment, "variant": variant},
            }
        )
        if p % 5 == 0 or (variant == "1" and p % 5 == 1):
            out.append(
                {
                    "event_id": f"o{p}",
                    "ts": 1709287200 + p * 60 + 30,
                    "event": "purchase",
                    "anonymous_id": f"a{p}",
                    "order_id": f"o{p}",
                    "value": 20,
                    "currency": "EUR",
                }
            )
    return out


def test_the_experiments_page_lists_and_reads_an_experiment_with_names_escaped(tmp_path) -> None:
    with LiveServer(tmp_path / "s.duckdb") as live:
        live.send("/v1/batch", {"batch": exposures(SCRIPT)})
        live.flush()
        assert live.client.get("/experiments", follow_redirects=False).status_code == 303
        live.client.post("/login", data={"password": ADMIN_PASSWORD})
        listing = live.client.get("/experiments")
        assert listing.status_code == 200 and SCRIPT not in listing.text
        assert "&lt;script&gt;" in listing.text
        page = live.client.get("/experiments", params={"name": SCRIPT})
        assert page.status_code == 200 and SCRIPT not in page.text
        assert "purchase" in page.text and "the split looks as intended" in page.text
        bayes = live.client.get("/experiments", params={"name": SCRIPT, "engine": "bayesian"})
        assert "chance_to_win" in bayes.text
        missing = live.client.get("/experiments", params={"name": "nope"})
        assert missing.status_code == 422 and "experiment list" in missing.text
