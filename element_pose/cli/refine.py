"""``element-pose refine``: frames to relabel, chosen from estimations, and labelling sets.

``refine select --key ... --params FILE|JSON`` (or ``--paramset ID``) records a
``refine.FrameSelection`` of the matching pose estimations and chooses its frames
(``refine.SelectedFrames``); ``refine write --selection ID`` writes the labelling set
(``refine.LabellingSet``) under the processed root and prints its folder.  The work is
:mod:`element_pose.schemas.refine`; see ``element-pose params outliers`` for the criteria.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from element_pose.cli.common import EXIT_OK, EXIT_USAGE, CommandError, key_restriction, out

__all__ = ["cmd_select", "cmd_write", "register_cli"]

log = logging.getLogger("element_pose.cli")


def _params(text: str) -> dict[str, Any]:
    """``--params``: a JSON file or JSON text."""
    path = Path(text)
    try:
        return json.loads(path.read_text() if path.is_file() else text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--params: neither a JSON file nor JSON text ({exc})",
                           EXIT_USAGE) from None


def _paramset(args: argparse.Namespace, refine) -> int:
    """The ``OutlierParamSet`` id: given, or the parameters inserted (or found)."""
    if (args.params is None) == (args.paramset is None):
        raise CommandError("give either --params or --paramset", EXIT_USAGE)
    if args.paramset is not None:
        return args.paramset
    try:
        return refine.OutlierParamSet.insert_new_params(
            args.description or "refine select", _params(args.params))
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _failed(table, key: dict, result: dict, what: str) -> None:
    """Raise the populate error of ``key``, if any."""
    if result.get("success_count"):
        return
    errors = (table.jobs.errors & key).to_arrays("error_message")
    if len(errors):
        raise CommandError(f"{what} failed: {errors[0]}")


def cmd_select(args: argparse.Namespace) -> int:
    """Record a frame selection of the matching estimations and choose its frames."""
    from element_pose.ops.pipeline import load_pipeline
    from element_pose.schemas import model, refine

    load_pipeline()
    restriction = key_restriction(args.key, model.PoseEstimation, "pose estimation")
    paramset = _paramset(args, refine)
    try:
        key = refine.FrameSelection.insert_selection(
            restriction, paramset, description=args.description or "",
            layout="" if args.layout == "auto" else args.layout)
    except ValueError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    result = refine.SelectedFrames.populate(key, reserve_jobs=True, suppress_errors=True)
    _failed(refine.SelectedFrames, key, result, "choosing frames")
    out(f"frame selection {key['frame_selection_id']} (criteria {paramset}): "
        f"{(refine.SelectedFrames & key).fetch1('n_frames')} frames")
    for row in (refine.SelectedFrames.Frame & key).to_dicts(
            order_by=["model_name", "recording_id", "frame_index"]):
        out(f"  {row['model_name']} recording {row['recording_id']} frame "
            f"{row['frame_index']}: {row['criterion']} {row['score']:.3g}")
    return EXIT_OK


def cmd_write(args: argparse.Namespace) -> int:
    """Write the labelling set of a selection and print its folder."""
    from element_pose.ops.pipeline import load_pipeline
    from element_pose.schemas import refine

    load_pipeline()
    key = {"frame_selection_id": args.selection}
    if not refine.SelectedFrames & key:
        raise CommandError(f"frame selection {args.selection} has no chosen frames "
                           "(run `element-pose refine select` first)", EXIT_USAGE)
    result = refine.LabellingSet.populate(key, reserve_jobs=True, suppress_errors=True)
    _failed(refine.LabellingSet, key, result, "writing the labelling set")
    row = (refine.LabellingSet & key).fetch1()
    out(f"{row['layout']} labelling set of {row['n_images']} frames: "
        f"{refine.LabellingSet.folder_path(key)}")
    return EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``element-pose refine select|write``."""
    parser = subparsers.add_parser(
        "refine", help="choose frames to relabel from estimations; write labelling sets")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    select = actions.add_parser(
        "select", help="choose frames of the matching pose estimations",
        description="Records a refine.FrameSelection of the pose estimations matching "
                    "--key and chooses their frames by the criteria (element-pose params "
                    "outliers), printing them.")
    select.add_argument("--key", action="append",
                        help="restrict to NAME=VALUE (repeatable), e.g. --key subject=m1")
    select.add_argument("--params", metavar="FILE|JSON",
                        help="criteria, e.g. '{\"criteria\": [{\"criterion\": \"jump\"}]}'")
    select.add_argument("--paramset", type=int, metavar="ID",
                        help="an existing refine.OutlierParamSet instead of --params")
    select.add_argument("--layout", choices=["auto", "deeplabcut", "sleap"], default="auto",
                        help="labelling layout (default auto: SLEAP's for SLEAP models, "
                             "else DeepLabCut's)")
    select.add_argument("--description", help="free text")
    select.set_defaults(func=cmd_select)
    write = actions.add_parser(
        "write", help="write a selection's frames and predictions for labelling",
        description="Writes the frames of a selection with the model's predictions as "
                    "initial guesses (a DeepLabCut labeled-data folder or a SLEAP "
                    ".pkg.slp) under the processed root; the user's project is not touched.")
    write.add_argument("--selection", type=int, required=True, metavar="ID",
                       help="the frame selection id")
    write.set_defaults(func=cmd_write)
