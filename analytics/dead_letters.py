"""What a dead letter may keep: enough to diagnose the refusal, nothing that identifies a person
beyond the pseudonymous visitor id (docs/SECURITY.md, "Data and privacy").

Dropped before anything is written, at any depth and in either spelling GA4 accepts (snake_case
or camelCase, any case): IP addresses (MP `ip_override`, gtag `_uip`/`uip`), `user_data`
(hashed email, phone, address) and precise geo (MP `user_location`, the export's `geo`). gtag
dead letters keep the query string and lines as sent, minus those parameters. Pure: no
database (migration analytics.0007 applies it to the rows stored before).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

# The visitor id rule (validation.USER_PSEUDO_ID_RE, measurement_protocol.VISITOR_ID_RE), not
# imported: those modules import services, which imports this one.
VISITOR_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,200}")

# Keys compared without '_' and case: ip_override, ipOverride, _uip, UIP, userData, geo...
PERSONAL_KEYS = frozenset({"ipoverride", "uip", "userdata", "userlocation", "geo"})
# The gtag payload fields holding URL-encoded text (gtag.gtag_parse).
GTAG_TEXT_FIELDS = ("query", "line", "lines")
GTAG = "gtag"


def is_personal_key(key: str) -> bool:
    return key.replace("_", "").lower() in PERSONAL_KEYS


def _gtag_text_scrub(text: str) -> str:
    """`a=1&_uip=1.2.3.4&b=2` (lines separated by newlines) without the personal parameters;
    every other pair is kept byte for byte, so the dead letter still shows what was sent."""
    lines = []
    for line in text.split("\n"):
        kept = [
            part
            for part in line.split("&")
            if not is_personal_key(unquote_plus(part.partition("=")[0], errors="replace"))
        ]
        lines.append("&".join(kept))
    return "\n".join(lines)


def _json_scrub(value: Any) -> Any:
    """A copy of `value` without personal keys in any object, however nested. Iterative, so no
    payload can exhaust the stack (storable_json cuts nesting afterwards anyway)."""
    if not isinstance(value, (dict, list, tuple)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(source, dict) and is_personal_key(str(key)):
                continue
            copy = item
            if isinstance(item, (dict, list, tuple)):
                copy = {} if isinstance(item, dict) else []
                stack.append((item, copy))
            if isinstance(target, dict):
                target[key] = copy
            else:
                target.append(copy)
    return root


def dead_letter_scrub(payload: Any, *, source: str) -> Any:
    """`payload` as a dead letter may keep it (see the module docstring)."""
    scrubbed = _json_scrub(payload)
    if source == GTAG and isinstance(scrubbed, dict):
        for name in GTAG_TEXT_FIELDS:
            if isinstance(scrubbed.get(name), str):
                scrubbed[name] = _gtag_text_scrub(scrubbed[name])
    return scrubbed


def _gtag_cid(payload: dict[str, Any]) -> str:
    """The hit's `cid` as gtag_parse reads it: a line's overrides the query's, the last wins."""
    cid = ""
    for name in ("query", "line"):
        text = payload.get(name)
        if not isinstance(text, str):
            continue
        for part in text.split("&"):
            key, _, value = part.partition("=")
            if unquote_plus(key, errors="replace") == "cid":
                cid = unquote_plus(value, errors="replace")
    return cid


def dead_letter_visitor(payload: Any, *, source: str) -> str:
    """The visitor id a dead letter belongs to, as the channel would store it as
    user_pseudo_id (gtag `cid`, MP `client_id`, the export's and the API's `user_pseudo_id`);
    "" when there is none or it is no valid visitor id."""
    if not isinstance(payload, dict):
        return ""
    if source == GTAG:
        candidate: Any = _gtag_cid(payload)
    else:
        candidate = next(
            (
                payload[key]
                for key in ("user_pseudo_id", "client_id", "clientId")
                if isinstance(payload.get(key), str)
            ),
            "",
        )
    return candidate if VISITOR_ID_RE.fullmatch(candidate) else ""
