"""`make_dataset`: writes one synthetic data set layout and its manifest (the layouts: `pipeline.synth.common`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pipeline.io import write_text
from pipeline.synth.affectnet import write_affectnet
from pipeline.synth.affwild2 import write_affwild2
from pipeline.synth.common import MANIFEST, TRUTH_DIR, SynthConfig
from pipeline.synth.layouts import write_ah, write_emi

WRITERS: dict[str, Callable[[SynthConfig, Callable[[str], None]], dict]] = {
    "affwild2": write_affwild2,
    "emi": write_emi,
    "ah": write_ah,
    "affectnet": write_affectnet,
}


def make_dataset(cfg: SynthConfig, say=None) -> Path:
    """Write the data set `cfg` asks for; returns the path of its `synth_manifest.json`.

    `say`, if given, is called with one line per video (per split of still images) written.
    """
    cfg.check()
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    manifest = WRITERS[cfg.layout](cfg, say or (lambda line: None))
    manifest = {"layout": cfg.layout, "seed": cfg.seed, "truth": TRUTH_DIR, **manifest}
    if cfg.rotation:  # every video is displayed turned by it; its width and height are the upright ones
        manifest["rotation"] = cfg.rotation
    path = output / MANIFEST
    write_text(path, json.dumps(manifest, indent=1) + "\n")
    return path
