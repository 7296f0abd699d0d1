"""Reference views for figure 1: the ceiling (plain Django) and the same-work floor (DRF,
one INSERT, one Celery publish)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .tasks import noop

REF_TABLE = "bench_ref_event"
CREATE_REF_TABLE = f"""
CREATE TABLE IF NOT EXISTS {REF_TABLE} (
    id uuid PRIMARY KEY, session_id varchar(128) NOT NULL, body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())
"""


@csrf_exempt
def plain_view(request: HttpRequest) -> HttpResponse:
    """The ceiling: Django's request cycle and middleware, no parsing, no I/O."""
    return JsonResponse({"status": "accepted"}, status=202)


class FloorView(APIView):
    """The same-work floor: DRF JSON parsing, one INSERT, one publish, a 202."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def post(self, request: Request) -> Response:
        data = request.data
        session_id = str(data.get("sessionId", "") if isinstance(data, dict) else "")[:128]
        row_id = uuid.uuid4()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {REF_TABLE} (id, session_id, body) VALUES (%s, %s, %s::jsonb)",  # noqa: S608
                [row_id, session_id, json.dumps(data)],
            )
        noop.apply_async(args=[str(row_id)])
        return Response({"status": "accepted", "queueId": str(row_id)}, status=202)
