"""Package version (single source for pyproject and runtime)."""

__version__ = "0.1.0"
