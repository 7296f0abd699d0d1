"""The "Sales" groups, as the migration makes them, before each test here."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import Group, Permission

# What the migrations give each group: 0007 made them, 0009 added the review desk's change_prospect.
GROUPS: dict[str, list[str]] = {}
for _migration in ("0007_sales_groups", "0009_sales_groups_review"):
    for _name, _codenames in importlib.import_module(f"prospects.migrations.{_migration}").GROUPS.items():
        GROUPS.setdefault(_name, []).extend(_codenames)


@pytest.fixture(autouse=True)
def sales_groups(request):
    """Made again if a transactional test's flush (which keeps permissions, made again on
    post_migrate, but not migration data) removed them."""
    if "django_db" not in {m.name for m in request.node.iter_markers()}:
        return
    request.getfixturevalue("db")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="prospects", codename__in=codenames)
        )
