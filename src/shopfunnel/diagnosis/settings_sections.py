"""Reading a section of the model file (``shopfunnel.toml``) that the diagnosis owns.

``[benchmarks]`` and ``[playbook]`` belong to the diagnosis. The model file itself is
read by :func:`shopfunnel.model.load_model`; this helper takes whatever the caller has
(a loaded model, a plain dict, or nothing) and returns one section as a dict.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from shopfunnel.errors import ConfigError


def user_section(model: Any, name: str) -> dict[str, Any]:
    """The ``[name]`` table of the model file, ``{}`` when it has none.

    ``model`` may be a :class:`shopfunnel.model.Model` (its kept ``sections``), a dict of
    parsed TOML, a path to a TOML file, or None (``shopfunnel.toml`` in the current
    directory when there is one).
    """
    if model is None:
        from shopfunnel.model import load_model

        return user_section(load_model(), name)
    elif isinstance(model, str | Path):
        data = _read(Path(model))
    elif isinstance(model, dict):
        data = model
    elif hasattr(model, "sections"):
        data = model.sections
    else:
        raise ConfigError(
            f"model={model!r} is not a model: pass shopfunnel.model.load_model(), a dict or a path"
        )
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(
            f"[{name}] in the model file must be a table, got {type(section).__name__}"
        )
    return section


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"model file {str(path)!r} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
