"""``element-pose iteration``: the refinement loop (issue 29) from the command line.

* ``import PARENT FILE``: corrected labels (napari-deeplabcut's ``CollectedData``
  h5/csv, a SLEAP ``.slp``) into a new version of VideoSet ``PARENT``;
* ``next V P T``: the next iteration's training task, fine-tuned from training
  ``(video_set_id=V, paramset_idx=P, training_id=T)``;
* ``lineage V P T``: the iterations of a lineage (and ``--scores`` their errors);
* ``superseded``: estimations a later iteration's model replaced;
* ``rerun``: run those again with the newest model.

The work is :mod:`element_pose.ops.iteration`.
"""

from __future__ import annotations

import argparse
import json

from element_pose.cli.common import EXIT_FAILED, EXIT_OK, CommandError, key_restriction, out

__all__ = ["cmd_import", "cmd_lineage", "cmd_next", "cmd_rerun", "cmd_superseded",
           "register_cli"]


def _load():
    from element_pose.ops import iteration
    from element_pose.ops.pipeline import load_pipeline

    load_pipeline()  # connects and activates
    return iteration


def _training(args: argparse.Namespace) -> dict:
    return {"video_set_id": args.video_set_id, "paramset_idx": args.paramset_idx,
            "training_id": args.training_id}


def cmd_import(args: argparse.Namespace) -> int:
    """Import corrected labels into a new VideoSet version."""
    iteration = _load()
    try:
        key = iteration.import_corrections(args.parent, args.file, video_set_id=args.new_id,
                                           imported_by=args.by, description=args.description)
    except (iteration.CorrectionsError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    from element_pose.schemas import train

    frames = (train.VideoSetVersion.Frame & key).to_dicts()
    out(json.dumps({**key, "added": sum(f["change"] == "added" for f in frames),
                    "changed": sum(f["change"] == "changed" for f in frames)}))
    return EXIT_OK


def cmd_next(args: argparse.Namespace) -> int:
    """Create the next iteration's training task."""
    iteration = _load()
    params = json.loads(args.params) if args.params else None
    try:
        task = iteration.next_iteration(_training(args), args.on, params=params,
                                        model_name=args.model_name)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    out(json.dumps(task))
    return EXIT_OK


def cmd_lineage(args: argparse.Namespace) -> int:
    """Print a lineage's iterations (or their scores)."""
    iteration = _load()
    if args.figure:
        from element_pose.processing.qc import save_figure
        from element_pose.processing.refinement import lineage_figure

        scores = iteration.lineage_scores(_training(args))
        try:
            out(str(save_figure(lineage_figure(scores, metric=args.metric), args.figure)))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        return EXIT_OK
    if args.scores:
        out(iteration.lineage_scores(_training(args)).to_csv(index=False).rstrip())
        return EXIT_OK
    for row in iteration.lineage(_training(args)):
        out(json.dumps(row, default=str))
    return EXIT_OK


def _restriction(args: argparse.Namespace) -> dict:
    from element_pose.schemas import model

    return key_restriction(args.key, model.PoseEstimation, "pose estimation")


def cmd_superseded(args: argparse.Namespace) -> int:
    """List estimations made by a model a later iteration replaced."""
    iteration = _load()
    for row in iteration.superseded_estimations(_restriction(args)):
        out(json.dumps(row, default=str))
    return EXIT_OK


def cmd_rerun(args: argparse.Namespace) -> int:
    """Run superseded estimations again with the newest model."""
    iteration = _load()
    try:
        tasks = iteration.rerun_superseded(_restriction(args), populate=not args.no_populate)
    except RuntimeError as exc:
        out(str(exc))
        return EXIT_FAILED
    for task in tasks:
        out(json.dumps(task, default=str))
    return EXIT_OK


def _training_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video_set_id", type=int)
    parser.add_argument("paramset_idx", type=int)
    parser.add_argument("training_id", type=int)


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``element-pose iteration`` and its subcommands."""
    group = subparsers.add_parser("iteration", help="the refinement loop: corrected labels "
                                  "in, the next iteration, superseded estimations")
    sub = group.add_subparsers(dest="iteration_command", required=True)

    imp = sub.add_parser("import", help="corrected labels into a new VideoSet version")
    imp.add_argument("parent", type=int, help="the VideoSet the corrections apply to")
    imp.add_argument("file", help="CollectedData_<scorer>.h5/.csv or a SLEAP .slp")
    imp.add_argument("--new-id", type=int, help="key of the new set (default: next free)")
    imp.add_argument("--by", help="who imported (default: the system user)")
    imp.add_argument("--description", default="", help="free text")
    imp.set_defaults(func=cmd_import)

    nxt = sub.add_parser("next", help="the next iteration's training task (fine-tuned)")
    _training_args(nxt)
    nxt.add_argument("--on", type=int, help="VideoSet to train on (default: the newest "
                                            "version of the previous one)")
    nxt.add_argument("--params", help="JSON of parameters that change, e.g. "
                                      "'{\"epochs\": 50}'")
    nxt.add_argument("--model-name", help="name for the previous run's model if it is "
                                          "not registered")
    nxt.set_defaults(func=cmd_next)

    lin = sub.add_parser("lineage", help="the iterations of a training's lineage")
    _training_args(lin)
    lin.add_argument("--scores", action="store_true", help="error per iteration (CSV)")
    lin.add_argument("--figure", metavar="PNG", help="write the figure of the held-out "
                                                     "error per iteration and body part")
    lin.add_argument("--metric", default="rmse", help="for --figure: rmse, pck_5, ...")
    lin.set_defaults(func=cmd_lineage)

    for name, func, text in (("superseded", cmd_superseded,
                              "estimations made by a model a later iteration replaced"),
                             ("rerun", cmd_rerun,
                              "run superseded estimations again with the newest model")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--key", action="append", metavar="NAME=VALUE",
                         help="restrict the estimations (repeatable)")
        if name == "rerun":
            cmd.add_argument("--no-populate", action="store_true",
                             help="only create the tasks (workers run them)")
        cmd.set_defaults(func=func)
