"""The two review roles as Django groups (README → Operations → Who can see what):

- "Sales": sees prospects (its tenants' only, by TenantMembership), contacts masked, no CSV.
- "Sales lead": the same with e-mails and phones, and the CSV export.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    "Sales": ["view_prospect"],
    "Sales lead": ["view_prospect", "view_contacts", "export_prospects"],
}


def create_groups(apps, schema_editor):
    # Permissions are made after migrate (post_migrate); make this app's now, so a fresh
    # database gets the groups with their permissions in one migrate.
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


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("prospects", "0006_prospect_permissions"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
