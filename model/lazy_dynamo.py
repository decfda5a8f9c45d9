"""Import torchvision and timm without importing `torch._dynamo`, which neither needs to be imported.

Two import-time uses pull in `torch._dynamo`, torch's compiler front end: `torchvision.ops.roi_align` imports
`torch._dynamo.utils` for one function, `is_compile_supported`, which it calls only where torchvision's
compiled ops are missing; and `timm.models.naflexvit` decorates methods with `torch.compiler.disable`,
which imports `torch._dynamo` to wrap them. That import is about 1.5 s of CPU in every process that
imports torchvision (1.6 of torchvision's 1.75 s on the 2-core machine of the README), paid by each stage
worker of an extraction while the others start on the same cores, and nothing there is ever compiled.

`import_without_dynamo(names)` imports the named libraries with a stand-in for `torch._dynamo` in
`sys.modules`. The stand-in has only those two entry points, and each hands over to the real
`torch._dynamo` when first called: `utils.is_compile_supported` imports it and calls the real one;
`disable(fn)` returns a wrapper that, on its first call, wraps `fn` with the real `disable` (the
decorated methods behave as decorated, compiled or not). The stand-in is removed as soon as the
libraries are imported, so any later `import torch._dynamo` (`torch.compile`, export) gets the real one.
Where `torch._dynamo` is already imported there is nothing to save: the libraries are imported as usual.
While the libraries import, the stand-in is what any thread importing `torch._dynamo` gets; nothing in
lwaffect imports it then (the driver's other thread only starts Ray).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

DYNAMO = "torch._dynamo"
UTILS = "torch._dynamo.utils"


def import_without_dynamo(names: Iterable[str]) -> None:
    """Import each module of `names` (e.g. "torchvision", "timm") without importing `torch._dynamo`."""
    with _stand_in_installed():
        for name in names:
            importlib.import_module(name)


@contextlib.contextmanager
def _stand_in_installed() -> Iterator[None]:
    """The stand-in in `sys.modules` for the block, unless the real `torch._dynamo` is imported already."""
    import torch

    if DYNAMO in sys.modules:
        yield
        return
    stand_in, utils = _stand_in()
    sys.modules[DYNAMO], sys.modules[UTILS] = stand_in, utils
    try:
        yield
    finally:
        for key, module in ((UTILS, utils), (DYNAMO, stand_in)):
            if sys.modules.get(key) is module:
                del sys.modules[key]
        if torch.__dict__.get("_dynamo") is stand_in:  # set where an import bound it as torch's attribute
            del torch._dynamo


def _real() -> Any:
    """The real `torch._dynamo`, imported now if it was not."""
    module = importlib.import_module(DYNAMO)
    if getattr(module, "_lwaffect_stand_in", False):
        raise RuntimeError("torch._dynamo was used while torchvision or timm was being imported")
    return module


def _is_compile_supported(device_type: str) -> bool:
    _real()
    return bool(importlib.import_module(UTILS).is_compile_supported(device_type))


def _disable(fn: Callable | None = None, recursive: bool = True, *, reason: str | None = None) -> Any:
    if fn is None:  # used as `@disable(recursive=...)`
        return functools.partial(_disable, recursive=recursive, reason=reason)
    real: list[Callable] = []  # fn wrapped by the real `disable`, made on the first call

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not real:
            real.append(_real().disable(fn, recursive, reason=reason))
        return real[0](*args, **kwargs)

    return call


def _stand_in() -> tuple[types.ModuleType, types.ModuleType]:
    stand_in, utils = types.ModuleType(DYNAMO), types.ModuleType(UTILS)
    stand_in._lwaffect_stand_in = True  # type: ignore[attr-defined]
    stand_in.utils = utils  # type: ignore[attr-defined]
    stand_in.disable = _disable  # type: ignore[attr-defined]
    utils.is_compile_supported = _is_compile_supported  # type: ignore[attr-defined]
    return stand_in, utils
