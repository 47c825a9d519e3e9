"""Postgres schema migrations and their CLI."""
