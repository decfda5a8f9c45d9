"""The synthetic AffectNet set: labels follow what is visible (tint, brightness, contrast), boxes and
landmarks lie on the face, the same seed makes the same set."""

from __future__ import annotations

import numpy as np
from PIL import Image

from model.pretrain import AFFECTNET_CLASSES
from pipeline.colour import LUMA
from pipeline.datasets.affectnet import read_affectnet
from pipeline.synth.affectnet import AFFECTNET_TINT, landmarks_68
from pipeline.synth.common import SynthConfig
from pipeline.synth.dataset import make_dataset
from pipeline.synth.faces import TINT_HUES


def _face(item) -> np.ndarray:
    image = Image.open(item.path).convert("RGB")
    if item.box is not None:
        x, y, w, h = item.box
        image = image.crop((x + w // 4, y + h // 4, x + 3 * w // 4, y + 3 * h // 4))  # the middle of the face
    else:
        s = image.size[0]
        image = image.crop((s // 3, s // 3, 2 * s // 3, 2 * s // 3))
    return np.asarray(image, np.float32) / 255  # (h, w, 3)


def test_labels_follow_the_visible_face(tmp_path):
    make_dataset(SynthConfig(output=tmp_path, layout="affectnet", images=96, image_size=128,
                             affectnet_format="cropped"))  # fmt: skip
    data = read_affectnet(tmp_path)
    items = [i for i in data.train + data.validation if i.expression < AFFECTNET_CLASSES]
    faces = [_face(i) for i in items]
    luma = np.array([(f @ LUMA).mean() for f in faces])
    valence = np.array([i.valence for i in items])
    assert np.corrcoef(luma, valence)[0, 1] > 0.9  # valence = 2 brightness - 1, the face's mean luminance
    spread = np.array([(f @ LUMA).std() for f in faces])
    arousal = np.array([i.arousal for i in items])
    assert np.corrcoef(spread, arousal)[0, 1] > 0.6  # arousal = 2 contrast - 1, its luminance gain
    chroma = np.array([np.abs(f - (f @ LUMA)[..., None]).mean() for f in faces])  # colourfulness
    grey = np.array([TINT_HUES[AFFECTNET_TINT[i.expression]] is None and AFFECTNET_TINT[i.expression] == 7
                     for i in items])  # fmt: skip
    assert chroma[grey].max() < chroma[~grey].min()  # Contempt is the grey face


def test_same_seed_same_set_and_68_points_on_the_face(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        make_dataset(SynthConfig(output=root, layout="affectnet", images=32, image_size=96))
    assert (a / "training.csv").read_text() == (b / "training.csv").read_text()
    for line in (a / "training.csv").read_text().splitlines()[1:]:
        cells = line.split(",")
        x, y, w, h = (int(v) for v in cells[1:5])
        points = np.array([float(v) for v in cells[5].split(";")]).reshape(68, 2)
        if cells[6] != "10":  # a face: its 68 points in its box (the jaw may touch the edge, as in AffectNet)
            m = 0.1 * w
            assert (points >= [x - m, y - m]).all() and (points <= [x + w + m, y + h + m]).all()
    five = np.array([[30.0, 40], [70, 40], [50, 60], [35, 78], [65, 78]])
    points = landmarks_68(five)
    np.testing.assert_allclose(points[36:42].mean(0), five[0], atol=1.0)
    np.testing.assert_allclose(points[[30, 48, 54]], five[2:], atol=1.0)
