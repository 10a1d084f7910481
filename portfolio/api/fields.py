"""Serializer fields that accept exactly what the published schema says."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

_INTEGER_TEXT = re.compile(r"[-+]?[0-9]+")


class StrictIntegerField(serializers.IntegerField):
    """An integer written as one. DRF's IntegerField also takes 5.0, "5.0" and true, which the
    schema's `type: integer` does not allow."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, (bool, float)) or (
            isinstance(data, str) and not _INTEGER_TEXT.fullmatch(data)
        ):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Text sent as text. DRF's CharField turns 0, 1.5 and true into "0", "1.5" and "True",
    which the schema's `type: string` does not allow. (CharField already refuses NUL and lone
    surrogates, the text PostgreSQL cannot store: portfolio/storable.py.)"""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
