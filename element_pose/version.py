"""Package version (single source for pyproject and runtime)."""

__all__ = [
    "__version__",
]

__version__ = "0.1.0"
