"""The widget demo (development only): a chat box that uses the browser client against this
service and shows each job's status. It is what a newcomer opens after ``make run``, and the
page the browser tests photograph. Production answers 404: it is not a product page."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render


def demo_widget(request: HttpRequest) -> HttpResponse:
    if settings.PRODUCTION:
        raise Http404("The widget demo exists in development only.")
    return render(request, "nexus/demo_widget.html")
