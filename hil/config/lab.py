"""The bench file's ``[labgrid]`` table: which labgrid place the bench is, or which tags
to reserve one by (docs/labgrid.md).

``place`` names one place (its ``tags``, if given, are what ``hil labgrid sync-places``
puts on it); ``tags`` alone (an inline table of strings) reserves any free place carrying
them; ``coordinator`` is the default ``HOST:PORT`` (else ``LG_COORDINATOR``).
Tag keys follow labgrid's rule ``[a-z][a-z0-9_]+`` (labgrid 26.0.1,
``labgrid/remote/common.py``, ``TAG_KEY``); values are kept to letters, digits, ``_``,
``.`` and ``-`` (assumed: labgrid's own value check accepts more).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hil.config.toml_source import Table

TAG_KEY = re.compile(r"[a-z][a-z0-9_]+")
TAG_VALUE = re.compile(r"[A-Za-z0-9_.-]+")
PLACE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
ADDRESS = re.compile(r"[^\s:]+:\d{1,5}")


@dataclass(frozen=True)
class LabgridConfig:
    """One place by name, or any free place whose tags match; and the coordinator to ask
    (None: ``LG_COORDINATOR``)."""

    place: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    coordinator: str | None = None

    def describe(self) -> str:
        if self.place is not None:
            return f"place {self.place}"
        return "a place tagged " + ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items()))


def read_labgrid(table: Table | None) -> LabgridConfig | None:
    """Read ``[labgrid]`` (absent: None); errors name the key and what is allowed."""
    if table is None:
        return None
    place = None
    if table.has("place"):
        place = table.string("place", pattern=PLACE_NAME, pattern_text="letters, digits, _ . -")
    coordinator = None
    if table.has("coordinator"):
        coordinator = table.string("coordinator", pattern=ADDRESS, pattern_text="HOST:PORT")
    tags: dict[str, str] = {}
    tag_table = table.table("tags")
    if tag_table is not None:
        for key in list(tag_table.data):
            if not TAG_KEY.fullmatch(key):
                raise tag_table.error(key, f"{key!r} is not a labgrid tag key", TAG_KEY.pattern)
            tags[key] = tag_table.string(
                key, pattern=TAG_VALUE, pattern_text="letters, digits, _ . -"
            )
        tag_table.finish()
    table.finish()
    if place is None and not tags:
        raise table.error(
            None,
            "give place (this bench's place) or tags (reserve any free place carrying them)",
            'place = "bench-3", or tags = { kind = "lab", units = "4" }',
        )
    return LabgridConfig(place=place, tags=tags, coordinator=coordinator)
