"""loglake: durable HTTP log ingest, recent logs in milliseconds, and a Parquet lake queried with SQL."""

__version__ = "0.1.0"
