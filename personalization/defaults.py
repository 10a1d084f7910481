"""The segments, signals and rules a fresh install starts with (loaded by a data migration,
then edited in admin). Built on the real frontend's events (docs/INTEGRATIONS.md); topics
come from the catalog's tags on the project or skill an event names, never from the site's
own `category` labels."""

from typing import Any

ML_TAGS = ["ml", "ai", "data", "nlp", "cv", "llm"]
ML_SKILL_TAGS = ["ml", "ai", "llm"]
FULLSTACK_TAGS = ["web", "frontend", "backend", "fullstack", "devops"]
SCHOOL_TAGS = ["school", "education"]

ACADEMIC_HOST = r"(^|\.)(edu|edu\.[a-z]{2,3}|ac\.[a-z]{2,3})$"
RECRUITING_HOST = (
    r"(^|\.)(linkedin\.com|lnkd\.in|indeed\.[a-z.]+|glassdoor\.[a-z.]+|greenhouse\.io|lever\.co"
    r"|wellfound\.com|hired\.com|welcometothejungle\.com|stepstone\.[a-z.]+)$"
)
ML_HOST = r"(^|\.)(arxiv\.org|huggingface\.co|kaggle\.com|paperswithcode\.com)$"
DEVELOPER_HOST = r"(^|\.)(stackoverflow\.com|dev\.to|freecodecamp\.org|css-tricks\.com)$"

SEGMENTS: list[dict[str, Any]] = [
    {
        "code": "ML_ENGINEER",
        "name": "ML engineer",
        "description": "Reads machine-learning, data and AI work in depth.",
        "prior": 0.0,
        "topic_tags": ML_TAGS,
        "recommendation": "Lead with ML projects and ML skills; keep publications and "
        "technical depth one click away.",
        "position": 1,
    },
    {
        "code": "FULLSTACK_DEV",
        "name": "Full-stack developer",
        "description": "Looks at web, backend and infrastructure work.",
        "prior": 0.0,
        "topic_tags": FULLSTACK_TAGS,
        "recommendation": "Lead with web and backend projects and the stack behind them.",
        "position": 2,
    },
    {
        "code": "RECRUITER",
        "name": "Recruiter",
        "description": "Scans career history, downloads the resume, looks for contact details.",
        "prior": 0.0,
        "topic_tags": [],
        "recommendation": "Put career and about first and make the resume and contact easy.",
        "position": 3,
    },
    {
        "code": "STUDENT",
        "name": "Student",
        "description": "Arrives from a university, studies coursework projects, follows tutorials.",
        "prior": 0.0,
        "topic_tags": SCHOOL_TAGS,
        "recommendation": "Feature coursework projects and learning resources.",
        "position": 4,
    },
    {
        "code": "CASUAL",
        "name": "Casual visitor",
        "description": "Too little evidence to say more.",
        "prior": 2.0,
        "topic_tags": [],
        "recommendation": "Show the default page.",
        "position": 5,
    },
]


def _tag(param: str, tags: list[str]) -> dict[str, Any]:
    return {"param": param, "op": "tag", "value": tags}


def _topic_signals(segment: str, topic: str, tags: list[str], skill_tags: list[str]) -> list[dict]:
    return [
        {
            "segment": segment,
            "label": f"project_click on {topic} projects",
            "event_name": "project_click",
            "conditions": [_tag("project_id", tags)],
            "weight": 1.0,
            "cap": 6,
        },
        {
            "segment": segment,
            "label": f"deep_read on {topic} projects",
            "event_name": "deep_read",
            "conditions": [_tag("project_id", tags)],
            "weight": 1.5,
            "cap": 6,
        },
        {
            "segment": segment,
            "label": f"repeat_view of {topic} projects",
            "event_name": "repeat_view",
            "conditions": [_tag("item_id", tags)],
            "weight": 1.0,
            "cap": 4,
        },
        {
            "segment": segment,
            "label": f"skill_hover on {topic} skills",
            "event_name": "skill_hover",
            "conditions": [_tag("skill_name", skill_tags)],
            "weight": 0.8,
            "cap": 5,
        },
        {
            "segment": segment,
            "label": "contact_intent via GitHub",
            "event_name": "contact_intent",
            "conditions": [{"param": "contact_type", "op": "equals", "value": "github"}],
            "weight": 0.5,
            "cap": 1,
        },
    ]


SIGNALS: list[dict[str, Any]] = [
    *_topic_signals("ML_ENGINEER", "ML", ML_TAGS, ML_SKILL_TAGS),
    {
        "segment": "ML_ENGINEER",
        "label": "referred by an ML site",
        "event_name": "*",
        "conditions": [{"param": "referrer_host", "op": "regex", "value": ML_HOST}],
        "weight": 1.0,
        "cap": 1,
    },
    *_topic_signals("FULLSTACK_DEV", "web", FULLSTACK_TAGS, FULLSTACK_TAGS),
    {
        "segment": "FULLSTACK_DEV",
        "label": "referred by a developer site",
        "event_name": "*",
        "conditions": [{"param": "referrer_host", "op": "regex", "value": DEVELOPER_HOST}],
        "weight": 1.0,
        "cap": 1,
    },
    {
        "segment": "RECRUITER",
        "label": "download_resume",
        "event_name": "download_resume",
        "conditions": [],
        "weight": 2.0,
        "cap": 2,
    },
    {
        "segment": "RECRUITER",
        "label": "contact_intent via LinkedIn or email",
        "event_name": "contact_intent",
        "conditions": [{"param": "contact_type", "op": "in", "value": ["linkedin", "email"]}],
        "weight": 1.5,
        "cap": 3,
    },
    {
        "segment": "RECRUITER",
        "label": "career_timeline_interact",
        "event_name": "career_timeline_interact",
        "conditions": [],
        "weight": 1.0,
        "cap": 5,
    },
    {
        "segment": "RECRUITER",
        "label": "long section_view of career or about",
        "event_name": "section_view",
        "conditions": [
            {"param": "section_name", "op": "in", "value": ["career", "about"]},
            {"param": "time_spent", "op": "gte", "value": 8000},
        ],
        "weight": 0.8,
        "cap": 4,
    },
    {
        "segment": "RECRUITER",
        "label": "referred by LinkedIn or a job board",
        "event_name": "*",
        "conditions": [{"param": "referrer_host", "op": "regex", "value": RECRUITING_HOST}],
        "weight": 2.0,
        "cap": 1,
    },
    {
        "segment": "RECRUITER",
        "label": "quick scan to the bottom of the page",
        "event_name": "scroll_depth",
        "conditions": [{"param": "milestone", "op": "in", "value": ["75%", "100%"]}],
        "weight": 0.3,
        "cap": 3,
    },
    {
        "segment": "STUDENT",
        "label": "referred by an academic domain",
        "event_name": "*",
        "conditions": [{"param": "referrer_host", "op": "regex", "value": ACADEMIC_HOST}],
        "weight": 2.5,
        "cap": 1,
    },
    {
        "segment": "STUDENT",
        "label": "long deep_read of school projects",
        "event_name": "deep_read",
        "conditions": [
            _tag("project_id", SCHOOL_TAGS),
            {"param": "duration", "op": "gte", "value": 10000},
        ],
        "weight": 1.5,
        "cap": 5,
    },
    {
        "segment": "STUDENT",
        "label": "project_click on school projects",
        "event_name": "project_click",
        "conditions": [_tag("project_id", SCHOOL_TAGS)],
        "weight": 0.8,
        "cap": 5,
    },
    {
        "segment": "STUDENT",
        "label": "repeat_view of school projects",
        "event_name": "repeat_view",
        "conditions": [_tag("item_id", SCHOOL_TAGS)],
        "weight": 1.0,
        "cap": 4,
    },
    {
        "segment": "STUDENT",
        "label": "external_link_click to tutorials",
        "event_name": "external_link_click",
        "conditions": [{"param": "link_type", "op": "in", "value": ["tutorial", "course", "docs"]}],
        "weight": 1.0,
        "cap": 4,
    },
]

RULES: list[dict[str, Any]] = [
    {
        "segment": "ML_ENGINEER",
        "priority_sections": ["projects", "skills", "about", "career"],
        "reasoning": "ML engineers judge by the depth of the ML work: projects first.",
    },
    {
        "segment": "FULLSTACK_DEV",
        "priority_sections": ["projects", "skills", "career", "about"],
        "reasoning": "Developers want to see what was built and with which stack.",
    },
    {
        "segment": "RECRUITER",
        "priority_sections": ["career", "about", "skills", "projects"],
        "reasoning": "Recruiters scan experience and contact details first.",
    },
    {
        "segment": "STUDENT",
        "priority_sections": ["projects", "skills", "about", "career"],
        "reasoning": "Students look for coursework they can learn from.",
    },
    {
        "segment": "CASUAL",
        "priority_sections": ["about", "projects", "skills", "career"],
        "reasoning": "The default page: who this is, then the work.",
    },
]
