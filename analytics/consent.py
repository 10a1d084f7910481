"""Consent: which visitors said no to being profiled, as their traits record it.

The sources report consent as visitor traits: gtag.js hits carry Consent Mode's `gcs`
(G1<ad_storage><analytics_storage>, 1 granted, 0 denied) → `consent.ad_storage` and
`consent.analytics_storage`; the Measurement Protocol's `consent` object →
`consent.ad_user_data` and `consent.ad_personalization`. Denied analytics storage or ad
personalization keeps a visitor out of profiling when CONSENT_MODE is `honour` (the default):
their events are stored as sent, they get no segment and see the default experience. `ignore`
is for sites that enforce consent before any tag loads.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db.models import Q

from .models import Visitor

DENIED = "DENIED"
GRANTED = "GRANTED"
PROFILING_TRAITS = ("consent.analytics_storage", "consent.ad_personalization")


def honoured() -> bool:
    return settings.CONSENT_MODE != "ignore"


def profiling_denied(traits: dict[str, object]) -> bool:
    return honoured() and any(traits.get(key) == DENIED for key in PROFILING_TRAITS)


def profiling_denied_q() -> Q:
    """Visitors whose traits deny profiling; matches nothing when consent is ignored."""
    if not honoured():
        return Q(pk__in=[])
    query = Q()
    for key in PROFILING_TRAITS:
        query |= Q(**{f"traits__{key}": DENIED})
    return query


def denied_visitor_ids(user_pseudo_ids: Iterable[str] | None = None) -> set[str]:
    visitors = Visitor.objects.filter(profiling_denied_q())
    if user_pseudo_ids is not None:
        visitors = visitors.filter(user_pseudo_id__in=list(user_pseudo_ids))
    return set(visitors.values_list("user_pseudo_id", flat=True))


def gcs_traits(gcs: str) -> dict[str, str]:
    """Consent Mode's gcs parameter → consent traits; {} when it is not one."""
    if len(gcs) != 4 or not gcs.startswith("G1") or any(c not in "01" for c in gcs[2:]):
        return {}
    state = {"0": DENIED, "1": GRANTED}
    return {"consent.ad_storage": state[gcs[2]], "consent.analytics_storage": state[gcs[3]]}
