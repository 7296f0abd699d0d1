"""django.contrib.admin with ``nexus_project.admin_site.NexusAdminSite`` as its default site."""

from django.contrib.admin.apps import AdminConfig


class NexusAdminConfig(AdminConfig):
    default_site = "nexus_project.admin_site.NexusAdminSite"
