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
