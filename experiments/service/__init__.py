"""Use cases: each function takes a session and never commits (the caller does)."""
