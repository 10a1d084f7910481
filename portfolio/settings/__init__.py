"""One settings module for every environment: DJANGO_ENV=production adds production.py's rules."""

import os
from pathlib import Path

import environ

# Read .env first so that DJANGO_ENV set there picks the right module too.
environ.Env.read_env(Path(__file__).resolve().parent.parent.parent / ".env", overwrite=False)

if os.environ.get("DJANGO_ENV", "development") == "production":
    from .production import *  # noqa: F403
else:
    from .base import *  # noqa: F403
