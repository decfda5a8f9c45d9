"""`lwaffect extract` end to end: real decode, MTCNN, timm (random init) and Ray on the synthetic data set.

One local extraction of a few subjects is the reference. Against it: the true face boxes of the
generator; a rerun (skips everything); bad videos beside a good one; a video whose face worker is killed
each time it works on it (it fails, the run goes on); a worker whose backbone is not the
one the driver's remembered spec describes; a machine's first run, whose backbone workers describe the
backbone; a run killed with SIGKILL inside a
shard's write and resumed; and a run on a two-node Ray cluster on loopback addresses (127.0.0.2 / 127.0.0.3).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray

import pipeline.cache.backbone_spec as backbone_spec_module
from jobs.extract.config import ExtractConfig, FaceSettings
from jobs.extract.driver import extract
from jobs.extract.runtime import RuntimeConfig, ray_session
from jobs.extract.stages.write import PAUSE_VAR
from model.backbone import build_backbone
from pipeline.cache.backbone_spec import MEMO_VAR, memo_key
from pipeline.cache.read import open_cache
from pipeline.cache.schema import read_metadata
from pipeline.cache.spec import SpecMismatch
from pipeline.faces.detect import box_iou
from pipeline.features import cosine_per_frame
from pipeline.io import is_temporary
from tests.helpers import write_video

pytestmark = pytest.mark.slow
VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[3]
SETTINGS = FaceSettings()  # the CLI's defaults: the runs made through it compare equal


def _root(fixture) -> Path:
    return fixture if isinstance(fixture, Path) else Path(getattr(fixture, "root", fixture))


def pick_subjects(root: Path) -> tuple[list[str], dict]:
    """The two-subject video's subjects and one one-person video with a no-face stretch, shortest first."""
    manifest = json.loads((root / "synth_manifest.json").read_text())
    videos = {v["name"]: v for v in manifest["videos"]}
    two = next(v for v in manifest["videos"] if len(v["subjects"]) == 2)
    ones = sorted((v for v in manifest["videos"] if len(v["subjects"]) == 1), key=lambda v: v["frames"])
    gap = next(v for v in ones if v["no_face_frames"])
    return [*two["subjects"], *gap["subjects"]], videos


def truth(root: Path, video: str, subject: str) -> dict[str, np.ndarray]:
    table = pq.read_table(root / "synth_truth" / f"{video}.parquet").to_pandas()
    rows = table[table["subject"] == subject].sort_values("index")
    return {
        "index": rows["index"].to_numpy(),
        "face": rows["face"].to_numpy(bool),
        "box": rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32),
    }


def assert_same_cache(got_location: str, want_location: str, subjects: list[str]) -> None:
    got, want = open_cache(got_location), open_cache(want_location)
    assert got.subjects() == sorted(subjects)
    for subject in subjects:
        a, b = got.read(subject), want.read(subject)
        np.testing.assert_array_equal(a.index, b.index)
        np.testing.assert_array_equal(a.face, b.face)
        np.testing.assert_allclose(a.box, b.box, atol=1e-3, equal_nan=True)
        for x, y in zip(a.maps, b.maps, strict=True):
            assert cosine_per_frame(x[a.face], y[b.face]).min() >= 0.999
        assert got.metadata(subject)["complete"] is True


@pytest.fixture(scope="module")
def dataset(synth_affwild2):
    root = _root(synth_affwild2)
    subjects, videos = pick_subjects(root)
    return root, subjects, videos


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    with ray_session(RuntimeConfig(temp_dir=str(tmp_path_factory.mktemp("ray")))) as resources:
        yield resources


@pytest.fixture(scope="module")
def reference(dataset, local_ray, tmp_path_factory):
    root, subjects, _ = dataset
    location = str(tmp_path_factory.mktemp("reference") / "cache")
    lines: list[str] = []
    report = extract(
        ExtractConfig(input=root, cache=location, faces=SETTINGS, subjects=tuple(subjects)), lines.append
    )
    return location, report, lines


@pytest.mark.timeout(300)
def test_extraction_finds_the_true_faces(dataset, reference):
    root, subjects, videos = dataset
    location, report, lines = reference
    assert report.exit_code == 0 and report.failures == []
    assert sorted(report.cached) == sorted(subjects)
    cache = open_cache(location)
    assert cache.subjects() == sorted(subjects)
    by_subject = {s: v for v in videos.values() for s in v["subjects"]}
    centres = {}
    for subject in subjects:
        video = by_subject[subject]
        got, want = cache.read(subject), truth(root, video["name"], subject)
        assert cache.num_frames(subject) == video["frames"] == len(want["index"])
        np.testing.assert_array_equal(got.index, want["index"])
        both = got.face & want["face"]
        assert both.sum() >= 0.98 * want["face"].sum(), subject
        assert np.median(box_iou(got.box[both], want["box"][both])) >= 0.85, subject
        for start, stop in video["no_face_frames"]:
            assert not got.face[start:stop].any(), (subject, start, stop)
            assert set(got.source[start:stop]) == {"none"}
            assert not got.maps[0][start:stop].any()
        centres[subject] = np.median((got.box[got.face, 0] + got.box[got.face, 2]) / 2)
        assert read_metadata(pq.read_metadata(Path(location) / cache.manifest()["file"][0].as_py()))[
            "complete"
        ]
    left = next(s for s in subjects if s.endswith("_left"))
    right = next(s for s in subjects if s.endswith("_right"))
    assert centres[left] < centres[right]
    # progress and the per-stage table were reported
    assert any("videos]" in line and "done" in line for line in lines)
    table = next(line for line in lines if line.startswith("stage")).splitlines()
    assert table[0].split() == ["stage", "frames", "seconds", "frames/s"]
    assert [row.split()[0] for row in table[1:]] == [*report.stages, "end-to-end"]
    for stage in ("decode", "detect", "align", "backbone", "write"):
        assert report.stages[stage].frames > 0 and report.stages[stage].seconds > 0, stage
    manifest = cache.manifest().to_pylist()
    assert {r["subject"] for r in manifest} == set(subjects)
    assert all(r["bytes"] > 0 and r["faces"] > 0 for r in manifest)


@pytest.mark.timeout(120)
def test_rerun_skips_complete_shards(dataset, reference):
    root, subjects, _ = dataset
    location, _, _ = reference
    before = {p.name: p.stat().st_mtime_ns for p in (Path(location) / "shards").iterdir()}
    report = extract(
        ExtractConfig(input=root, cache=location, faces=SETTINGS, subjects=tuple(subjects)), print
    )
    assert sorted(report.skipped) == sorted(subjects) and report.cached == [] and report.exit_code == 0
    assert {p.name: p.stat().st_mtime_ns for p in (Path(location) / "shards").iterdir()} == before
    other = FaceSettings(face=type(SETTINGS.face)(**{**SETTINGS.face.__dict__, "min_face_size": 17}))
    with pytest.raises(RuntimeError, match="min_face_size"):
        extract(ExtractConfig(input=root, cache=location, faces=other, subjects=tuple(subjects)), print)


def bad_videos_folder(root: Path, good: Path) -> Path:
    """A plain folder: one good video and four bad ones."""
    import av

    folder = root / "plain"
    folder.mkdir()
    shutil.copy(good, folder / "good.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("these are not the frames you are looking for\n" * 20)
    # a header (moov first) that claims every frame, and only the first quarter of the data
    frames = []
    with av.open(str(good)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            frames.append(frame.to_ndarray(format="rgb24"))
            if i == 79:
                break
    write_video(folder / "cut_tmp.mp4", np.stack(frames), faststart=True)
    data = (folder / "cut_tmp.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 4])
    (folder / "cut_tmp.mp4").unlink()
    ramp = np.linspace(0, 255, 160, dtype=np.uint8)[None, None, :, None]
    noface = np.broadcast_to(ramp, (40, 120, 160, 3)).copy()
    noface[:, :, :, 1] = np.arange(40, dtype=np.uint8)[:, None, None] * 5
    write_video(folder / "noface.mp4", noface)
    return folder


@pytest.mark.timeout(300)
def test_bad_videos_are_failures_and_the_run_goes_on(dataset, local_ray, tmp_path):
    from typer.testing import CliRunner

    from jobs.cli import app

    root, subjects, videos = dataset
    shortest = min((v for v in videos.values() if len(v["subjects"]) == 1), key=lambda v: v["frames"])
    folder = bad_videos_folder(tmp_path, root / shortest["path"])
    location = str(tmp_path / "cache")
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["extract", "--input", str(folder), "--cache", location])
    assert result.exit_code == 2, result.output
    assert time.perf_counter() - started < 280  # nothing hangs (decode stalls are cut at 30 s)
    cache = open_cache(location)
    assert cache.subjects() == ["good"]
    failures = {r["subject"]: r for r in cache.failures().to_pylist()}
    assert set(failures) == {"empty", "notes", "truncated", "noface"}
    assert "empty" in failures["empty"]["reason"] and failures["empty"]["stage"] == "decode"
    assert failures["notes"]["stage"] == "decode" and "notes.mp4" in failures["notes"]["reason"]
    assert failures["truncated"]["stage"] == "decode" and "truncated.mp4" in failures["truncated"]["reason"]
    assert failures["noface"]["stage"] == "faces" and "no face" in failures["noface"]["reason"]
    for name in failures:
        assert f"failed: {name}" in result.output


def kill_the_worker_decoding(path: Path, stop: threading.Event, killed: set[int]) -> None:
    """SIGKILL the face worker whose decoder child has `path` open, as the kernel's out-of-memory killer
    or a crash in native code would end it, each time one does, until `stop`; the killed pids in `killed`."""
    import psutil  # bundled with Ray

    target = str(path.resolve())
    decoders: set[int] = (
        set()
    )  # each decoder once: a killed worker's decoder, dying too, is orphaned to pid 1
    while not stop.is_set():
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if proc.pid in decoders or "pipeline.video.sources" not in " ".join(
                    proc.info["cmdline"] or []
                ):
                    continue
                if any(f.path == target for f in proc.open_files()):
                    decoders.add(proc.pid)
                    worker = proc.parent()
                    if worker is not None and " ".join(worker.cmdline()).startswith("ray::"):  # a Ray worker
                        killed.add(worker.pid)
                        worker.kill()
            except psutil.Error:
                continue
        time.sleep(0.05)


@pytest.mark.timeout(300)
def test_a_video_that_kills_its_worker_fails_after_one_retry_and_the_run_goes_on(
    dataset, local_ray, tmp_path
):
    root, _, videos = dataset
    ones = sorted((v for v in videos.values() if len(v["subjects"]) == 1), key=lambda v: v["frames"])[:2]
    doomed, kept = ones[0]["subjects"][0], ones[1]["subjects"][0]
    stop, killed = threading.Event(), set()
    killer = threading.Thread(target=kill_the_worker_decoding, args=(root / ones[0]["path"], stop, killed))
    killer.start()
    try:
        cfg = ExtractConfig(
            input=root, cache=str(tmp_path / "cache"), faces=SETTINGS, subjects=(doomed, kept)
        )
        report = extract(cfg, print)  # returns: Ray Data's default would retry the video for ever
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1 + RuntimeConfig().task_retries  # tried, tried again, given up
    assert report.exit_code == 2 and report.cached == [kept]
    (failure,) = report.failures
    assert failure.subject == doomed and failure.stage == "pipeline" and "worker died" in failure.reason
    cache = open_cache(cfg.cache)
    assert cache.subjects() == [kept] and cache.metadata(kept)["complete"] is True
    assert [r["subject"] for r in cache.failures().to_pylist()] == [doomed]


@pytest.mark.timeout(300)
def test_a_backbone_other_than_the_remembered_spec_stops_the_run(dataset, local_ray, tmp_path, monkeypatch):
    # the driver describes the backbone from the machine's memo; a worker that builds another one (here:
    # a memo saying other weights) stops the run before any map is written, and the memo is forgotten
    root, subjects, _ = dataset
    monkeypatch.setenv(MEMO_VAR, str(tmp_path / "memo"))
    cfg = ExtractConfig(input=root, cache=str(tmp_path / "cache"), faces=SETTINGS, subjects=(subjects[0],))
    memo = tmp_path / "memo" / "backbone-specs" / f"{memo_key(cfg.backbone)}.json"
    memo.parent.mkdir(parents=True)
    memo.write_text(json.dumps(build_backbone(cfg.backbone).spec() | {"weights_hash": "other"}))
    with pytest.raises(SpecMismatch, match=r"on node 127\.0\.0\.1 .*weights_hash: 'random-init' vs 'other'"):
        extract(cfg, print)
    assert not memo.exists()
    assert not list((tmp_path / "cache" / "shards").iterdir())


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "runtime, plan",
    [
        (RuntimeConfig(), "write in the backbone worker"),  # the one backbone worker writes too
        (RuntimeConfig(backbone_actors=2, backbone_cpus=0.25), "write 1 x 0.25 CPU"),  # a writer apart
    ],
    ids=["writer-joined", "writer-apart"],
)
def test_a_machine_s_first_run_takes_the_spec_from_its_backbone_workers(dataset, reference, local_ray,
                                                                        tmp_path, monkeypatch, runtime, plan):  # fmt: skip
    # nothing remembered: the driver builds no backbone (here it cannot), the workers describe it, and the
    # cache is the one a driver that knew the spec makes; the next run's driver reads the spec it remembered.
    # With the writer in a worker of its own, two backbone workers each describe it to the writer
    root, subjects, _ = dataset
    monkeypatch.setenv(MEMO_VAR, str(tmp_path / "memo"))

    def no_build(cfg):
        raise AssertionError("the driver built the backbone")

    monkeypatch.setattr(backbone_spec_module, "_built", no_build)  # the driver's process only
    cfg = ExtractConfig(
        input=root, cache=str(tmp_path / "cache"), faces=SETTINGS, subjects=tuple(subjects), runtime=runtime
    )
    report = extract(cfg, print)
    assert report.exit_code == 0 and sorted(report.cached) == sorted(subjects)
    assert plan in report.plan, report.plan
    assert_same_cache(cfg.cache, reference[0], subjects)
    assert open_cache(cfg.cache).spec == open_cache(reference[0]).spec
    memo = tmp_path / "memo" / "backbone-specs" / f"{memo_key(cfg.backbone)}.json"
    assert json.loads(memo.read_text()) == json.loads(json.dumps(build_backbone(cfg.backbone).spec()))
    rerun = extract(cfg, print)
    assert sorted(rerun.skipped) == sorted(subjects) and rerun.cached == []


def ray_processes(marker: str) -> list:
    """Processes whose command line or RAY_TMPDIR mentions `marker` (a temp folder only ours use), and
    their descendants (Ray's agents rename themselves, and some get no RAY_TMPDIR)."""
    import psutil  # bundled with Ray: on sys.path once ray is imported

    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            text = (
                " ".join(proc.info["cmdline"] or [])
                + " "
                + str((proc.info["environ"] or {}).get("RAY_TMPDIR"))
            )
            if marker in text and proc.pid != os.getpid():
                found |= {p.pid: p for p in [proc, *proc.children(recursive=True)]}
        except (psutil.Error, TypeError):
            continue
    return list(found.values())


def stop_ray_processes(marker: str) -> None:
    """`ray stop` for our processes only: other Ray instances on this machine are left alone."""
    import psutil

    procs = ray_processes(marker)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def extract_command(root: Path, location: str, subjects: list[str], *extra: str) -> list[str]:
    only = [arg for s in subjects for arg in ("--only", s)]
    return [sys.executable, "-m", "jobs.extract", "--input", str(root), "--cache", location, *only, *extra]


def check_complete_shards_only(location: str) -> int:
    """Every shard the cache lists reads whole; returns how many there are."""
    if not (Path(location) / "cache.json").exists():
        return 0
    cache = open_cache(location)
    for subject in cache.subjects():
        assert len(cache.read(subject, maps=False).index) == cache.num_frames(subject)
        assert cache.metadata(subject)["complete"] is True
    return len(cache.subjects())


def tempfile_short() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="lwr", dir="/tmp")  # Ray's socket paths must stay short


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(local_ray):
    """A two-node Ray cluster on loopback: head 127.0.0.2 and worker 127.0.0.3, one CPU each.

    With one CPU a node holds either the face worker (1 CPU) or the backbone and write workers (0.75), so
    an extraction always runs on both nodes."""
    ray.shutdown()  # the module's local Ray: leave the CPUs to the cluster
    ray_bin = str(VENV_BIN / "ray")
    temp = tempfile_short()
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_TMPDIR=temp)
    for name in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):  # the local session set the latter
        env.pop(name, None)
    port = free_port("127.0.0.2")
    address = f"127.0.0.2:{port}"
    flags = ["--disable-usage-stats"]
    try:
        subprocess.run([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.2", "--port", str(port),
                        "--num-cpus", "1", "--include-dashboard=false", "--temp-dir", temp, *flags],
                       env=env, check=True, timeout=120, capture_output=True)  # fmt: skip
        subprocess.run([ray_bin, "start", "--address", address, "--node-ip-address", "127.0.0.3",
                        "--num-cpus", "1", *flags], env=env, check=True, timeout=120, capture_output=True)  # fmt: skip
        yield address, env
    finally:
        ray.shutdown()
        stop_ray_processes(temp)  # `ray stop` limited to this cluster's processes
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.timeout(300)
def test_two_node_cluster_gives_the_same_cache(dataset, reference, cluster, tmp_path):
    root, subjects, _ = dataset
    address, env = cluster
    location = str(tmp_path / "cache")
    lwaffect = [str(VENV_BIN / "lwaffect"), "extract"]  # the installed command, not `python -m`
    command = [*lwaffect, *extract_command(root, location, subjects)[3:], "--address", address]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "faces 1 x 1 CPU, backbone 1 x 0.5 CPU" in run.stderr, run.stderr[-3000:]
    assert "nodes: 127.0.0.2, 127.0.0.3" in run.stderr  # faces on one node, writes on the other
    assert_same_cache(location, reference[0], subjects)


def temporary_shards(location: str) -> list[Path]:
    """Shards in the making: temporary files in CACHE/shards/."""
    folder = Path(location) / "shards"
    return [p for p in folder.iterdir() if is_temporary(p.name)] if folder.is_dir() else []


@pytest.mark.timeout(300)
def test_a_run_killed_inside_a_shard_write_resumes_to_the_same_cache(dataset, reference, cluster, tmp_path):
    root, subjects, _ = dataset
    subjects = subjects[:2]  # the two-subject video: one video keeps the killed and the resumed run short
    address, env = cluster
    location = str(tmp_path / "cache")
    # the test hook makes the writer sleep once a shard's first row group is written: kill it there
    killed_env = dict(env, **{PAUSE_VAR: "120"})
    proc = subprocess.Popen([*extract_command(root, location, subjects), "--address", address], cwd=REPO,
                            env=killed_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            check_complete_shards_only(location)  # never a partial shard, at any moment
            if any(p.stat().st_size > 4096 for p in temporary_shards(location)):  # a row group of maps
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the extraction ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert check_complete_shards_only(location) == 0 and temporary_shards(location)
    cfg = ExtractConfig(input=root, cache=location, faces=SETTINGS, subjects=tuple(subjects), address=address)
    report = extract(cfg, print)
    assert report.exit_code == 0 and report.skipped == [] and sorted(report.cached) == sorted(subjects)
    assert temporary_shards(location) == []
    assert_same_cache(location, reference[0], subjects)
