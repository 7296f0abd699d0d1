"""The production URL map plus the two reference views of figure 1."""

from django.urls import path

from nexus_project.urls import urlpatterns as production_urlpatterns

from .views import FloorView, plain_view

urlpatterns = [
    *production_urlpatterns,
    path("bench/plain", plain_view),
    path("bench/floor", FloorView.as_view()),
]
