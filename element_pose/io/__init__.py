"""Readers and writers of external formats, one module per format, with no database."""
