"""The Celery worker: boot (check dirs, warm the engine), the OCR task and the engines."""
