"""Persistence: models, sessions, bulk ingest and the SQL that aggregates."""
