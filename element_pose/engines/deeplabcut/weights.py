"""Pretrained backbone weights for offline compute nodes: a shared cache and clear errors.

DeepLabCut 3's default ``weight_init: "pretrained"`` downloads the backbone's
ImageNet weights from the Hugging Face hub when training starts.  Cluster compute
nodes usually have no internet, and there it fails at once with
``LocalEntryNotFoundError``.  The remedy is to fetch the weights once, on a machine
with internet (a login node), into a cache that the compute nodes share::

    element-pose weights fetch --net cspnext_s --cache /shared/hf-cache
    export ELEMENT_POSE_WEIGHTS_CACHE=/shared/hf-cache   # on the workers

The cache is a Hugging Face home folder (``HF_HOME``): files live in
``<cache>/hub/models--<org>--<repo>/snapshots/<revision>/<file>``, the layout
``huggingface_hub.hf_hub_download`` reads.  Where the weights come from, as
DeepLabCut 3.0.2 loads them:

* ``CSPNeXt`` backbones (``cspnext_*``, ``rtmpose_*``): DeepLabCut's
  ``HuggingFaceWeightsMixin.download_weights`` fetches ``<model_name>.pt`` from
  ``DeepLabCut/DeepLabCut-Backbones`` (into a folder of the installed package, and
  moves it there);
* ``ResNet`` / ``HRNet`` backbones: ``timm.create_model(..., pretrained=True)``
  fetches the model's ``hf_hub_id`` (e.g. ``timm/resnet50_gn.a1h_in1k``) into the
  hub cache (``HF_HUB_CACHE``).

:func:`use_weights_cache` points both at the cache while DeepLabCut trains: it sets
``HF_HOME``/``HF_HUB_CACHE`` (also for child processes, and in
``huggingface_hub.constants`` when that is already imported) and makes CSPNeXt's
download read and write the hub cache instead of the package folder (a weights file
already in DeepLabCut's own folder is still used first).  The cache folder is the
setting ``weights_cache`` (``ELEMENT_POSE_WEIGHTS_CACHE`` or the settings file);
unset, Hugging Face's own default cache (``HF_HUB_CACHE``, ``HF_HOME`` or ``~/.cache/huggingface``).

:func:`offline_hint` turns a hub error during training into an
:class:`EngineError` that names the command to run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from element_pose.engines.deeplabcut.base import EngineError

__all__ = [
    "FETCH_COMMAND",
    "WEIGHTS_CACHE_ENV",
    "WeightSource",
    "backbone_config",
    "fetch_weights",
    "hub_cache",
    "offline_hint",
    "pretrained_sources",
    "use_weights_cache",
    "weights_cache",
]

log = logging.getLogger(__name__)

#: Environment variable (and setting ``weights_cache``) naming the shared cache folder.
WEIGHTS_CACHE_ENV = "ELEMENT_POSE_WEIGHTS_CACHE"
#: The command that fills the cache (``{net}`` is the net type).
FETCH_COMMAND = "element-pose weights fetch --net {net}"
#: DeepLabCut's hub repository of CSPNeXt backbones (``HuggingFaceWeightsMixin``).
DLC_BACKBONES_REPO = "DeepLabCut/DeepLabCut-Backbones"
_TOP_DOWN_PREFIX = "top_down_"


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """One file (or model) of pretrained weights on the hub.

    Attributes:
        repo_id: Hub repository (``DeepLabCut/DeepLabCut-Backbones``, ``timm/...``).
        filename: File in the repository; ``None`` when timm chooses it.
        loader: ``"deeplabcut"`` (DeepLabCut's own download) or ``"timm"``.
        backbone: DeepLabCut backbone type (``CSPNeXt``, ``ResNet``...).
        model_name: The backbone's ``model_name``.
    """

    repo_id: str
    filename: str | None
    loader: str
    backbone: str
    model_name: str

    def __str__(self) -> str:
        where = f"{self.repo_id}/{self.filename}" if self.filename else self.repo_id
        return f"{where} ({self.backbone} {self.model_name}, via {self.loader})"


# ================================================================ the cache
def weights_cache(cache: str | Path | None = None) -> Path | None:
    """The shared weights cache (a Hugging Face home): ``cache``, else the setting.

    The setting ``weights_cache`` (environment ``ELEMENT_POSE_WEIGHTS_CACHE``, or the
    settings file).  Returns ``None`` when neither is set: Hugging Face's own default
    cache is used then.
    """
    if cache not in (None, ""):
        return Path(cache).expanduser().resolve()
    from element_pose.settings import get_settings

    value = get_settings().weights_cache
    return Path(value).expanduser().resolve() if value else None


def hub_cache(cache: str | Path | None = None) -> Path:
    """The hub folder (``HF_HUB_CACHE``) inside the cache, or Hugging Face's default."""
    home = weights_cache(cache)
    if home is not None:
        return home / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


@contextlib.contextmanager
def _hub_environment(home: Path | None) -> Iterator[None]:
    """Set ``HF_HOME``/``HF_HUB_CACHE`` (and the imported hub's constants) to ``home``."""
    if home is None:
        yield
        return
    values = {"HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub")}
    saved_env = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    from huggingface_hub import constants  # reads the environment when first imported

    saved_constants = {k: getattr(constants, k) for k in values}
    for name, value in values.items():
        setattr(constants, name, value)
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name, value in saved_constants.items():
            setattr(constants, name, value)


@contextlib.contextmanager
def _dlc_downloads_into_hub_cache() -> Iterator[None]:
    """Make DeepLabCut's ``HuggingFaceWeightsMixin`` read/write the hub cache.

    DeepLabCut moves the downloaded file into its package folder and deletes the
    hub's copy: a shared, read-only cache could not work that way.  Here a file in
    DeepLabCut's folder is still used first; otherwise the weights are resolved with
    ``hf_hub_download`` in the hub cache (downloaded there when online).
    """
    from deeplabcut.pose_estimation_pytorch.models.backbones import base
    from huggingface_hub import hf_hub_download

    original = base.HuggingFaceWeightsMixin.download_weights

    def download_weights(self: Any, filename: str, force: bool = False) -> Path:
        own = Path(self.backbone_weight_folder) / filename
        if own.exists() and not force:
            return own
        path = Path(hf_hub_download(self.repo_id, filename, force_download=force))
        log.info("pretrained weights %s/%s from %s", self.repo_id, filename, path)
        return path

    base.HuggingFaceWeightsMixin.download_weights = download_weights
    try:
        yield
    finally:
        base.HuggingFaceWeightsMixin.download_weights = original


@contextlib.contextmanager
def use_weights_cache(cache: str | Path | None = None) -> Iterator[Path]:
    """While DeepLabCut runs, load pretrained backbone weights from the shared cache.

    Sets ``HF_HOME``/``HF_HUB_CACHE`` before DeepLabCut (and ``huggingface_hub``) is
    imported, and patches DeepLabCut's CSPNeXt download (see the module docstring).

    Args:
        cache: The cache folder; default ``ELEMENT_POSE_WEIGHTS_CACHE``, else Hugging
            Face's default cache.

    Yields:
        The hub folder used.
    """
    home = weights_cache(cache)
    with _hub_environment(home):
        from element_pose.engines.deeplabcut.runtime import _import_deeplabcut

        _import_deeplabcut()
        with _dlc_downloads_into_hub_cache():
            yield hub_cache(home)


# ============================================================ what to fetch
def backbone_config(net_type: str) -> dict[str, Any]:
    """DeepLabCut's backbone configuration of a net type (``model.backbone``).

    Read from DeepLabCut's model configurations (``config/**/<net_type>.yaml``);
    ``top_down_<backbone>`` uses the backbone's.

    Raises:
        EngineError: DeepLabCut has no configuration with a backbone for ``net_type``.
    """
    import yaml
    from deeplabcut.pose_estimation_pytorch import config as dlc_config

    name = net_type.removeprefix(_TOP_DOWN_PREFIX)
    folder = Path(dlc_config.__file__).parent
    for path in sorted(folder.rglob(f"{name}.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        backbone = (data.get("model") or {}).get("backbone")
        if isinstance(backbone, dict) and backbone.get("type"):
            return dict(backbone)
    known = sorted(p.stem for p in (folder / "backbones").glob("*.yaml"))
    raise EngineError(
        f"DeepLabCut has no backbone configuration for net type {net_type!r} "
        f"(backbones: {', '.join(known)}; also rtmpose_*, top_down_<backbone>)"
    )


def pretrained_sources(net_type: str) -> list[WeightSource]:
    """The hub files that DeepLabCut downloads for ``net_type``'s pretrained backbone.

    Raises:
        EngineError: an unknown net type, or a backbone without downloadable weights.
    """
    from deeplabcut.pose_estimation_pytorch.models.backbones import base

    cfg = backbone_config(net_type)
    kind, model_name = str(cfg["type"]), str(cfg.get("model_name") or "")
    cls = _backbone_class(kind)
    if issubclass(cls, base.HuggingFaceWeightsMixin):
        repo = str(cfg.get("repo_id") or DLC_BACKBONES_REPO)
        return [WeightSource(repo, f"{model_name}.pt", "deeplabcut", kind, model_name)]
    import timm

    pretrained = timm.models.get_pretrained_cfg(model_name)
    hub_id = getattr(pretrained, "hf_hub_id", None) if pretrained else None
    if not hub_id:
        raise EngineError(f"net type {net_type!r} ({kind} {model_name}) has no hub weights")
    return [WeightSource(str(hub_id), getattr(pretrained, "hf_hub_filename", None), "timm",
                         kind, model_name)]


def _backbone_class(kind: str) -> type:
    from deeplabcut.pose_estimation_pytorch.models.backbones import BACKBONES

    cls = BACKBONES.get(kind)
    if cls is None:
        raise EngineError(f"DeepLabCut has no backbone type {kind!r}")
    return cls


def fetch_weights(net_type: str, cache: str | Path | None = None) -> list[WeightSource]:
    """Download ``net_type``'s pretrained backbone weights into the cache.

    Builds the backbone with ``pretrained=True`` through DeepLabCut, as training
    does, inside :func:`use_weights_cache`: the files land in the hub cache.

    Args:
        net_type: DeepLabCut net type (``cspnext_s``, ``resnet_50``, ``hrnet_w32``...).
        cache: Cache folder; default ``ELEMENT_POSE_WEIGHTS_CACHE``, else Hugging
            Face's default cache.

    Returns:
        What was fetched.

    Raises:
        EngineError: an unknown net type, or the hub cannot be reached (named).
    """
    sources = pretrained_sources(net_type)
    cfg = backbone_config(net_type)
    with use_weights_cache(cache) as hub:
        log.info("fetching %s into %s", ", ".join(map(str, sources)), hub)
        from deeplabcut.pose_estimation_pytorch.models.backbones import BACKBONES

        try:
            BACKBONES.build({**cfg, "pretrained": True})
        except Exception as exc:
            if _hub_error(exc) is None:
                raise
            raise EngineError(
                f"cannot download the pretrained weights of {net_type} "
                f"({'; '.join(map(str, sources))}) into {hub}: "
                f"{type(_hub_error(exc)).__name__}: {_first_line(_hub_error(exc))}"
            ) from exc
    return sources


# ======================================================== the offline error
def _hub_error(exc: BaseException | None) -> BaseException | None:
    """The Hugging Face hub error in ``exc``'s chain (cause or context), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__module__.startswith("huggingface_hub"):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


@contextlib.contextmanager
def offline_hint(net_type: str | None, cache: str | Path | None = None) -> Iterator[None]:
    """Re-raise a hub error while training as an :class:`EngineError` naming the fix.

    Args:
        net_type: The net type being trained (named in the message).
        cache: The cache folder in use (default as :func:`weights_cache`).
    """
    try:
        yield
    except Exception as exc:
        hub = _hub_error(exc)
        if hub is None:
            raise
        net = net_type or "<net type>"
        where = hub_cache(cache)
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        state = "this node is offline (HF_HUB_OFFLINE)" if offline else "the hub cannot be reached"
        raise EngineError(
            f"pretrained weights for {net} are not in the cache {where} and {state}: "
            f"run `{FETCH_COMMAND.format(net=net)}` on a machine with internet (with "
            f"{WEIGHTS_CACHE_ENV} or --cache naming a folder this node reads), or set "
            f"weight_init: random ({type(hub).__name__}: {_first_line(hub)})"
        ) from exc
