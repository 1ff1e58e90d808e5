"""Experiment exposures from other tools' events, as the canonical ``experiment_exposure``.

Sources name the event and its fields differently; each becomes one ``experiment_exposure``
whose properties hold ``experiment`` and ``variant`` (both strings), the source's other
fields kept beside them and its own event name in ``source_event``:

- GA4: ``experiment_impression`` (Google Optimize's, ``exp_variant_string`` such as
  ``OPT-AbC123-1``: the experiment is the part before the last ``-``, the variant the part
  after) and ``experiment_viewed`` (GrowthBook's GA4 integration: ``experiment_id``,
  ``variation_id``);
- Segment / RudderStack: ``Experiment Viewed`` (the A/B testing spec: ``experiment_id`` or
  ``experiment_name``, ``variation_id`` or ``variation_name``);
- the tracking snippet and the collector send ``experiment_exposure`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shopfunnel.store.schema import EXPOSURE_EVENT

# Event names (as each source writes them) that record an exposure.
SOURCE_NAMES = frozenset(
    {"experiment_impression", "experiment_viewed", "Experiment Viewed", EXPOSURE_EVENT}
)
EXPERIMENT_KEYS = ("experiment", "experiment_id", "experiment_key", "experiment_name", "exp_id")
VARIANT_KEYS = (
    "variant",
    "variation_id",
    "variant_id",
    "variation_key",
    "variation_name",
    "variant_name",
)


def _first(props: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = props.get(key)
        if value is not None and str(value).strip() != "":
            return str(value)
    return None


def as_exposure(name: str, properties: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The canonical name and properties of a source event: an exposure (see the module
    docstring) gets ``experiment``, ``variant`` and ``source_event``; any other event is
    returned unchanged."""
    props = dict(properties)
    if name not in SOURCE_NAMES:
        return name, props
    experiment, variant = _first(props, EXPERIMENT_KEYS), _first(props, VARIANT_KEYS)
    combined = props.get("exp_variant_string")
    if (experiment is None or variant is None) and isinstance(combined, str) and "-" in combined:
        head, _, tail = combined.rpartition("-")
        experiment, variant = experiment or head, variant or tail
    if experiment is not None:
        props["experiment"] = experiment
    if variant is not None:
        props["variant"] = variant
    if name != EXPOSURE_EVENT:
        props["source_event"] = name
    return EXPOSURE_EVENT, props
