"""The colour convention of decoded frames: RGB, uint8, and their luma (ITU-R 601 weights).

Whatever reads brightness from a frame or a crop (the contrast map of face refinement, the template of a
carried face, the hard synthetic scenes, greyscale augmentation) weighs R, G and B with `LUMA`.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # (3,) weights of R, G, B; read-only
LUMA.setflags(write=False)
