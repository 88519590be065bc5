"""Peer side of the benchmarks: each module runs in the peer's own virtual environment.

These modules import only the standard library, :mod:`bench.common` and the peer.
"""
