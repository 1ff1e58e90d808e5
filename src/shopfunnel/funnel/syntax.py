"""The funnel as a marketer types it: steps with filters, exclusions, optional steps.

One syntax for every face (the command line, the dashboard's funnel form):

``view_item[item_category=shoes],add_to_cart,purchase``
    three steps; the first only for events whose ``item_category`` is ``shoes``.
``view_item[item_category=shoes|boots, device=mobile]``
    a filter per key (all must hold); ``|`` separates values, any of which matches.
``view_item["utm campaign"="spring, sale"]``
    a key or value with a comma, bracket, ``=``, ``|`` or space is written in double
    quotes; ``\\"`` and ``\\\\`` inside quotes are a quote and a backslash.
``refund`` / ``refund:2-3`` (exclusions)
    an excluded event between the first and last step, or between steps 2 and 3.

Values are compared as text, as :class:`~shopfunnel.funnel.api.Step` filters are. A
malformed text raises :class:`~shopfunnel.errors.ConfigError` naming the position and
what was expected.
"""

from __future__ import annotations

from shopfunnel.errors import ConfigError
from shopfunnel.funnel.api import Step

SPECIAL = set(',[]=|"')


class _Reader:
    def __init__(self, text: str, what: str):
        self.text, self.i, self.what = text, 0, what

    def error(self, expected: str) -> ConfigError:
        got = repr(self.text[self.i]) if self.i < len(self.text) else "the end"
        return ConfigError(
            f"{self.what} {self.text!r}: expected {expected} at character {self.i + 1}, "
            f"found {got}. Example: view_item[item_category=shoes|boots],add_to_cart,purchase "
            '(quote keys or values with commas or brackets: ["utm campaign"="spring, sale"])'
        )

    def skip_spaces(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def word(self, expected: str, stop: str = "") -> str:
        """A bare word (up to a special character or one of ``stop``) or a quoted string."""
        self.skip_spaces()
        if self.peek() == '"':
            return self.quoted()
        start = self.i
        while self.i < len(self.text) and self.text[self.i] not in SPECIAL | set(stop):
            self.i += 1
        value = self.text[start : self.i].strip()
        if not value:
            raise self.error(expected)
        return value

    def quoted(self) -> str:
        self.i += 1  # the opening quote
        out = []
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch == "\\" and self.i + 1 < len(self.text):
                out.append(self.text[self.i + 1])
                self.i += 2
                continue
            if ch == '"':
                self.i += 1
                return "".join(out)
            out.append(ch)
            self.i += 1
        raise self.error('a closing "')

    def expect(self, ch: str, expected: str) -> None:
        self.skip_spaces()
        if self.peek() != ch:
            raise self.error(expected)
        self.i += 1


def _step(r: _Reader, stop: str = "") -> Step:
    event = r.word("an event name", stop)
    r.skip_spaces()
    where: dict[str, str | tuple[str, ...]] = {}
    if r.peek() == "[":
        r.i += 1
        while True:
            key = r.word("a property key")
            if key in where:
                raise ConfigError(
                    f"{r.what} {r.text!r}: the key {key!r} is given twice in one step"
                )
            r.expect("=", "'=' after the key")
            values = [r.word("a value")]
            r.skip_spaces()
            while r.peek() == "|":
                r.i += 1
                values.append(r.word("a value after '|'"))
                r.skip_spaces()
            where[key] = values[0] if len(values) == 1 else tuple(values)
            if r.peek() == ",":
                r.i += 1
                continue
            r.expect("]", "',' or ']' after a filter")
            break
    return Step(event, where)


def parse_steps(text: str) -> list[Step]:
    """The steps of ``text`` (see the module docstring), in order."""
    r = _Reader(text, "steps")
    steps = [_step(r)]
    r.skip_spaces()
    while r.peek() == ",":
        r.i += 1
        steps.append(_step(r))
        r.skip_spaces()
    if r.i != len(text):
        raise r.error("',' between steps")
    return steps


def parse_exclusion(text: str, n_steps: int) -> tuple[Step, int, int]:
    """An exclusion ``event[filters]`` (between step 1 and the last) or
    ``event[filters]:A-B`` (between steps A and B)."""
    r = _Reader(text, "exclusion")
    step = _step(r, stop=":")
    r.skip_spaces()
    a, b = 1, n_steps
    if r.peek() == ":":
        r.i += 1
        span = text[r.i :].strip()
        parts = span.split("-")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(f"exclusion {text!r}: write the steps as FROM-TO, e.g. refund:2-3")
        a, b = (int(p) for p in parts)
        r.i = len(text)
    if r.i != len(text):
        raise r.error("':FROM-TO' or the end")
    if not 1 <= a < b <= n_steps:
        raise ConfigError(
            f"exclusion {text!r}: need 1 ≤ FROM < TO ≤ {n_steps} (the number of steps)"
        )
    return step, a, b


def format_step(step: Step) -> str:
    """The text that :func:`parse_steps` reads back as ``step``."""

    def quote(s: str) -> str:
        if s and not (SPECIAL & set(s)) and s.strip() == s and not any(c.isspace() for c in s):
            return s
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    if not step.where:
        return quote(step.event)
    filters = []
    for key, value in step.where.items():
        values = value if isinstance(value, tuple | list) else (value,)
        filters.append(f"{quote(str(key))}={'|'.join(quote(str(v)) for v in values)}")
    return f"{quote(step.event)}[{', '.join(filters)}]"
