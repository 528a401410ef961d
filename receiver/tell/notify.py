"""Fan events out to every channel off the caller's thread; a failure never reaches a rollback.

`Notifications.notify(event)` returns at once: each channel that wants the event gets its
own job on a small bounded thread pool. A channel's failure is logged (no secret) and
counted in `rollback_notification_failures_total{channel}`. Escalations and blocked
emergencies are told once per trigger episode, not once per Alertmanager repeat: the
`once` callable (the store's Redis `SET NX EX`) says whether this is the first time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from receiver import metrics
from receiver.redaction import Redactor
from receiver.tell import base

if TYPE_CHECKING:
    from receiver.config import Settings

log = logging.getLogger("receiver.notify")

ONCE_PER_EPISODE = (base.ESCALATION, base.BLOCKED_EMERGENCY)


class Notifications:
    """Sends events to channels in the background, once per episode where it matters."""

    def __init__(
        self,
        notifiers: Sequence[base.Notifier],
        once: Callable[[str, int], bool] | None = None,
        once_ttl_seconds: int = 86400,
        max_workers: int = 4,
        max_queued: int = 200,
        redact: Redactor | None = None,
    ) -> None:
        self.notifiers = list(notifiers)
        self.redact = redact or Redactor()
        self.once = once
        self.once_ttl_seconds = once_ttl_seconds
        self.max_queued = max_queued
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="notify")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._stopping = threading.Event()

    @classmethod
    def from_settings(
        cls, settings: Settings, once: Callable[[str, int], bool] | None = None
    ) -> Notifications:
        """The configured channels, whose retry waits end early when `close` gives up."""
        notifications = cls([], once=once, redact=settings.redactor())
        notifications.notifiers = build_notifiers(settings, sleep=notifications.sleep, once=once)
        return notifications

    def sleep(self, seconds: float) -> None:
        """A retry back-off that a shutting-down process cuts short."""
        self._stopping.wait(seconds)

    def notify(self, event: base.Event) -> None:
        """Queue the event for every channel that wants it; never raises, never blocks long."""
        try:
            event = self.redact.obj(event)  # what a channel sends is built from this event
            targets = [n for n in self.notifiers if n.wants(event)]
            if not targets or not self._first_time(event):
                return
            for notifier in targets:
                self._submit(notifier, event)
        except Exception as exc:  # a notification problem must never reach the rollback
            log.error(
                "notification of %s for %s not queued: %s",
                event.kind,
                event.service,
                exc.__class__.__name__,
            )

    def _first_time(self, event: base.Event) -> bool:
        """False for a repeat of an escalation or blocked emergency already told this episode."""
        if event.kind not in ONCE_PER_EPISODE or self.once is None or not event.episode:
            return True
        if event.once_claimed:  # the escalation digest claimed it when it decided to tell it
            return True
        key = base.once_key(event)
        try:
            first = self.once(key, self.once_ttl_seconds)
        except Exception as exc:
            # Better told twice than never: the store is down, tell anyway.
            log.warning(
                "cannot tell whether %s was already notified (%s); notifying",
                key,
                exc.__class__.__name__,
            )
            return True
        if not first:
            log.info("%s for %s already notified this episode", event.kind, event.service)
        return bool(first)

    def _submit(self, notifier: base.Notifier, event: base.Event) -> None:
        with self._lock:
            if self._closed:
                self._failed(notifier.channel, event, "notifier closed")
                return
            if len(self._pending) >= self.max_queued:
                self._failed(notifier.channel, event, "queue full")
                return
            future = self._executor.submit(self._send, notifier, event)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _send(self, notifier: base.Notifier, event: base.Event) -> None:
        try:
            notifier.send(event)
        except base.NotificationError as exc:
            self._failed(notifier.channel, event, str(exc))
        except Exception as exc:  # a bug in a channel is still only a failed notification
            self._failed(notifier.channel, event, f"unexpected {exc.__class__.__name__}")
        else:
            log.info(
                "notified %s: %s for %s",
                notifier.channel,
                event.kind,
                event.service,
                extra={"rollback_id": event.rollback_id},
            )

    @staticmethod
    def _failed(channel: str, event: base.Event, why: str) -> None:
        metrics.NOTIFY_FAILURES.labels(channel).inc()
        log.warning(
            "notification to %s failed: %s for %s: %s",
            channel,
            event.kind,
            event.service,
            why,
            extra={"rollback_id": event.rollback_id},
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait up to `timeout` seconds for queued sends; True when all finished."""
        with self._lock:
            pending = set(self._pending)
        if not pending:
            return True
        _, not_done = wait(pending, timeout=timeout)
        return not not_done

    def close(self, timeout: float = 10.0) -> None:
        """Finish queued sends (bounded), then stop the workers and close the channels."""
        with self._lock:
            self._closed = True
        self.flush(timeout)
        self._stopping.set()  # what is still retrying makes its last attempts without waiting
        self._executor.shutdown(wait=False, cancel_futures=True)
        for notifier in self.notifiers:
            closer = getattr(notifier, "close", None)
            if callable(closer):
                closer()


def build_notifiers(
    settings: Settings,
    sleep: Callable[[float], None] = time.sleep,
    once: Callable[[str, int], bool] | None = None,
) -> list[base.Notifier]:
    """One notifier per configured channel (SLACK_WEBHOOK, PAGERDUTY_KEY, INCIDENT_*)."""
    from receiver.tell.pagerduty import PagerDutyNotifier
    from receiver.tell.slack import SlackNotifier

    notifiers: list[base.Notifier] = []
    if settings.slack_webhook:
        notifiers.append(
            SlackNotifier(settings.slack_webhook, public_url=settings.public_url, sleep=sleep)
        )
    if settings.pagerduty_key:
        notifiers.append(
            PagerDutyNotifier(settings.pagerduty_key, url=settings.pagerduty_url, sleep=sleep)
        )
    notifiers += incident_notifiers(settings, sleep, once)
    return notifiers


def incident_notifiers(
    settings: Settings,
    sleep: Callable[[float], None] = time.sleep,
    once: Callable[[str, int], bool] | None = None,
) -> list[base.Notifier]:
    """INCIDENT_REPO (GitHub issues) and INCIDENT_WEBHOOK, when the settings carry them."""
    from receiver.tell.incident_webhook import IncidentWebhookNotifier

    notifiers: list[base.Notifier] = []
    if settings.incident_repo:  # PyGithub (15 MB a process) imported only when it is used
        from receiver.tell.incident import IncidentNotifier

        # INCIDENT_TOKEN(_FILE), else GITOPS_TOKEN; Secrets are re-read on rotation.
        token = settings.incident_token if settings.incident_token.get() else settings.gitops_token
        notifiers.append(
            IncidentNotifier(
                settings.incident_repo,
                token,
                api_url=settings.github_api_url,
                public_url=settings.public_url,
                claim=once,
                sleep=sleep,
            )
        )
    if settings.incident_webhook.get():
        notifiers.append(
            IncidentWebhookNotifier(
                settings.incident_webhook, settings.incident_webhook_token, sleep=sleep
            )
        )
    return notifiers
