"""Durations written the way people say them: ``"30m"``, ``"7d"``, ``"2w"``."""

from __future__ import annotations

import re

from shopfunnel.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration_seconds(value: str | int | float) -> float:
    """Return the number of seconds in ``value``.

    ``value`` is a number of seconds, or a string such as ``"90s"``, ``"30m"``, ``"12h"``,
    ``"7d"`` or ``"2w"``. Zero and negative durations are refused.
    """
    if isinstance(value, bool):
        raise ConfigError(f"duration {value!r} is not valid: give e.g. '30m', '7d' or seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _PATTERN.match(value)
        if not match:
            raise ConfigError(
                f"duration {value!r} is not valid: write a number and a unit "
                "(s, m, h, d or w), e.g. '30m' or '7d'"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"duration {value!r} must be positive")
    return seconds
