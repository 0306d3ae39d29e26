"""Asking in plain language: a question becomes one checked SELECT over the lake, with the files and
bytes it would scan, before anything runs (service.py composes the parts: providers, catalog, guard,
estimate, the conversations' store)."""
