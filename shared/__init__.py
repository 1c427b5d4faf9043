"""Code both the API and the worker import: settings, job model, JobStore, storage, queue config."""

__version__ = "0.1.0"
