"""The demo portfolio's content: sections, projects and skills with topic tags.

`manage.py seed_demo` loads it, the persona models browse it, and `/demo/` renders it. Topics
live in `tags`; `category` is the site's own label and often says nothing about the topic
("Personal", "School Project"), as on the real portfolio.
"""

from typing import TypedDict


class SectionData(TypedDict):
    slug: str
    title: str
    position: int
    tags: list[str]


class ProjectData(TypedDict):
    slug: str
    title: str
    description: str
    category: str
    tech_stack: list[str]
    tags: list[str]


class SkillData(TypedDict):
    name: str
    tags: list[str]


SECTIONS: list[SectionData] = [
    {"slug": "skills", "title": "Skills", "position": 1, "tags": ["skills"]},
    {"slug": "career", "title": "Career", "position": 2, "tags": ["career", "recruiting"]},
    {"slug": "projects", "title": "Projects", "position": 3, "tags": ["projects"]},
    {"slug": "about", "title": "About", "position": 4, "tags": ["about", "recruiting"]},
]

PROJECTS: list[ProjectData] = [
    {
        "slug": "llm-router",
        "title": "LLM Router",
        "description": "Routes prompts to the cheapest model that answers well enough.",
        "category": "Personal",
        "tech_stack": ["Python", "FastAPI", "PyTorch"],
        "tags": ["ml", "llm", "ai"],
    },
    {
        "slug": "vision-defect-detector",
        "title": "Vision Defect Detector",
        "description": "Finds scratches on production-line photos with a fine-tuned CNN.",
        "category": "Work",
        "tech_stack": ["PyTorch", "OpenCV"],
        "tags": ["ml", "cv", "ai"],
    },
    {
        "slug": "sentiment-pipeline",
        "title": "Sentiment Pipeline",
        "description": "Streaming sentiment scoring of support tickets.",
        "category": "Personal",
        "tech_stack": ["Transformers", "spaCy", "Kafka"],
        "tags": ["ml", "nlp", "data"],
    },
    {
        "slug": "demand-forecasting",
        "title": "Demand Forecasting",
        "description": "Weekly demand forecasts with uncertainty bands.",
        "category": "Work",
        "tech_stack": ["pandas", "Prophet", "Plotly"],
        "tags": ["data", "ml"],
    },
    {
        "slug": "recsys-lab",
        "title": "RecSys Lab",
        "description": "Two-tower recommender experiments on public datasets.",
        "category": "Personal",
        "tech_stack": ["TensorFlow", "Spark"],
        "tags": ["ml", "data", "ai"],
    },
    {
        "slug": "shop-platform",
        "title": "Shop Platform",
        "description": "A storefront with checkout, inventory and an admin console.",
        "category": "Work",
        "tech_stack": ["React", "Node.js", "PostgreSQL"],
        "tags": ["web", "fullstack", "frontend", "backend"],
    },
    {
        "slug": "realtime-chat",
        "title": "Realtime Chat",
        "description": "Chat rooms over WebSockets with presence and history.",
        "category": "Personal",
        "tech_stack": ["Django", "Channels", "Redis", "React"],
        "tags": ["web", "backend", "fullstack"],
    },
    {
        "slug": "design-system",
        "title": "Design System",
        "description": "Accessible React components with visual regression tests.",
        "category": "Personal",
        "tech_stack": ["React", "TypeScript", "Storybook"],
        "tags": ["web", "frontend"],
    },
    {
        "slug": "deploy-kit",
        "title": "Deploy Kit",
        "description": "Zero-downtime deploys for small teams.",
        "category": "Personal",
        "tech_stack": ["Docker", "Kubernetes", "Terraform"],
        "tags": ["devops", "backend"],
    },
    {
        "slug": "campus-scheduler",
        "title": "Campus Scheduler",
        "description": "Course timetable planner built for a software engineering class.",
        "category": "School Project",
        "tech_stack": ["Java", "Spring"],
        "tags": ["school", "web", "backend"],
    },
    {
        "slug": "algorithms-notebook",
        "title": "Algorithms Notebook",
        "description": "Worked solutions to classic algorithm exercises.",
        "category": "School Project",
        "tech_stack": ["Python", "Jupyter"],
        "tags": ["school", "education"],
    },
    {
        "slug": "toy-compiler",
        "title": "Toy Compiler",
        "description": "A compiler for a small language, from coursework.",
        "category": "School Project",
        "tech_stack": ["C", "LLVM"],
        "tags": ["school", "education"],
    },
]

SKILLS: list[SkillData] = [
    {"name": "PyTorch", "tags": ["ml", "ai"]},
    {"name": "TensorFlow", "tags": ["ml", "ai"]},
    {"name": "AI/ML Integration", "tags": ["ml", "ai", "llm"]},
    {"name": "scikit-learn", "tags": ["ml", "data"]},
    {"name": "pandas", "tags": ["data"]},
    {"name": "React", "tags": ["web", "frontend"]},
    {"name": "TypeScript", "tags": ["web", "frontend"]},
    {"name": "Node.js", "tags": ["web", "backend"]},
    {"name": "Django", "tags": ["web", "backend"]},
    {"name": "PostgreSQL", "tags": ["backend", "data"]},
    {"name": "Docker", "tags": ["devops"]},
    {"name": "Kubernetes", "tags": ["devops"]},
    {"name": "Java", "tags": ["school", "backend"]},
    {"name": "Technical Writing", "tags": ["communication"]},
]

CAREER: list[tuple[str, str]] = [
    ("Acme AI", "Machine Learning Engineer"),
    ("WebWorks", "Full-stack Developer"),
    ("University Lab", "Research Assistant"),
]
