"""Benchmarks of element-pose against its peers (``python -m bench.run``)."""
