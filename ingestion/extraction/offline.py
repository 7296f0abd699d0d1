"""Placeholder offline extractor (replaced by the full one from the extraction branch)."""

from __future__ import annotations

import re
import time

from .base import ExtractionResult
from .schema import clamp_nivel, empty_data, momento_for

OFFLINE_VERSION = "offline-0"


class OfflineExtractor:
    name = "offline"

    def extract(self, messages: list[dict[str, str]]) -> ExtractionResult:
        started = time.perf_counter()
        text = " ".join(m["content"] for m in messages if m["role"] == "user")
        data = empty_data()
        nivel = 3.0
        match = re.search(r"(?i:me llamo) ([A-ZÁÉÍÓÚÑ][\wáéíóúñ]+(?: [A-ZÁÉÍÓÚÑ][\wáéíóúñ]+)?)", text)
        if match:
            data["nombre"] = match.group(1)
            nivel += 2
        if re.search(r"quiero|empezar|inversi[oó]n", text, re.I):
            nivel += 2
        data["nivel_interes"] = clamp_nivel(nivel)
        data["momento_optimo"] = momento_for(data["nivel_interes"])
        return ExtractionResult(
            data=data,
            extractor="offline",
            model="offline",
            prompt_version=OFFLINE_VERSION,
            latency_ms=int((time.perf_counter() - started) * 1000),
        )
