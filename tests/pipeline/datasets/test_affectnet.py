"""AffectNet reader: both layouts from the synthetic set, classes 8..10 and -2 kept as written, the
header-less list and the release's list folder, and clear errors naming the file (and line)."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from model.pretrain import VA_NONE
from pipeline.datasets.affectnet import AffectNetError, read_affectnet
from pipeline.synth.common import SynthConfig
from pipeline.synth.dataset import make_dataset


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    root = tmp_path_factory.mktemp("affectnet_original")
    make_dataset(SynthConfig(output=root, layout="affectnet", images=64, image_size=96))
    return root


@pytest.fixture(scope="module")
def cropped(tmp_path_factory):
    root = tmp_path_factory.mktemp("affectnet_cropped")
    make_dataset(
        SynthConfig(output=root, layout="affectnet", images=32, image_size=64, affectnet_format="cropped")
    )
    return root


def test_original_layout_with_the_none_classes_and_missing_values(original):
    data = read_affectnet(original)
    assert data.layout == "original" and (len(data.train), len(data.validation)) == (48, 16)
    classes = Counter(i.expression for i in data.train + data.validation)
    assert set(classes) == set(range(11))  # 0..7 and a few of None, Uncertain, No-Face
    for item in data.train + data.validation:
        assert item.path.is_file() and item.box is not None and item.box[2] > 0
        missing = item.expression in (9, 10)
        assert (item.valence == VA_NONE and item.arousal == VA_NONE) == missing
        assert missing or (-1 <= item.valence <= 1 and -1 <= item.arousal <= 1)
    lines = (original / "training.csv").read_text().splitlines()
    assert lines[0].split(",")[:6] == ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                                       "facial_landmarks"]  # fmt: skip
    assert len(lines[1].split(",")[5].split(";")) == 136  # 68 points, x;y in turn


def test_header_less_lists_in_the_release_folder(original, tmp_path):
    root = tmp_path / "release"
    shutil.copytree(original / "Manually_Annotated_Images", root / "Manually_Annotated_Images")
    (root / "Manually_Annotated_file_lists").mkdir()
    for name in ("training.csv", "validation.csv"):
        lines = (original / name).read_text().splitlines()
        (root / "Manually_Annotated_file_lists" / name).write_text(
            "\n".join(lines[1 if name == "validation.csv" else 0 :]) + "\n"
        )

    def rows(root, part):
        return [(i.path.relative_to(root), i.box, i.expression, i.valence, i.arousal) for i in part]

    got, want = read_affectnet(root), read_affectnet(original)
    assert rows(root, got.train) == rows(original, want.train)
    assert rows(root, got.validation) == rows(original, want.validation)


def test_cropped_layout_reads_text_and_number_annotations(cropped):
    data = read_affectnet(cropped)
    assert data.layout == "cropped" and (len(data.train), len(data.validation)) == (24, 8)
    assert all(i.box is None and 0 <= i.expression < 8 for i in data.train + data.validation)
    assert set(i.expression for i in data.validation) == set(range(8))  # balanced, as AffectNet's
    notes = cropped / "train_set" / "annotations"
    assert np.load(notes / "0_exp.npy").dtype.kind == "U" and np.load(notes / "0_lnd.npy").shape == (136,)
    first = data.train[0]
    assert first.expression == int(str(np.load(notes / "0_exp.npy"))) and first.path.name == "0.jpg"
    # numbers instead of text, classes 8..10 and -2 read as they are
    np.save(notes / "0_exp.npy", np.array(9))
    np.save(notes / "0_val.npy", np.array(-2.0))
    np.save(notes / "0_aro.npy", np.array(-2.0, np.float32))
    item = read_affectnet(cropped).train[0]
    assert (item.expression, item.valence, item.arousal) == (9, VA_NONE, VA_NONE)


def _broken(original, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(original, root)
    return root


def test_bad_folders_are_refused_naming_the_file(original, tmp_path):
    with pytest.raises(AffectNetError, match="does not exist"):
        read_affectnet(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AffectNetError, match="is not an AffectNet folder"):
        read_affectnet(tmp_path / "empty")
    root = _broken(original, tmp_path)
    (root / "validation.csv").unlink()
    with pytest.raises(AffectNetError, match="validation.csv is missing"):
        read_affectnet(root)
    cases = {
        "expected 9 columns, got 7": lambda cells: cells[:7],
        "expression must be an integer 0..10": lambda cells: [*cells[:6], "11", *cells[7:]],
        "valence must lie in": lambda cells: [*cells[:7], "1.5", cells[8]],
        "the face box must be numbers": lambda cells: [cells[0], "x", *cells[2:]],
        "does not exist": lambda cells: ["100/missing.jpg", *cells[1:]],
    }
    for why, change in cases.items():
        root = tmp_path / why.replace(" ", "_").replace(".", "")
        shutil.copytree(original, root)
        lines = (root / "training.csv").read_text().splitlines()
        lines[3] = ",".join(change(lines[3].split(",")))
        (root / "training.csv").write_text("\n".join(lines) + "\n")
        with pytest.raises(AffectNetError, match=why) as err:
            read_affectnet(root)
        assert f"{root / 'training.csv'} line 4" in str(err.value)


def test_bad_cropped_annotations_are_refused_naming_the_file(cropped, tmp_path):
    root = tmp_path / "cropped"
    shutil.copytree(cropped, root)
    n = read_affectnet(root).validation[3].path.stem
    aro = root / "val_set" / "annotations" / f"{n}_aro.npy"
    aro.unlink()
    with pytest.raises(AffectNetError, match=f"{aro} is missing"):
        read_affectnet(root)
    np.save(aro, np.array(["0.1", "0.2"]))
    with pytest.raises(AffectNetError, match=f"{aro} holds 2 values"):
        read_affectnet(root)
    np.save(aro, np.array("high"))
    with pytest.raises(
        AffectNetError, match=f"annotations of .*/{n}.jpg: expression, valence and arousal must"
    ):
        read_affectnet(root)
