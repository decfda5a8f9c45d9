"""How many submission lines a subject gets when none of its frames could be decoded (a failed video).

A submission must list every frame of every test video, also of a video that could not be decoded. The
count comes from, in this order: the organiser example file (its lines for the subject), the container's
claimed frame count (PyAV metadata, no decoding), else nothing: the caller then says plainly that the
subject's lines are missing. Clip tasks (EMI) always have one line per clip.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from model.tasks import get_task
from pipeline.datasets.catalogue import Catalogue
from pipeline.submission.format import location_prefix, parse_location, read_example
from pipeline.video.probe import VideoError

EXAMPLE, CONTAINER, CLIP = "organiser example", "container frame count", "one line per clip"


@dataclass
class FrameCounter:
    """Frame counts of subjects of one task, from the example file (read once) or the container."""

    task: str  # task name
    catalogue: Catalogue  # the input's catalogue (example files, videos)
    _example: Counter[str] | None = field(default=None, init=False, repr=False)  # prefix -> lines

    def example_counts(self) -> Counter[str]:
        """Lines per location prefix in the organiser example file; empty where there is none."""
        if self._example is None:
            example: Path | None = self.catalogue.example_submissions.get(self.task)
            locations = read_example(example, self.task)[1] if example is not None else []
            self._example = Counter(parse_location(self.task, loc)[0] for loc in locations)
        return self._example

    def count(self, subject: str) -> tuple[int | None, str]:
        """(frames, where the count came from); (None, why) where nothing gives a count."""
        if get_task(self.task).unit == "clip":
            return 1, CLIP
        listed = self.example_counts().get(location_prefix(self.task, subject, self.catalogue), 0)
        if listed:
            return listed, EXAMPLE
        video = self.catalogue.subjects[subject].video
        try:
            claimed = self.catalogue.video_info(video).frame_count
        except VideoError as e:
            return None, f"no example lines and no container frame count ({e})"
        if claimed > 0:
            return claimed, CONTAINER
        return None, "no example lines and the container claims no frames"
