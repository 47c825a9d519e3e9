"""Rollback settings live in the one settings module; this name keeps call sites readable."""

from strangler.settings import Settings as RollbackSettings

__all__ = ["RollbackSettings"]
