"""The plain-folder adapter: every video below the input folder, one main-face subject each, no labels.

A plain folder has no splits; `Catalogue.subjects_in(task, "all")` gives every subject.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.datasets.catalogue import Catalogue, Subject
from pipeline.datasets.files import index_videos, walk_tree


def load_plain(root: Path) -> Catalogue:
    """Catalogue of a folder of videos (found anywhere below `root`)."""
    cat = Catalogue(root=root, layout="plain")
    cat.videos = index_videos(walk_tree(root).videos, root, cat.found)
    for name in cat.videos:
        cat.subjects[name] = Subject(name=name, video=name, position="main")
    cat.found.append("no annotations or splits (plain folder): every video is in split 'all'")
    return cat
