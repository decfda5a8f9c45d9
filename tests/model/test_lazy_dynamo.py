"""`model.lazy_dynamo`: torchvision and timm imported without `torch._dynamo`, which later imports get whole.

Each case runs in a fresh interpreter: this one has imported `torch._dynamo` long since."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def roi_case() -> list:
    """A roi_align call's arguments, made alike in this interpreter and the fresh one."""
    import torch

    return [torch.arange(64.0).reshape(1, 1, 8, 8), [torch.tensor([[0.0, 0.5, 4.0, 6.0]])], 3]


WITHOUT = """
import sys
from model.lazy_dynamo import import_without_dynamo
import_without_dynamo(["timm", "facenet_pytorch"])
print("imported", "torch._dynamo" in sys.modules, "timm" in sys.modules, "torchvision" in sys.modules)
import torch
from torchvision.ops import roi_align
from tests.model.test_lazy_dynamo import roi_case
print("roi", roi_align(*roi_case()).flatten().tolist())
from torchvision.ops.roi_align import is_compile_supported  # torchvision's reference to the stand-in's
print("still", "torch._dynamo" in sys.modules)
print("supported", is_compile_supported("cpu"), "torch._dynamo" in sys.modules)
import torch._dynamo
print("real", hasattr(torch._dynamo, "optimize"), hasattr(torch._dynamo, "_lwaffect_stand_in"))
"""

DISABLE = """
import sys
import torch
from model.lazy_dynamo import import_without_dynamo
import_without_dynamo(["timm"])
import timm.models.naflexvit as naflex
method = naflex.NaFlexRopeIterator.__next__  # decorated with torch.compiler.disable while timm was imported
print("wrapped", method.__wrapped__.__name__, "torch._dynamo" in sys.modules)
from model.lazy_dynamo import _disable
double = _disable(lambda x: 2 * x)
print("called", double(3), "torch._dynamo" in sys.modules)
compiled = torch.compile(lambda x: double(x) + 1, backend="eager")  # the real disable: a graph break, same result
print("compiled", compiled(torch.ones(2)).tolist())
"""


def _run(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_torchvision_and_timm_import_without_dynamo_and_the_real_one_comes_on_first_use():
    from torchvision.ops import roi_align

    lines = _run(WITHOUT)
    assert lines[0] == "imported False True True"
    assert lines[1] == f"roi {roi_align(*roi_case()).flatten().tolist()}"  # as with torch._dynamo imported
    assert lines[2] == "still False"
    assert lines[3] == "supported True True"  # the stand-in's function imported the real module
    assert lines[4] == "real True False"


def test_methods_decorated_with_disable_hand_over_to_the_real_disable_when_called():
    lines = _run(DISABLE)
    assert lines[0] == "wrapped __next__ False"
    assert lines[1] == "called 6 True"
    assert lines[2] == "compiled [3.0, 3.0]"
