"""Test helpers shared by the test suites (no database, no network)."""
