"""Webhooks: the dispatcher turns job events into deliveries, the sender POSTs them.

Runs as threads of each worker process (boot starts them; WEBHOOK_DISPATCHER=false turns them
off) or alone as `python -m worker.webhooks`. Nothing here is on a job's path: a job's state
changes write events (shared/jobs/events.py) and this reads them afterwards, so a receiver
that is down, slow or hostile never delays or fails a job.
"""
