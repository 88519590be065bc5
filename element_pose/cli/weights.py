"""``element-pose weights fetch``: pretrained backbone weights into a shared cache.

Run on a machine with internet (a cluster's login node); compute nodes without
internet then train with ``weight_init: pretrained`` from the cache named by
``ELEMENT_POSE_WEIGHTS_CACHE`` (setting ``weights_cache``).
"""

from __future__ import annotations

import argparse

from element_pose.cli.common import EXIT_OK, CommandError, out

__all__ = ["cmd_weights", "register_cli"]


def cmd_weights(args: argparse.Namespace) -> int:
    """``element-pose weights fetch``: download (or, with --dry-run, name) the weights."""
    from element_pose.engines.deeplabcut import EngineError, weights

    hub = weights.hub_cache(args.cache)
    try:
        for net in args.net:
            sources = weights.pretrained_sources(net)
            for source in sources:
                out(f"{net}: {source} -> {hub}")
            if not args.dry_run:
                weights.fetch_weights(net, args.cache)
                out(f"{net}: fetched into {hub}")
    except EngineError as exc:
        raise CommandError(str(exc)) from exc
    if not args.dry_run and weights.weights_cache(args.cache) is not None:
        out(f"on compute nodes: export {weights.WEIGHTS_CACHE_ENV}="
            f"{weights.weights_cache(args.cache)}")
    return EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``weights`` subcommand to the ``element-pose`` parser."""
    parser = subparsers.add_parser(
        "weights", help="pretrained backbone weights for offline compute nodes")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser(
        "fetch", help="download a net type's pretrained weights into a shared cache",
        description="Download the pretrained backbone weights that DeepLabCut's "
                    "weight_init: pretrained needs, into a Hugging Face cache folder that "
                    "offline compute nodes read (run on a login node with internet; set "
                    "ELEMENT_POSE_WEIGHTS_CACHE to the same folder on the workers).")
    fetch.add_argument("--net", action="append", required=True, metavar="NET",
                       help="DeepLabCut net type, e.g. cspnext_s, resnet_50 (repeatable)")
    fetch.add_argument("--cache", metavar="DIR", default=None,
                       help="cache folder (a Hugging Face home; default "
                            "ELEMENT_POSE_WEIGHTS_CACHE, else Hugging Face's own cache)")
    fetch.add_argument("--dry-run", action="store_true",
                       help="name the files to download; download nothing")
    fetch.set_defaults(func=cmd_weights)
