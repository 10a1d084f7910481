"""Form fields shared by every app's admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models
from django.forms.fields import InvalidJSONInput

from portfolio.api.json_depth import json_too_deep, too_deep_message


class DepthLimitedJSONField(forms.JSONField):
    """forms.JSONField that refuses JSON nested past JSON_MAX_DEPTH with a form error. Django's
    parses the text first, and json.loads lets RecursionError through (a 500) on a few thousand
    levels; so does redisplaying the refused text, which parses it again (bound_data)."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and _too_deep(value):
            raise forms.ValidationError(too_deep_message(), code="too_deep")
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        if isinstance(data, str) and not self.disabled and _too_deep(data):
            return InvalidJSONInput(data)
        return super().bound_data(data, initial)


def _too_deep(text: str) -> bool:
    return json_too_deep(text.encode("utf-8", "surrogatepass"))


# ModelAdmin.formfield_overrides / InlineModelAdmin.formfield_overrides for every admin form.
JSON_FORMFIELD_OVERRIDES: dict[type[models.Field], dict[str, Any]] = {
    models.JSONField: {"form_class": DepthLimitedJSONField},
}
