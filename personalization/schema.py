"""The published schema enumerates what the admin API checks against the database.

A rule names a segment, and its sections, projects and skills must be in the content catalog
once the catalog has entries (validation.rule_catalog_errors). No static schema can say which;
so a field marked with ENUM_SOURCE gets, each time /api/schema/ is served (drf-spectacular
builds it per request), an `enum` of the table's current values. An empty table adds none:
then the API checks nothing either (a fresh install's empty catalog), and a segment-less
database has no rule to write anyway. A client that caches the schema sees the values of the
moment it fetched it; a value added later is accepted all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

ENUM_SOURCE = "x-enum-source"


def enum_values() -> dict[str, list[str]]:
    """Each ENUM_SOURCE name → the values the API accepts, sorted, from the database."""
    from .models import Project, Section, Segment, Skill

    sources: dict[str, Callable[[], Iterable[str]]] = {
        "segments": lambda: Segment.objects.values_list("code", flat=True),
        "sections": lambda: Section.objects.values_list("slug", flat=True),
        "projects": lambda: Project.objects.values_list("slug", flat=True),
        "skills": lambda: Skill.objects.values_list("name", flat=True),
    }
    return {name: sorted(values()) for name, values in sources.items()}


def apply_enums(result: dict[str, Any], values: Mapping[str, list[str]]) -> dict[str, Any]:
    """Put `values[source]` as the `enum` of every schema marked `ENUM_SOURCE: source`."""

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            source = node.get(ENUM_SOURCE)
            if isinstance(source, str) and values.get(source):
                node["enum"] = list(values[source])
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(result.get("components", {}))
    return result


def enumerate_from_database(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook. The schema is documentation: when the database
    cannot be read it is served without the enums rather than not at all."""
    try:
        values = enum_values()
    except Exception:  # any failure to read leaves the schema as it was
        logger.warning("schema.enums_unavailable", exc_info=True)
        return result
    return apply_enums(result, values)
