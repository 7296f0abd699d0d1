"""Small ORM helpers every app shares."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models

M = TypeVar("M", bound=models.Model)


def model_update(instance: M, **changes: Any) -> M:
    """Set these fields and save exactly those (plus any ``auto_now`` field), in one UPDATE.

    A hand-kept ``update_fields`` list beside each block of assignments drifts: a field set
    but not listed is silently not saved. Here the names are the assignments. (HackSoft's
    Django-Styleguide ``model_update``, without its full_clean: the callers are services
    whose values are already valid.)
    """
    fields = list(changes)
    for name, value in changes.items():
        setattr(instance, name, value)
    for field in instance._meta.concrete_fields:
        if getattr(field, "auto_now", False) and field.name not in changes:
            fields.append(field.name)
    instance.save(update_fields=fields)
    return instance
