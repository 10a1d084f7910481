from django.contrib import admin

from .models import Project, Section, Skill


@admin.register(Section)
class SectionAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "position", "tags"]
    list_editable = ["position"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "category", "tags", "is_active"]
    list_filter = ["is_active", "category"]
    search_fields = ["slug", "title"]


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["name", "tags"]
    search_fields = ["name"]
