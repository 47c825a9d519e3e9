"""Check thresholds live in the one settings module; these names keep the checks readable."""

from strangler.settings import Settings as CheckSettings
from strangler.settings import get_settings as get_check_settings

__all__ = ["CheckSettings", "get_check_settings"]
