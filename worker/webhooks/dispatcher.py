"""Job events -> webhook deliveries: which events of which jobs are sent, and the body sent."""

from __future__ import annotations

import json
import logging

from shared.jobs import EventKind, JobEvent, JobRecord, JobStore
from shared.jobs.webhooks import Delivery, WebhookDeliveries, delivery_id_for
from shared.options import CallbackEvents
from shared.tracing import job_logs

log = logging.getLogger(__name__)

END_EVENTS = frozenset({EventKind.succeeded, EventKind.failed, EventKind.canceled})
# the job's status right after an event of each kind
_STATUS_AFTER = {
    EventKind.queued: "queued",
    EventKind.requeued: "queued",
    EventKind.running: "running",
    EventKind.page: "running",
}


def wants(record: JobRecord, event: JobEvent) -> bool:
    """Does the job ask for a callback on this event?"""
    if not record.options.callback_url:
        return False
    return event.kind in END_EVENTS or record.options.callback_events is CallbackEvents.all


def event_body(delivery_id: str, event: JobEvent, record: JobRecord) -> str:
    """The JSON POSTed: what happened and where to read more; never the result itself."""
    error = None
    if event.kind is EventKind.failed and record.error is not None:
        error = {"code": record.error.code.value, "message": record.error.message}
    status = _STATUS_AFTER.get(event.kind, event.kind.value)
    if event.kind is EventKind.requeued and event.range is not None:
        status = "running"  # one page range went back; the job runs on
    failed = event.pages_failed if event.pages_failed is not None else record.pages_failed
    body: dict[str, object] = {
        "delivery_id": delivery_id,
        "event": event.kind.value,
        "job_id": event.job_id,
        "status": status,
        "at": event.at.isoformat(),
        "error": error,
        "progress": {
            "pages_done": event.pages_done if event.pages_done is not None else record.pages_done,
            "pages_total": event.pages_total
            if event.pages_total is not None
            else record.pages_total,
            "pages_failed": failed,
        },
        "links": {"self": f"/jobs/{event.job_id}", "result": f"/jobs/{event.job_id}/result"},
    }
    if event.kind is EventKind.page and event.page is not None:  # the page read, its outcome
        body["page"] = {
            "number": event.page,
            "outcome": event.outcome or "ok",
            "code": event.code.value if event.code is not None else None,
        }
    return json.dumps(body, separators=(",", ":"))


class Dispatcher:
    """Reads the global event stream in the consumer group and schedules deliveries."""

    def __init__(self, store: JobStore, deliveries: WebhookDeliveries, consumer: str) -> None:
        self.store = store
        self.deliveries = deliveries
        self.consumer = consumer

    def handle(self, events: list[JobEvent]) -> int:
        """Schedule a delivery for each event a job asked for, then acknowledge them all;
        the number scheduled."""
        scheduled = 0
        for event in events:
            record = self.store.get(event.job_id)
            if record is None or not wants(record, event):
                continue
            delivery_id = delivery_id_for(event)
            delivery = Delivery(
                delivery_id=delivery_id,
                job_id=event.job_id,
                event=event.kind.value,
                event_id=event.id,
                url=record.options.callback_url or "",
                body=event_body(delivery_id, event, record),
                owner=record.owner or "",
                created_at=event.at.isoformat(),
                traceparent=record.traceparent or "",
            )
            if self.deliveries.schedule(delivery, int(event.id.split("-")[0])):
                scheduled += 1
                with job_logs(event.job_id, record.traceparent):
                    log.info(
                        "job=%s webhook %s scheduled (%s)", event.job_id, delivery_id, event.kind
                    )
        self.deliveries.ack([event.id for event in events])
        return scheduled
