"""loglake: durable HTTP log ingest and recent logs in milliseconds."""

__version__ = "0.1.0"
