"""Extraction: turn a transcript into the visitor's prospect data.

``get_extractor()`` is what the pipeline calls. It builds one extractor per process (the Claude
one holds the SDK client and its connection pool, shared by the worker's threads) and picks it
from ``settings.EXTRACTOR``: "claude", "offline", or empty = claude when ANTHROPIC_API_KEY is
set, else offline.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from .base import ExtractionError, ExtractionResult, Extractor, FailureKind, Usage

__all__ = [
    "ExtractionError",
    "ExtractionResult",
    "Extractor",
    "FailureKind",
    "Usage",
    "get_extractor",
    "prepare",
    "reset_extractor",
]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_extractor: Extractor | None = None
_SETTINGS = {
    "EXTRACTOR",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_TIMEOUT_SECONDS",
    "ANTHROPIC_MAX_TOKENS",
    "ANTHROPIC_THINKING",
    "ANTHROPIC_PRICES",
}


def get_extractor() -> Extractor:
    """The process's extractor, built on first use (thread-safe)."""
    global _extractor
    extractor = _extractor
    if extractor is not None:
        return extractor
    with _lock:
        if _extractor is None:
            _extractor = _build()
        return _extractor


def reset_extractor() -> None:
    """Forget the cached extractor, so the next call reads the settings again."""
    global _extractor
    with _lock:
        _extractor = None


def _build() -> Extractor:
    choice = (settings.EXTRACTOR or "").strip().lower()
    has_key = bool(settings.ANTHROPIC_API_KEY)
    if choice not in {"", "claude", "offline"}:
        raise ImproperlyConfigured(f"EXTRACTOR must be 'claude', 'offline' or empty, not {choice!r}")
    if choice == "claude" and not has_key:
        raise ImproperlyConfigured("EXTRACTOR=claude needs ANTHROPIC_API_KEY")
    if choice == "claude" or (choice == "" and has_key):
        from .claude import THINKING_MODES, ClaudeExtractor

        thinking = settings.ANTHROPIC_THINKING
        if thinking not in THINKING_MODES:
            raise ImproperlyConfigured(
                f"ANTHROPIC_THINKING must be 'disabled', 'adaptive' or empty, not {thinking!r}"
            )
        claude = ClaudeExtractor.from_settings()
        logger.info(
            "extractor chosen: claude",
            extra={
                "extractor": "claude",
                "model": claude.model,
                "structured_outputs": claude.structured,
                "thinking": claude.thinking or "model default",
            },
        )
        return claude
    from .offline import OfflineExtractor

    if has_key:
        logger.info("extractor chosen: offline (EXTRACTOR=offline)", extra={"extractor": "offline"})
    else:
        logger.info(
            "extractor chosen: offline, because no ANTHROPIC_API_KEY is set", extra={"extractor": "offline"}
        )
    return OfflineExtractor()


def prepare() -> None:
    """Build the extractor now (the SDK import and client take ~1 s), so that a worker that
    says it is ready does not make its first job wait for it. Called at worker start."""
    try:
        get_extractor()
    except ImproperlyConfigured as error:  # every job meets it again, and fails
        logger.error("extractor misconfigured", extra={"error": str(error)})


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in _SETTINGS:
        reset_extractor()


setting_changed.connect(_on_setting_changed)


def _after_fork_in_child() -> None:
    # A forked child (prefork pool) must not share the parent's HTTP connections; a fresh lock
    # too, in case another thread held it at fork time.
    global _extractor, _lock
    _extractor = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
