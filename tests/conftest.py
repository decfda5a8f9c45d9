"""Shared fixtures: the synthetic data sets of `pipeline.synth.common`, each made once per test session, and
one torch thread.

`synth_affwild2`, `synth_emi` and `synth_ah` return the root folder (a Path) of the default data set of
that layout (seed 0); its `synth_manifest.json` says what is in it and `synth_truth/` holds the true face
boxes. `affwild2_cache` is the feature cache of every subject of `synth_affwild2` (one extraction through
the real decoder, MTCNN, backbone and a local Ray, shared by the run and report tests), and
`random_checkpoint(task)` a randomly initialised checkpoint of a task. Treat them as read-only: every test
of the session shares them. `one_thread` runs a test on one
torch thread (a module asks for it with `pytestmark = pytest.mark.usefixtures("one_thread")`). What lwaffect
remembers per machine (`pipeline.cache.backbone_spec`) goes to a folder of the session, for every test and
every command a test starts, never to the user's.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pipeline.cache.backbone_spec import MEMO_VAR
from pipeline.synth.common import SynthConfig
from pipeline.synth.dataset import make_dataset


@pytest.fixture(scope="session", autouse=True)
def session_memo(tmp_path_factory):
    """The session's memo folder, in the environment of this process and the commands it starts."""
    before = os.environ.get(MEMO_VAR)
    os.environ[MEMO_VAR] = str(tmp_path_factory.mktemp("memo"))
    yield Path(os.environ[MEMO_VAR])
    if before is None:
        del os.environ[MEMO_VAR]
    else:
        os.environ[MEMO_VAR] = before


def _make(tmp_path_factory: pytest.TempPathFactory, layout: str) -> Path:
    root = tmp_path_factory.mktemp(f"synth_{layout}")
    make_dataset(SynthConfig(output=root, layout=layout))
    return root


@pytest.fixture(scope="session")
def synth_affwild2(tmp_path_factory) -> Path:
    """The default Aff-Wild2-layout synthetic data set (8 videos, about 600 frames)."""
    return _make(tmp_path_factory, "affwild2")


@pytest.fixture(scope="session")
def synth_emi(tmp_path_factory) -> Path:
    """The default EMI-layout synthetic data set (9 clips)."""
    return _make(tmp_path_factory, "emi")


@pytest.fixture(scope="session")
def synth_ah(tmp_path_factory) -> Path:
    """The default AH-layout (BAH-like) synthetic data set (8 videos of 4 participants)."""
    return _make(tmp_path_factory, "ah")


@pytest.fixture
def one_thread():
    """One torch thread, restored afterwards: on a shared two-core machine small tensors (and MTCNN's small
    convolutions) gain nothing from a second thread, and two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def affwild2_cache(synth_affwild2, tmp_path_factory) -> str:
    """The feature cache of every subject of `synth_affwild2` (random-init backbone)."""
    from jobs.extract.config import ExtractConfig
    from jobs.extract.driver import extract

    cache = tmp_path_factory.mktemp("affwild2_cache") / "cache"
    report = extract(
        ExtractConfig(input=synth_affwild2, cache=str(cache), split="all"), say=lambda line: None
    )
    assert not report.failures, report.failures
    return str(cache)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    """Factory of randomly initialised `tam_s1` checkpoints per task (one backbone built for all)."""
    from jobs.train.state import save_checkpoint
    from model.backbone import BackboneConfig, build_backbone
    from model.configs import build_model

    root = tmp_path_factory.mktemp("checkpoints")
    backbone = build_backbone(BackboneConfig(pretrained=False))
    made: dict[str, Path] = {}

    def make(task: str) -> Path:
        if task not in made:
            model = build_model("tam_s1", task, backbone=backbone, num_frames=16)
            made[task] = save_checkpoint(root / f"{task}.ckpt", model, {"seq_len": 16, "stride": 16})
        return made[task]

    return make
