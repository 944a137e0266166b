"""The dreamkit version (its own module, so library code never imports the package facade)."""

__version__ = "0.2.0"
