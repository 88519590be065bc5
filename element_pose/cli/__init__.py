"""The ``element-pose`` command line: one module per command group.

Parses arguments and calls the library (:mod:`element_pose.ops` and below); nothing
below imports it.  :func:`main` is the console script.
"""

from element_pose.cli.app import main

__all__ = ["main"]
