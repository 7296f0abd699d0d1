"""Celery's worker consumer, made to survive a broker connection that dies under a busy
threads pool (selected by ``CELERY_WORKER_CONSUMER`` in settings).

When Redis goes away while task threads finish (acks_late), kombu tears the broken connection
down while acks for its messages are still queued on the event loop. Two places then meet a
transport whose client is already gone and raise ``AttributeError``: the consumer's own
cleanup in ``on_connection_error_after_connected``, and each late ack run by the loop after
the reconnect. Celery treats both as unrecoverable and the worker process exits (seen in the
chaos suite's Redis restart: a worker died on most runs).

Both are safe to drop. So is an ack that Redis refuses because it is out of memory
(``maxmemory`` with ``noeviction``, the chaos suite's redis_oom): Celery took that for an
unrecoverable error too, and both workers exited. The broken connection is already
detached, so the consumer goes on to reconnect as it would have. An ack that cannot reach
its channel changes nothing the broker still holds: RabbitMQ requeued the message when the
connection closed, Redis restores it after the visibility timeout, and either way its job is
already done in the ledger, so the redelivery is claimed by nobody (SPEC §10).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import virtual
from redis.exceptions import OutOfMemoryError

logger = logging.getLogger(__name__)


class Consumer(CeleryConsumer):
    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as cleanup_error:
            self.connection = None  # whatever is left of it; the restart opens a new one
            logger.warning(
                "broker connection already torn down during cleanup; reconnecting",
                extra={"error": repr(cleanup_error), "cause": type(exc).__name__},
            )

    def call_soon_ack(self, p: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return super().call_soon_ack(_tolerating_dead_channel(p), *args, **kwargs)


def _tolerating_dead_channel(callback: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except AttributeError as error:
            logger.warning(
                "ack or reject dropped: its broker connection is gone (the broker redelivers; the ledger "
                "ignores the redelivery)",
                extra={"error": repr(error)},
            )
            return None
        except OutOfMemoryError as error:
            # Redis at maxmemory with noeviction refuses the ack's MULTI (ZREM + HDEL): the message
            # stays unacked and comes back after the visibility timeout, to find its job done.
            # kombu's Redis QoS removes the delivery tag from its own count only after that MULTI,
            # so the refused ack would keep one prefetch slot taken until the worker restarts:
            # enough of them and the worker stops consuming. The slot is released here.
            _release_prefetch_slot(callback)
            logger.warning(
                "ack or reject refused by a full Redis (it redelivers later; the ledger ignores it)",
                extra={"error": type(error).__name__},
            )
            return None

    return run


def _release_prefetch_slot(callback: Callable[..., Any]) -> None:
    """Count a message whose ack Redis refused as acked by this worker (the virtual
    transport's own ack, without the Redis index update that failed)."""
    message = getattr(callback, "__self__", None)
    qos = getattr(getattr(message, "channel", None), "qos", None)
    tag = getattr(message, "delivery_tag", None)
    if qos is None or tag is None:
        return
    with contextlib.suppress(Exception):  # best effort: never turn a refused ack into a crash
        virtual.QoS.ack(qos, tag)
