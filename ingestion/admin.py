from django.contrib import admin

from .models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["session_id", "status", "revision", "processed_revision", "attempts", "revised_at"]
    list_filter = ["status"]
