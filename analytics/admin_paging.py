"""Admin paging and export for tables too big to count: events, visitors, dead letters."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.utils.functional import cached_property

from portfolio.storable import is_storable

# Below this the exact COUNT(*) is cheap, and the estimate would look odd on a small install.
ESTIMATE_ABOVE = 100_000
# A filtered list counts at most this many rows; pages past it are not offered.
COUNT_CAP = 100_000


def estimated_rows(table: str) -> int | None:
    """PostgreSQL's planner estimate (pg_class.reltuples, kept by ANALYZE/autovacuum); None
    elsewhere or before the table was ever analyzed."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


class EstimatedCountPaginator(Paginator):
    """No COUNT(*) over a whole big table per page view: the unfiltered list uses the planner's
    estimate, a filtered one counts up to COUNT_CAP rows."""

    @cached_property
    def count(self) -> int:
        queryset: Any = self.object_list
        if not queryset.query.where:
            estimate = estimated_rows(queryset.model._meta.db_table)
            if estimate is not None and estimate > ESTIMATE_ABOVE:
                return estimate
        return int(queryset[:COUNT_CAP].count())


class _Echo:
    def write(self, value: str) -> str:
        return value


# Spreadsheets run cells starting with these as formulas.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
    text = "" if text is None else str(text)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_rows(header: list[str], rows: Iterator[tuple[Any, ...]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


def has_nul(request: HttpRequest) -> bool:
    """PostgreSQL refuses NUL in text, so a filter carrying one would raise DataError (500).
    (The shared check: a query string decodes with U+FFFD for bad UTF-8, so NUL is what comes.)"""
    return any(
        not is_storable(key) or not all(is_storable(value) for value in values)
        for key, values in request.GET.lists()
    )


class SafeInputAdmin(admin.ModelAdmin):
    """Garbage in the query string or an action's selection answers 400 or an error message,
    not a database error: NUL bytes (PostgreSQL refuses them in text) and ids that are not
    ids (the stock admin raises ValueError on them)."""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if has_nul(request):
            return HttpResponseBadRequest("Query parameters must not contain NUL characters.")
        return super().changelist_view(request, extra_context)

    def response_action(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        pk = self.model._meta.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                if not is_storable(value):
                    raise ValidationError("NUL")
                number = pk.to_python(value)
                if isinstance(number, int) and not -(2**63) <= number < 2**63:
                    raise ValidationError("out of range")  # SQLite would overflow
        except ValidationError:
            self.message_user(request, "Invalid selection.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)
