"""Configuration: the settings model and the example files an operator starts from."""

from config.settings import ConfigError, ExtensionProfile, Settings, load_settings

__all__ = ["ConfigError", "ExtensionProfile", "Settings", "load_settings"]
