"""Admin API over rules, segments and visitors. Views parse, call one service or selector, and
format; every rule write goes through the rule services (audit + rule-set bump)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.admin_apis import EventOut, event_rows
from analytics.models import Event, Visitor
from analytics.services import visitor_erase
from analytics.validation import USER_ID_MESSAGE, USER_PSEUDO_ID_RE
from portfolio.api.admin_auth import AdminApiView
from portfolio.api.admin_schema import (
    AUTH_ERRORS,
    INVALID,
    MALFORMED,
    NOT_FOUND,
    AdminError,
    parse_id,
)
from portfolio.api.fields import StrictCharField
from portfolio.storable import is_storable

from .conditions import conditions_problems
from .models import PersonalizationRule, RuleChange, RuleSource, RuleStatus, Segment
from .schema import ENUM_SOURCE
from .selectors import profile_get, segment_counts, variant_for
from .services import (
    RULE_CONTENT_FIELDS,
    rule_activate,
    rule_archive,
    rule_create,
    rule_delete,
    rule_update,
)
from .validation import (
    LIST_LIMITS,
    MAX_ITEM_LENGTH,
    MAX_REASONING_LENGTH,
    rule_catalog_errors,
    rule_errors,
)

VISITOR_EVENTS = 100
SEGMENT_CODE_MAX = 40  # Segment.code's max_length

# --- Rules ----------------------------------------------------------------------------------------


# What the schema says of a rule's list items, as rule_errors checks them: text with something
# besides whitespace, no NUL. `x-enum-source` names the catalog table whose entries become the
# item's `enum` in the published schema once that table has rows (personalization/schema.py),
# since rule_catalog_errors then refuses anything else.
_ITEM_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
_ITEM_SOURCES = {
    "priority_sections": "sections",
    "featured_projects": "projects",
    "highlight_skills": "skills",
}


def _items(name: str) -> serializers.ListField:
    # The whole array's schema, on a class of its own (DRF rebuilds field instances, dropping
    # anything set on them): drf-spectacular has no keyword for uniqueItems (rule_errors
    # refuses repeats) nor for the items' pattern.
    schema = {
        "type": "array",
        "items": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ITEM_LENGTH,
            "pattern": _ITEM_PATTERN,
            ENUM_SOURCE: _ITEM_SOURCES[name],
        },
        "maxItems": LIST_LIMITS[name],
        "uniqueItems": True,
    }
    field_class = extend_schema_field(schema)(type("RuleItemsField", (serializers.ListField,), {}))
    return field_class(
        child=StrictCharField(max_length=MAX_ITEM_LENGTH, trim_whitespace=False),
        max_length=LIST_LIMITS[name],
        default=list,
    )


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^[-a-zA-Z0-9_]{1,40}$",
        "description": "e.g. ML_ENGINEER",
        ENUM_SOURCE: "segments",
    }
)
class SegmentCodeField(serializers.SlugRelatedField):
    """A segment by code. Text the database could not even compare (NUL bytes, lone
    surrogates, non-strings, over-long) is refused before the lookup."""

    def to_internal_value(self, data: Any) -> Segment:
        if not isinstance(data, str) or not is_storable(data) or len(data) > SEGMENT_CODE_MAX:
            self.fail("invalid")
        return super().to_internal_value(data)


class RuleIn(serializers.Serializer):
    """The seed's ValidatedRuleOverride, plus catalog checks. PUT replaces every field (lists
    left out become empty); PATCH changes the fields sent."""

    segment = SegmentCodeField(slug_field="code", queryset=Segment.objects.all())
    priority_sections = _items("priority_sections")
    featured_projects = _items("featured_projects")
    highlight_skills = _items("highlight_skills")
    reasoning = StrictCharField(
        max_length=MAX_REASONING_LENGTH, allow_blank=True, default="", trim_whitespace=False
    )
    source = serializers.ChoiceField(  # type: ignore[assignment]  # stubs: Field.source
        choices=RuleSource.choices, default=RuleSource.ADMIN
    )
    status = serializers.ChoiceField(
        choices=RuleStatus.choices,
        required=False,
        help_text="draft (default on create), active (activates it, archiving the segment's "
        "current rule) or archived.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = rule_errors(attrs) or rule_catalog_errors(attrs)
        if errors:
            raise ValidationError(errors)
        return attrs


class RuleCreateIn(RuleIn):
    """POST: a new rule is a draft or goes live at once; archiving one is a later change."""

    status = serializers.ChoiceField(
        choices=[RuleStatus.DRAFT.value, RuleStatus.ACTIVE.value],
        required=False,
        help_text="draft (default) or active (activates it, archiving the segment's current rule).",
    )


class RuleConflict(APIException):
    """A change the rule's current state forbids, whatever the body's own validity: 409, as
    HTTP has it, so that a schema-valid body is never a 422."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The rule's current state forbids this change."


CONFLICT = {
    409: OpenApiResponse(
        AdminError,
        description="The rule's state forbids the change: another segment than the rule's, "
        "or back to draft once active or archived.",
    )
}


class RuleOut(serializers.ModelSerializer):
    segment: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = PersonalizationRule
        fields = [
            "id",
            "segment",
            "version",
            "status",
            "source",
            "priority_sections",
            "featured_projects",
            "highlight_skills",
            "reasoning",
            "created_at",
            "created_by",
            "activated_at",
        ]


class RuleChangeOut(serializers.ModelSerializer):
    class Meta:
        model = RuleChange
        fields = ["id", "action", "actor", "version", "created_at", "before", "after"]


class RuleDetailOut(RuleOut):
    changes = serializers.SerializerMethodField()

    class Meta(RuleOut.Meta):
        fields = [*RuleOut.Meta.fields, "changes"]

    @extend_schema_field(RuleChangeOut(many=True))
    def get_changes(self, rule: PersonalizationRule) -> list[dict[str, Any]]:
        changes = RuleChange.objects.filter(rule_ref=rule.pk)[:100]
        return list(RuleChangeOut(changes, many=True).data)


RuleListOut = inline_serializer(
    "AdminRuleList", fields={"count": serializers.IntegerField(), "results": RuleOut(many=True)}
)
RULE_ID = OpenApiParameter("rule_id", OpenApiTypes.INT, OpenApiParameter.PATH)


class RuleFilters(serializers.Serializer):
    segment = serializers.CharField(
        max_length=SEGMENT_CODE_MAX, required=False, help_text="Segment code"
    )
    status = serializers.ChoiceField(choices=RuleStatus.choices, required=False)


def _actor(request: Request) -> str:
    return request.user.get_username()


def _rule_or_404(rule_id: str) -> PersonalizationRule:
    pk = parse_id(rule_id)
    rule = (
        PersonalizationRule.objects.select_related("segment").filter(pk=pk).first()
        if pk is not None
        else None
    )
    if rule is None:
        raise Http404
    return rule


def _apply_status(rule: PersonalizationRule, wanted: str | None, actor: str) -> None:
    if wanted is None or wanted == rule.status:
        return
    if wanted == RuleStatus.ACTIVE:
        rule_activate(rule=rule, actor=actor)
    elif wanted == RuleStatus.ARCHIVED:
        rule_archive(rule=rule, actor=actor)
    else:
        raise RuleConflict("A rule cannot go back to draft.")


class RuleListApi(AdminApiView):
    @extend_schema(
        parameters=[RuleFilters],
        responses={200: RuleListOut, **AUTH_ERRORS, **INVALID},
        tags=["admin"],
        summary="List rules",
        operation_id="admin_rules_list",
    )
    def get(self, request: Request) -> Response:
        filters = RuleFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rules = PersonalizationRule.objects.select_related("segment")
        if segment := filters.validated_data.get("segment"):
            rules = rules.filter(segment__code=segment)
        if wanted := filters.validated_data.get("status"):
            rules = rules.filter(status=wanted)
        data = RuleOut(rules, many=True).data
        return Response({"count": len(data), "results": data})

    @extend_schema(
        request=RuleCreateIn,
        responses={201: RuleDetailOut, **MALFORMED, **AUTH_ERRORS, **INVALID},
        tags=["admin"],
        summary="Create a rule (a draft unless status is active)",
        operation_id="admin_rules_create",
    )
    def post(self, request: Request) -> Response:
        body = RuleCreateIn(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        rule = rule_create(
            segment=data["segment"],
            priority_sections=data["priority_sections"],
            featured_projects=data["featured_projects"],
            highlight_skills=data["highlight_skills"],
            reasoning=data["reasoning"],
            source=data["source"],
            actor=_actor(request),
            activate=data.get("status") == RuleStatus.ACTIVE,
        )
        return Response(RuleDetailOut(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailApi(AdminApiView):
    @extend_schema(
        parameters=[RULE_ID],
        responses={200: RuleDetailOut, **AUTH_ERRORS, **NOT_FOUND},
        tags=["admin"],
        summary="One rule with its change history",
        operation_id="admin_rules_retrieve",
    )
    def get(self, request: Request, rule_id: str) -> Response:
        return Response(RuleDetailOut(_rule_or_404(rule_id)).data)

    @extend_schema(
        parameters=[RULE_ID],
        request=RuleIn,
        responses={
            200: RuleDetailOut,
            **MALFORMED,
            **AUTH_ERRORS,
            **NOT_FOUND,
            **CONFLICT,
            **INVALID,
        },
        tags=["admin"],
        summary="Replace a rule's content (an active rule gets a new version)",
        operation_id="admin_rules_update",
    )
    def put(self, request: Request, rule_id: str) -> Response:
        return self._write(request, rule_id, partial=False)

    @extend_schema(
        parameters=[RULE_ID],
        request=RuleIn(partial=True),
        responses={
            200: RuleDetailOut,
            **MALFORMED,
            **AUTH_ERRORS,
            **NOT_FOUND,
            **CONFLICT,
            **INVALID,
        },
        tags=["admin"],
        summary="Change some of a rule's fields",
        operation_id="admin_rules_partial_update",
    )
    def patch(self, request: Request, rule_id: str) -> Response:
        return self._write(request, rule_id, partial=True)

    @extend_schema(
        parameters=[RULE_ID],
        responses={204: OpenApiResponse(description="Deleted."), **AUTH_ERRORS, **NOT_FOUND},
        tags=["admin"],
        summary="Delete a rule (its history stays)",
        operation_id="admin_rules_destroy",
    )
    def delete(self, request: Request, rule_id: str) -> Response:
        rule_delete(rule=_rule_or_404(rule_id), actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _write(self, request: Request, rule_id: str, *, partial: bool) -> Response:
        rule = _rule_or_404(rule_id)
        body = RuleIn(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "segment" in data and data["segment"].pk != rule.segment_id:
            raise RuleConflict("A rule keeps its segment; create a rule for the other one.")
        actor = _actor(request)
        with transaction.atomic():
            changes = {name: data[name] for name in RULE_CONTENT_FIELDS if name in data}
            rule = rule_update(rule=rule, actor=actor, changes=changes)
            _apply_status(rule, data.get("status"), actor)
        rule.refresh_from_db()
        return Response(RuleDetailOut(rule).data)


# --- Segments -------------------------------------------------------------------------------------


class AdminSignal(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]  # stubs: Field.label
    event_name = serializers.CharField()
    conditions = serializers.ListField(child=serializers.DictField())
    weight = serializers.FloatField()
    cap = serializers.FloatField()
    half_life_days = serializers.FloatField(allow_null=True)
    is_active = serializers.BooleanField()
    condition_errors = serializers.ListField(
        child=serializers.CharField(),
        help_text="Why the stored conditions cannot run (scoring skips the signal); empty if "
        "they can.",
    )


class AdminActiveRuleRef(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()


class AdminSegment(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    prior = serializers.FloatField()
    topic_tags = serializers.ListField(child=serializers.CharField())
    recommendation = serializers.CharField()
    visitors = serializers.IntegerField(help_text="Visitors whose profile is this segment.")
    active_rule = AdminActiveRuleRef(allow_null=True)
    signals = AdminSignal(many=True)


_SegmentListOut = inline_serializer(
    "AdminSegmentList",
    fields={"count": serializers.IntegerField(), "results": AdminSegment(many=True)},
)
_SIGNAL_FIELDS = ["id", "label", "event_name", "conditions", "weight", "cap", "half_life_days"]


class SegmentListApi(AdminApiView):
    @extend_schema(
        responses={200: _SegmentListOut, **AUTH_ERRORS},
        tags=["admin"],
        summary="Segment definitions, signals and visitor counts",
        operation_id="admin_segments_list",
    )
    def get(self, request: Request) -> Response:
        counts = segment_counts()
        active = {
            segment_id: {"id": pk, "version": version}
            for pk, segment_id, version in PersonalizationRule.objects.filter(
                status=RuleStatus.ACTIVE
            ).values_list("pk", "segment_id", "version")
        }
        results = [
            {
                "code": s.code,
                "name": s.name,
                "description": s.description,
                "prior": s.prior,
                "topic_tags": s.topic_tags,
                "recommendation": s.recommendation,
                "visitors": counts.get(s.code, 0),
                "active_rule": active.get(s.pk),
                "signals": [
                    {
                        **{f: getattr(sig, f) for f in _SIGNAL_FIELDS},
                        "is_active": sig.is_active,
                        "condition_errors": conditions_problems(sig.conditions),
                    }
                    for sig in s.signals.all()
                ],
            }
            for s in Segment.objects.prefetch_related("signals")
        ]
        return Response({"count": len(results), "results": results})


# --- Visitors -------------------------------------------------------------------------------------

VISITOR_ID = OpenApiParameter(
    "user_pseudo_id", str, OpenApiParameter.PATH, pattern=f"^{USER_PSEUDO_ID_RE.pattern}$"
)
_VisitorOut = inline_serializer(
    "AdminVisitor",
    fields={
        "user_pseudo_id": serializers.CharField(),
        "first_seen": serializers.DateTimeField(allow_null=True),
        "last_seen": serializers.DateTimeField(allow_null=True),
        "event_count": serializers.IntegerField(),
        "traits": serializers.DictField(),
        "segment": serializers.CharField(allow_null=True),
        "confidence": serializers.FloatField(allow_null=True),
        "scores": serializers.DictField(child=serializers.FloatField()),
        "explanation": serializers.DictField(),
        "variant": serializers.ChoiceField(choices=["personalized", "holdout"]),
        "segmented_at": serializers.DateTimeField(allow_null=True),
        "events": EventOut(many=True, help_text=f"The latest {VISITOR_EVENTS}, newest first."),
    },
)


def _visitor_id(user_pseudo_id: str) -> str:
    if not USER_PSEUDO_ID_RE.fullmatch(user_pseudo_id):
        raise ValidationError({"user_pseudo_id": [USER_ID_MESSAGE]})
    return user_pseudo_id


class VisitorDetailApi(AdminApiView):
    @extend_schema(
        parameters=[VISITOR_ID],
        responses={200: _VisitorOut, **AUTH_ERRORS, **NOT_FOUND, **INVALID},
        tags=["admin"],
        summary="One visitor: events, scores and explanation",
        operation_id="admin_visitors_retrieve",
    )
    def get(self, request: Request, user_pseudo_id: str) -> Response:
        uid = _visitor_id(user_pseudo_id)
        visitor = Visitor.objects.filter(user_pseudo_id=uid).first()
        profile = profile_get(user_pseudo_id=uid)
        events = Event.objects.filter(user_pseudo_id=uid).order_by("-occurred_at", "-id")
        rows = event_rows(events[:VISITOR_EVENTS])
        if visitor is None and profile is None and not rows:
            raise Http404
        return Response(
            {
                "user_pseudo_id": uid,
                "first_seen": visitor.first_seen if visitor else None,
                "last_seen": visitor.last_seen if visitor else None,
                "event_count": visitor.event_count if visitor else len(rows),
                "traits": visitor.traits if visitor else {},
                "segment": profile.segment if profile else None,
                "confidence": profile.confidence if profile else None,
                "scores": profile.scores if profile else {},
                "explanation": profile.explanation if profile else {},
                "variant": variant_for(uid),
                "segmented_at": profile.computed_at if profile else None,
                "events": rows,
            }
        )

    @extend_schema(
        parameters=[VISITOR_ID],
        responses={
            204: OpenApiResponse(description="Erased (also when nothing was stored)."),
            **AUTH_ERRORS,
            **INVALID,
        },
        tags=["admin"],
        summary="Erase a visitor: events, profile, cache",
        operation_id="admin_visitors_destroy",
    )
    def delete(self, request: Request, user_pseudo_id: str) -> Response:
        visitor_erase(user_pseudo_id=_visitor_id(user_pseudo_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
