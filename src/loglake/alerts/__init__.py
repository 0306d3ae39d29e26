"""Alerts: what detection rules raised, their state, and their delivery to people and systems."""
