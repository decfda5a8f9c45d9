"""The backbone's part of a cache spec (`model.backbone.MultiScaleBackbone.spec()`: names, shapes, weights
hash, normalisation), remembered on this machine so that a driver that only describes a run (the
extraction's) need not build the backbone, and import torch and timm for it, to learn what an earlier
run already learned: 2.5 to 5 s of CPU on a 2-core machine, while Ray and the stage workers start.

`backbone_spec(cfg)` reads the spec from `memo_dir()/backbone-specs/<key>.json`, where the key hashes
everything the spec follows from: every `BackboneConfig` field; the weights file's resolved path, inode,
size, modification time and change time (its content hash is in the spec; the change time is the system's,
which copies that keep the modification time, `cp -p`, `rsync -a` or `tar x`, cannot set); the versions of
lwaffect, torch and timm; and the source of the modules that build the backbone and its spec (`SOURCES`). Otherwise it builds the backbone
(`model.backbone`, imported only then) and remembers the spec, written atomically. A memo that cannot be
read is built again; where none can be written the spec is built each time, as without a memo. The hub's
weights (`pretrained` without a weights file) are never taken from the memo: building them is what tells,
before any stage starts, that the hub cannot be reached and which file to pass instead.

`memo_dir()`: `$LWAFFECT_MEMO_DIR`, else `$XDG_CACHE_HOME/lwaffect`, else `~/.cache/lwaffect`.

May import: model (the version, backbone_config; backbone only to build), pipeline.io.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import model
from model.backbone_config import BackboneConfig
from pipeline.io import write_text

MEMO_VAR = "LWAFFECT_MEMO_DIR"
SOURCES = ("backbone.py", "backbone_config.py", "split.py", "weights.py")  # model/ modules the spec follows
PACKAGES = ("torch", "timm")  # whose versions the spec follows (timm's models, torch's layers)

log = logging.getLogger(__name__)


def memo_dir() -> Path:
    """Where lwaffect remembers what it learned on this machine."""
    if os.environ.get(MEMO_VAR):
        return Path(os.environ[MEMO_VAR])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lwaffect"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def memo_key(cfg: BackboneConfig) -> str | None:
    """The key of `cfg`'s spec; None where the weights file cannot be read (the build then says why) or
    where the weights come from the hub."""
    if cfg.pretrained and cfg.weights is None:
        return None
    weights = None
    if cfg.weights is not None:
        try:
            path = Path(cfg.weights).resolve()
            stat = path.stat()
        except OSError:
            return None
        weights = [str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
    code = Path(model.__file__).parent
    facts = {
        "config": asdict(cfg),
        "weights": weights,
        "versions": {"lwaffect": model.__version__} | {p: _version(p) for p in PACKAGES},
        "sources": {name: hashlib.sha256((code / name).read_bytes()).hexdigest() for name in SOURCES},
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def _memo_file(key: str, memo: Path | None) -> Path:
    return (memo or memo_dir()) / "backbone-specs" / f"{key}.json"


def backbone_spec(cfg: BackboneConfig, memo: Path | None = None) -> dict[str, Any]:
    """`build_backbone(cfg).spec()`, read from the memo where an earlier call remembered it (`memo`: the
    folder, None: `memo_dir()`)."""
    spec = remembered(cfg, memo)
    if spec is None:
        spec = _built(cfg)
        remember(cfg, spec, memo)
    return spec


def remembered(cfg: BackboneConfig, memo: Path | None = None) -> dict[str, Any] | None:
    """`cfg`'s spec as remembered on this machine; None where none is (or the weights come from the hub)."""
    key = memo_key(cfg)
    if key is None:
        return None
    try:
        spec = json.loads(_memo_file(key, memo).read_text())
    except (OSError, ValueError):
        return None  # none yet, or unreadable: built and written (over) by the next `backbone_spec`
    return spec if isinstance(spec, dict) and spec.get("backbone") == cfg.name else None


def remember(cfg: BackboneConfig, spec: dict[str, Any], memo: Path | None = None) -> None:
    """Remember `spec` as `cfg`'s (built here, or by an extraction's backbone worker), written atomically;
    nothing where it cannot be written or the weights come from the hub."""
    key = memo_key(cfg)
    if key is None:
        return
    file = _memo_file(key, memo)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        write_text(file, json.dumps(spec, indent=1, sort_keys=True))
    except OSError as err:
        log.debug("backbone spec not remembered in %s: %s", file, err)


def forget(cfg: BackboneConfig, memo: Path | None = None) -> bool:
    """Drop `cfg`'s remembered spec, so that the next `backbone_spec` builds it (after a stage worker found
    that its backbone does not match the spec); whether there was one."""
    key = memo_key(cfg)
    if key is None:
        return False
    try:
        _memo_file(key, memo).unlink()
    except OSError:
        return False
    return True


def _built(cfg: BackboneConfig) -> dict[str, Any]:
    from model.backbone import build_backbone  # imported only here: torch and timm come with it

    return build_backbone(cfg).spec()
