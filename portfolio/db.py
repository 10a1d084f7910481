"""Set-based writes that the ORM makes slow on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import connection, models


def bulk_upsert(
    model: type[models.Model],
    objects: Sequence[models.Model],
    *,
    unique_field: str,
    update_fields: Sequence[str],
) -> None:
    """Insert `objects`, or where `unique_field` already has the value, update `update_fields`.

    What bulk_create(update_conflicts=True) does, in one statement. On PostgreSQL the rows go as
    one JSON document that jsonb_to_recordset expands: psycopg quotes one string instead of an
    array per column, which in Python is most of the CPU of writing a batch of profiles.
    """
    if not objects:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(
            objects,
            update_conflicts=True,
            unique_fields=[unique_field],
            update_fields=list(update_fields),
        )
        return
    if not isinstance(model._meta.pk, models.fields.AutoFieldMixin):
        raise ValueError(f"{model.__name__}: bulk_upsert needs a database-generated primary key")
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    document = json.dumps(
        [{f.column: _json_value(f, f.pre_save(obj, True)) for f in fields} for obj in objects],
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    record = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in fields)
    updates = ", ".join(
        f"{quote(c)} = EXCLUDED.{quote(c)}" for c in (_column(model, n) for n in update_fields)
    )
    # Only model metadata (quoted names, column types) is spliced in; the rows are a parameter.
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) "  # noqa: S608
        f"SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) AS t({record}) "
        f"ON CONFLICT ({quote(_column(model, unique_field))}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [document])


def _column(model: type[models.Model], name: str) -> str:
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field.column


def _json_value(field: models.Field, value: Any) -> Any:
    if value is None or isinstance(field, models.JSONField):
        return value
    value = field.get_prep_value(value)
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return str(value) if isinstance(value, Decimal | UUID) else value
