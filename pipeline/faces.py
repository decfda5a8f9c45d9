"""The face stage's public interface: detection (`pipeline.detect`) and tracking (`pipeline.track`).

MTCNN runs on downscaled frames, on every k-th frame and around changes; one face per subject position
("main", or "left" / "right" of two) is tracked by IoU continuity, and boxes and landmarks are interpolated
between detections. Alignment of the tracked faces into crops is `pipeline.align`.
"""

from pipeline.detect import FaceConfig, FrameDetections, box_iou, detect_faces, load_detector
from pipeline.track import POSITIONS, SOURCES, FaceRecords, FaceTracker

__all__ = [
    "POSITIONS",
    "SOURCES",
    "FaceConfig",
    "FaceRecords",
    "FaceTracker",
    "FrameDetections",
    "box_iou",
    "detect_faces",
    "load_detector",
]
