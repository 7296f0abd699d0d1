"""Extractors behind one seam; ``get_extractor()`` picks one per process."""

from __future__ import annotations

import logging
import threading

from django.conf import settings

from .base import Extractor

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_extractor: Extractor | None = None


def get_extractor() -> Extractor:
    global _extractor
    if _extractor is None:
        with _lock:
            if _extractor is None:
                from .offline import OfflineExtractor

                _extractor = OfflineExtractor()
                logger.info("extractor chosen", extra={"extractor": _extractor.name})
    return _extractor


def reset_extractor() -> None:
    global _extractor
    with _lock:
        _extractor = None
