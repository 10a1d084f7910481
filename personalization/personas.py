"""Persona behaviour models: synthetic visitors that browse the portfolio like real audiences.

Each persona is a small generative model over the real frontend's event vocabulary
(docs/INTEGRATIONS.md): which events it sends, which topics it reads, where it comes
from, how long it lingers. `seed_demo` uses them for demo data and `make eval` for labelled
visitors (with another seed), so they draw only from a `random.Random` they are given.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .demo_catalog import CAREER, PROJECTS, SECTIONS, SKILLS


@dataclass(frozen=True)
class Persona:
    segment: str
    events_range: tuple[int, int]
    event_weights: dict[str, float]
    topics: frozenset[str]
    topic_focus: float  # chance a project or skill is picked from `topics`
    referrers: dict[str, float]
    contact_types: dict[str, float] = field(default_factory=dict)
    sections: dict[str, float] = field(default_factory=dict)
    deep_read_ms: tuple[int, int] = (3_500, 20_000)
    section_ms: tuple[int, int] = (2_000, 30_000)


PERSONAS: dict[str, Persona] = {
    "ML_ENGINEER": Persona(
        segment="ML_ENGINEER",
        events_range=(6, 30),
        event_weights={
            "project_click": 5,
            "deep_read": 4,
            "repeat_view": 2,
            "skill_hover": 3,
            "section_view": 2,
            "scroll_depth": 2,
            "contact_intent": 0.6,
            "external_link_click": 1,
            "career_timeline_interact": 0.3,
            "download_resume": 0.1,
        },
        topics=frozenset({"ml", "ai", "data", "nlp", "cv", "llm"}),
        topic_focus=0.85,
        referrers={
            "https://github.com/": 3,
            "https://news.ycombinator.com/": 2,
            "https://www.google.com/": 2,
            "https://arxiv.org/": 1,
            "": 1,
        },
        contact_types={"github": 4, "email": 1, "linkedin": 0.5},
        sections={"projects": 5, "skills": 3, "about": 1, "career": 1},
        deep_read_ms=(6_000, 45_000),
    ),
    "FULLSTACK_DEV": Persona(
        segment="FULLSTACK_DEV",
        events_range=(6, 28),
        event_weights={
            "project_click": 5,
            "deep_read": 3,
            "repeat_view": 2,
            "skill_hover": 4,
            "section_view": 2,
            "scroll_depth": 2,
            "contact_intent": 0.6,
            "external_link_click": 1.2,
            "career_timeline_interact": 0.3,
            "download_resume": 0.1,
        },
        topics=frozenset({"web", "frontend", "backend", "fullstack", "devops"}),
        topic_focus=0.85,
        referrers={
            "https://github.com/": 3,
            "https://dev.to/": 2,
            "https://stackoverflow.com/": 2,
            "https://www.google.com/": 2,
            "": 1,
        },
        contact_types={"github": 4, "email": 1},
        sections={"projects": 5, "skills": 4, "about": 1, "career": 1},
        deep_read_ms=(5_000, 35_000),
    ),
    "RECRUITER": Persona(
        segment="RECRUITER",
        events_range=(5, 16),
        event_weights={
            "section_view": 4,
            "career_timeline_interact": 3,
            "download_resume": 2,
            "contact_intent": 2,
            "scroll_depth": 3,
            "project_click": 1,
            "skill_hover": 0.8,
            "deep_read": 0.3,
        },
        topics=frozenset(),
        topic_focus=0.0,
        referrers={
            "https://www.linkedin.com/": 5,
            "https://www.indeed.com/": 1,
            "https://www.glassdoor.com/": 1,
            "https://www.google.com/": 1,
        },
        contact_types={"linkedin": 3, "email": 3},
        sections={"career": 5, "about": 4, "skills": 2, "projects": 1},
        deep_read_ms=(3_200, 6_000),
        section_ms=(8_000, 60_000),
    ),
    "STUDENT": Persona(
        segment="STUDENT",
        events_range=(5, 24),
        event_weights={
            "deep_read": 4,
            "project_click": 3,
            "repeat_view": 3,
            "external_link_click": 3,
            "section_view": 2,
            "scroll_depth": 1.5,
            "skill_hover": 1,
            "contact_intent": 0.2,
            "language_switch": 0.3,
        },
        topics=frozenset({"school", "education"}),
        topic_focus=0.8,
        referrers={
            "https://www.mit.edu/": 2,
            "https://www.ox.ac.uk/": 1,
            "https://www.edu.cn/": 1,
            "https://www.google.com/": 1,
            "https://www.youtube.com/": 1,
        },
        contact_types={"view_projects": 3, "github": 1},
        sections={"projects": 4, "skills": 2, "about": 1, "career": 0.5},
        deep_read_ms=(15_000, 90_000),
    ),
    "CASUAL": Persona(
        segment="CASUAL",
        events_range=(1, 4),
        event_weights={
            "section_view": 3,
            "scroll_depth": 3,
            "project_click": 1,
            "skill_hover": 0.5,
        },
        topics=frozenset(),
        topic_focus=0.0,
        referrers={"https://www.google.com/": 3, "https://t.co/": 1, "": 3},
        contact_types={"view_projects": 1},
        sections={"about": 2, "projects": 2, "skills": 1, "career": 1},
        deep_read_ms=(3_100, 5_000),
        section_ms=(1_000, 6_000),
    ),
}

DEMO_MIX: dict[str, float] = {
    "ML_ENGINEER": 0.25,
    "FULLSTACK_DEV": 0.25,
    "RECRUITER": 0.2,
    "STUDENT": 0.15,
    "CASUAL": 0.15,
}

EXTERNAL_LINKS = {
    "github": "https://github.com/example/",
    "tutorial": "https://docs.python.org/3/tutorial/",
    "paper": "https://arxiv.org/abs/1706.03762",
    "demo": "https://demo.example.com/",
}
SCROLL_MILESTONES = ["25%", "50%", "75%", "100%"]
SITE = "https://portfolio.example.com/"


@dataclass
class SyntheticVisitor:
    user_pseudo_id: str
    segment: str
    events: list[dict[str, Any]]


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names], k=1)[0]


def _pick_topical(rng: random.Random, items: list[Any], persona: Persona) -> Any:
    on_topic = [item for item in items if persona.topics & set(item["tags"])]
    if on_topic and rng.random() < persona.topic_focus:
        return rng.choice(on_topic)
    return rng.choice(items)


def _params(rng: random.Random, persona: Persona, name: str, seen: list[str]) -> dict[str, Any]:
    if name in {"project_click", "deep_read"}:
        project = _pick_topical(rng, PROJECTS, persona)
        seen.append(project["slug"])
        if name == "deep_read":
            return {"project_id": project["slug"], "duration": rng.randint(*persona.deep_read_ms)}
        return {"project_id": project["slug"], "category": project["category"]}
    if name == "repeat_view":
        slug = rng.choice(seen) if seen else _pick_topical(rng, PROJECTS, persona)["slug"]
        return {"item_id": slug, "view_count": rng.randint(2, 4)}
    if name == "skill_hover":
        skill = _pick_topical(rng, SKILLS, persona)
        return {"skill_name": skill["name"], "duration": rng.randint(600, 4_000)}
    if name == "section_view":
        section = _pick(rng, persona.sections or {s["slug"]: 1 for s in SECTIONS})
        return {"section_name": section, "time_spent": rng.randint(*persona.section_ms)}
    if name == "contact_intent":
        return {"contact_type": _pick(rng, persona.contact_types or {"email": 1})}
    if name == "career_timeline_interact":
        company, position = rng.choice(CAREER)
        return {"company": company, "position": position}
    if name == "external_link_click":
        link_type = (
            "tutorial"
            if persona.segment == "STUDENT" and rng.random() < 0.6
            else (rng.choice(list(EXTERNAL_LINKS)))
        )
        return {"link_type": link_type, "destination": EXTERNAL_LINKS[link_type]}
    if name == "scroll_depth":
        return {"milestone": rng.choice(SCROLL_MILESTONES)}
    if name == "language_switch":
        return {"from_lang": "en", "to_lang": rng.choice(["fr", "de", "zh"])}
    return {}


def generate_visitor(
    rng: random.Random, persona: Persona, *, now: datetime, index: int, days: int = 14
) -> SyntheticVisitor:
    """One visitor: a GA4-style client id and 1-3 sessions of events, oldest first."""
    client_id = f"{rng.randint(10**8, 10**10 - 1)}.{1_700_000_000 + rng.randint(0, 10**7)}"
    total = rng.randint(*persona.events_range)
    sessions = min(total, rng.choice([1, 1, 2, 3]))
    referrer = _pick(rng, persona.referrers)
    start = now - timedelta(days=rng.uniform(0.2, days))
    events: list[dict[str, Any]] = []
    seen: list[str] = []
    per_session = [total // sessions + (1 if i < total % sessions else 0) for i in range(sessions)]
    for session_number, count in enumerate(per_session):
        session_start = start + timedelta(hours=session_number * rng.uniform(6, 48))
        if session_start > now:
            session_start = now - timedelta(minutes=rng.uniform(1, 60))
        session_id = str(int(session_start.timestamp()))
        moment = session_start
        for position in range(count):
            name = _pick(rng, persona.event_weights)
            params = _params(rng, persona, name, seen)
            params["ga_session_id"] = session_id
            params["page_location"] = SITE
            if position == 0 and referrer:
                params["page_referrer"] = referrer
            events.append(
                {
                    "event_name": name,
                    "user_pseudo_id": client_id,
                    "event_params": params,
                    "event_timestamp": int(moment.timestamp() * 1000),
                    "event_id": f"seed-{index}-{len(events)}",
                }
            )
            moment += timedelta(seconds=rng.uniform(4, 90))
    return SyntheticVisitor(user_pseudo_id=client_id, segment=persona.segment, events=events)


def generate_visitors(
    *, count: int, seed: int, now: datetime, mix: dict[str, float] | None = None
) -> Iterator[SyntheticVisitor]:
    """`count` visitors drawn from the persona mix; the same seed gives the same visitors."""
    rng = random.Random(seed)
    mix = mix or DEMO_MIX
    for index in range(count):
        persona = PERSONAS[_pick(rng, mix)]
        yield generate_visitor(rng, persona, now=now, index=index)
