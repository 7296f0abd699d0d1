"""A tiny OTLP/HTTP trace receiver on 127.0.0.1, for tests and the bench: it answers
``POST /v1/traces`` as a collector would, decodes each ``ExportTraceServiceRequest``
(opentelemetry-proto; gzip when the exporter compresses) and keeps the spans as plain dicts.

    with OtlpReceiver() as receiver:   # OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url
        ...
        receiver.spans()               # [{"trace_id", "span_id", "parent_span_id", "name", ...}]
"""

from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in Span.SpanKind.items()}


def any_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def decode(body: bytes) -> list[dict[str, Any]]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": KINDS.get(span.kind, str(span.kind)),
                        "service": resource.get("service.name", ""),
                        "scope": scope_spans.scope.name,
                        "start": span.start_time_unix_nano,
                        "attributes": {kv.key: any_value(kv.value) for kv in span.attributes},
                        "events": [
                            {
                                "name": e.name,
                                "attributes": {kv.key: any_value(kv.value) for kv in e.attributes},
                            }
                            for e in span.events
                        ],
                        "status": {"code": span.status.code, "message": span.status.message},
                        "resource": resource,
                    }
                )
    return spans


class OtlpReceiver:
    """The receiver; ``OtlpReceiver().start()`` or a context manager. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[dict[str, Any]] = []
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver._add(decode(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _add(self, spans: list[dict[str, Any]]) -> None:
        with self._lock:
            self._spans.extend(spans)
            self.requests += 1

    def spans(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def trace_tree(spans: list[dict[str, Any]], trace_id: str) -> str:
    """One trace as an indented tree: ``service  name  kind  key=value…`` per span."""
    own = sorted((s for s in spans if s["trace_id"] == trace_id), key=lambda s: s["start"])
    ids = {s["span_id"] for s in own}
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in own:
        children[span["parent_span_id"] if span["parent_span_id"] in ids else ""].append(span)
    lines = [f"trace {trace_id}"]

    def walk(parent: str, depth: int) -> None:
        for span in children[parent]:
            shown = {
                k: v for k, v in span["attributes"].items() if k.startswith(("gen_ai.", "nexus.", "error."))
            }
            extra = " ".join(f"{k}={v}" for k, v in shown.items())
            lines.append(
                f"{'  ' * (depth + 1)}[{span['service']}] {span['name']} ({span['kind']}) {extra}".rstrip()
            )
            walk(span["span_id"], depth + 1)

    walk("", 0)
    return "\n".join(lines)
