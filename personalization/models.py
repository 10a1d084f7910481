"""The content catalog: what the portfolio shows, tagged by topic so signals can match on it."""

from django.db import models


class Section(models.Model):
    """A page section, identified by the element id the site gives it (skills, career, ...)."""

    slug = models.SlugField(max_length=50, unique=True, help_text="The section's element id.")
    title = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField(default=0, help_text="Default order on the page.")
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["position", "slug"]

    def __str__(self) -> str:
        return self.title


class Project(models.Model):
    slug = models.SlugField(max_length=100, unique=True, help_text="The card's data-project-id.")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    category = models.CharField(
        max_length=100, blank=True, default="", help_text="The site's own label; not a topic."
    )
    tech_stack = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="Topics: ml, web, data, ...")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.title


class Skill(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="As in data-skill-name.")
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
