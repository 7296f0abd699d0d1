"""The review desk's permission for both Sales groups: change_prospect lets a user set a
prospect's review status, owner and notes (the fold's fields stay read-only in the admin)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    "Sales": ["change_prospect"],
    "Sales lead": ["change_prospect"],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("prospects")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="prospects", codename__in=codenames)
        )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        for group in Group.objects.filter(name=name):
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="prospects", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [("prospects", "0008_prospect_review")]

    operations = [migrations.RunPython(grant, revoke)]
