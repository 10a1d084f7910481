"""drf-spectacular postprocessing: what the generated schema cannot see by itself."""

from __future__ import annotations

from typing import Any

# Prometheus' text exposition format, as django-prometheus serves it.
METRICS_OPERATION = {
    "get": {
        "operationId": "metrics_retrieve",
        "summary": "Prometheus metrics",
        "description": "Prometheus text exposition format, for scraping.",
        "tags": ["ops"],
        "security": [{}],
        "responses": {
            "200": {
                "description": "Metrics in Prometheus text format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    }
}


# DRF's CharField refuses NUL (PostgreSQL cannot store it); JSON Schema regex, not Python's.
NO_NUL_PATTERN = "^[^\\u0000]*$"


def _forbid_nul(schema: Any) -> None:
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not {"pattern", "enum", "format"} & schema.keys():
        schema["pattern"] = NO_NUL_PATTERN
    for child in schema.get("properties", {}).values():
        _forbid_nul(child)
    _forbid_nul(schema.get("items"))


def forbid_nul_in_text(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Say what DRF enforces on text it parses: request bodies' components and query
    parameters carry no NUL character. (The collectors read raw bodies; those stay free.)"""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request"):
            _forbid_nul(component)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":
                    _forbid_nul(parameter.get("schema"))
    return result


def allow_empty_optional_query_params(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """An optional query parameter sent empty (`?event_name=&offset=`, as API.md writes it) is
    read as not sent: that is how DRF serializers read a query string. Say so in the schema."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result


# Bodies the generator cannot tell are required (a oneOf of two shapes has no `required`).
REQUIRED_BODIES = {("/api/events", "post")}


def require_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    for path, method in REQUIRED_BODIES:
        body = result.get("paths", {}).get(path, {}).get(method, {}).get("requestBody")
        if body is not None:
            body["required"] = True
    return result


# Any JSON value whose text (keys too) PostgreSQL's jsonb can store: no NUL. Event params are
# objects of these; the events API refuses anything else with 422.
JSON_VALUE = {
    "description": "Any JSON value without NUL in its text or keys.",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL_PATTERN, "nullable": True},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        },
    ],
}


def add_json_value_component(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["JsonValue"] = JSON_VALUE
    return result


def add_metrics_endpoint(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """/metrics is django-prometheus' plain Django view, invisible to DRF; API.md lists it."""
    result.setdefault("paths", {})["/metrics"] = METRICS_OPERATION
    return result
