"""The playbook: which tactic fits which finding, as data (``playbook.toml``).

Tactics come from the seed's five stages (awareness, interest, decision, purchase,
retention). A tactic fits a finding when its ``stage`` is the finding's stage (or
``any``), the finding's ``kind`` (or ``kind:metric``) is one of its ``triggers``, and, when the tactic lists
``steps``, the finding's step or metric is among them. The model file's ``[playbook]``
section overrides a tactic field by field, adds new ones, or switches one off
(``enabled = false``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from shopfunnel.diagnosis.settings_sections import user_section
from shopfunnel.errors import ConfigError

STAGES = ("awareness", "interest", "decision", "purchase", "retention")
_FIELDS = {"stage", "name", "why", "triggers", "steps", "enabled"}


@dataclass(frozen=True)
class Tactic:
    """One tactic: its stage, a one-line why, and the finding kinds that call for it."""

    key: str
    stage: str
    name: str
    why: str
    triggers: tuple[str, ...]
    steps: tuple[str, ...] = ()
    enabled: bool = True

    def fits(
        self, kind: str, stage: str | None, step: str | None = None, metric: str | None = None
    ) -> bool:
        if not self.enabled or (
            kind not in self.triggers and f"{kind}:{metric}" not in self.triggers
        ):
            return False
        if self.stage != "any" and self.stage != (stage or "").lower():
            return False
        return not self.steps or step in self.steps or metric in self.steps


class Playbook:
    """The tactics, in file order (the order is the order of recommendation)."""

    def __init__(self, tactics: list[Tactic]):
        self.tactics = tactics

    def for_finding(
        self,
        kind: str,
        stage: str | None,
        step: str | None = None,
        metric: str | None = None,
        limit: int = 3,
    ) -> list[Tactic]:
        """The first ``limit`` tactics that fit a finding (see the module docstring)."""
        return [t for t in self.tactics if t.fits(kind, stage, step, metric)][:limit]

    def __getitem__(self, key: str) -> Tactic:
        for t in self.tactics:
            if t.key == key:
                return t
        raise KeyError(key)

    def __len__(self) -> int:
        return len(self.tactics)


def default_playbook_data() -> dict[str, dict[str, Any]]:
    text = (
        resources.files("shopfunnel.diagnosis")
        .joinpath("playbook.toml")
        .read_text(encoding="utf-8")
    )
    return tomllib.loads(text)


def load_playbook(model: Any = None) -> Playbook:
    """The default playbook with the model file's ``[playbook]`` section applied."""
    merged = default_playbook_data()
    for key, override in user_section(model, "playbook").items():
        if not isinstance(override, dict):
            raise ConfigError(
                f"[playbook] {key} = {override!r}: each tactic is a table, e.g. [playbook.{key}]"
            )
        unknown = set(override) - _FIELDS
        if unknown:
            raise ConfigError(
                f"[playbook.{key}]: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_FIELDS))}"
            )
        merged[key] = {**merged.get(key, {}), **override}
    tactics = []
    for key, spec in merged.items():
        missing = {"stage", "why", "triggers"} - set(spec)
        if missing:
            raise ConfigError(f"[playbook.{key}] needs {', '.join(sorted(missing))}")
        stage = str(spec["stage"]).lower()
        if stage not in (*STAGES, "any"):
            raise ConfigError(
                f"[playbook.{key}] stage = {spec['stage']!r}: use one of {', '.join(STAGES)} or any"
            )
        tactics.append(
            Tactic(
                key=key,
                stage=stage,
                name=spec.get("name", key.replace("_", " ").capitalize()),
                why=spec["why"],
                triggers=tuple(spec["triggers"]),
                steps=tuple(spec.get("steps", ())),
                enabled=bool(spec.get("enabled", True)),
            )
        )
    return Playbook(tactics)
