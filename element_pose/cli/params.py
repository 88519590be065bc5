"""``element-pose params [NAME] [--update FILE]``: print the parameter-set models as tables.

The tables are generated from the pydantic models' JSON schemas
(:func:`element_pose.core.params.params_markdown`); ``--update README.md`` rewrites
the README's generated section.  No database.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from element_pose.core.params import ParamSet, param_sets, params_markdown, update_markdown

__all__ = ["PARAM_MODULES", "load_param_sets", "register_cli"]

#: Modules declaring parameter sets besides the engines (imported to register them).
PARAM_MODULES = (
    "element_pose.processing.filters",
    "element_pose.processing.labeled_video",
    "element_pose.processing.outliers",
    "element_pose.processing.threed.board",
    "element_pose.processing.threed.triangulation",
)


def load_param_sets() -> dict[str, type[ParamSet]]:
    """Every parameter set: the engines' (training) and the processing's (the rest)."""
    from element_pose.engines import available_engines, get_engine

    for name in available_engines():
        try:
            get_engine(name)
        except (ValueError, ImportError):  # an engine whose module cannot be imported here
            continue
    for module in PARAM_MODULES:
        importlib.import_module(module)
    return param_sets()


def _cmd_params(args: argparse.Namespace) -> int:
    known = load_param_sets()
    if args.name and args.name not in known:
        sys.stderr.write(f"unknown parameter set {args.name!r}; known: {list(known)}\n")
        return 2
    if args.update:
        update_markdown(args.update)
        return 0
    sys.stdout.write(params_markdown([args.name] if args.name else None))
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``element-pose params [NAME]`` (print parameter-set models; no database)."""
    cmd = subparsers.add_parser(
        "params", help="print the keys, types and ranges of every parameter set")
    cmd.add_argument("name", nargs="?",
                     help="one parameter set: training, filter, labeled_video, calibration, "
                          "triangulation, outliers")
    cmd.add_argument("--update", metavar="FILE",
                     help="rewrite the generated tables in FILE (e.g. README.md)")
    cmd.set_defaults(func=_cmd_params)
