"""The installed distribution's version (pyproject.toml is the one place it is written)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ocrq")
except PackageNotFoundError:  # imported from a checkout that was never pip-installed
    __version__ = "0+unknown"
