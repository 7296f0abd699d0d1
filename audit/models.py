"""The access log: who saw or did what to personal data, and when. Append-only, and never the
data itself: ids, filters (a search term as its hash), counts, a command's arguments with any
fingerprint, e-mail or phone as its hash."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone


class AccessLogEntry(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    # The username as it was (kept if the user is deleted); "" for a command run from a shell.
    actor = models.CharField(max_length=150, blank=True, default="")
    user_id = models.IntegerField(null=True, blank=True)
    # "view_contacts", "export_csv", "admin_action", "review_status_changed", "owner_changed",
    # "forget", "reprocess", "export_person"
    action = models.CharField(max_length=64, db_index=True)
    # The model or command concerned ("prospects.prospect", "ingestion.job", "forget").
    target = models.CharField(max_length=64, blank=True, default="")
    object_ids = models.JSONField(default=list, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    row_count = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = "access log entry"
        verbose_name_plural = "access log"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor or '(shell)'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("The access log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("The access log is append-only (the retention purge removes old entries).")
