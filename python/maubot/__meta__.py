"""The maubot version this package implements the plugin API of."""

__version__ = "0.6.0"
