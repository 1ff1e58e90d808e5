"""One person's journey: identities, sessions, events, stage changes, orders, audiences,
flows, experiments and programs, for support and marketing (:mod:`.person`)."""

from __future__ import annotations

from shopfunnel.journey.person import Journey, PersonMatch, find_persons, person_journey

__all__ = ["Journey", "PersonMatch", "find_persons", "person_journey"]
