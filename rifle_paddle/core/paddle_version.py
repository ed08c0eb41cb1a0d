"""Which PaddlePaddle this package supports, checked before Paddle is imported.

``import rifle_paddle`` (and so every console script and ``python -m`` entry point, which import the package
first) calls ``require_supported_paddle``. It reads the installed version from the package metadata, without
importing Paddle: Paddle 2.6 (what ``pip install paddlepaddle-gpu`` gives from the default package index) crashes
the interpreter with a C++ segmentation fault during a run instead of saying anything, and an import could crash
too. A build without metadata (compiled from source) is asked for ``paddle.__version__``; ``0.0.0`` (Paddle's
develop builds) is let through.

``SUPPORTED`` is the one statement of the range: ``setup.py`` reads it for its extras, the README's install table
states it, and ``.ci/run`` tests both ends (``OLDEST`` and the newest Paddle on the package index).
"""
from __future__ import annotations

import re
import sys

#: the Paddle versions the package supports: ``OLDEST <= version < BEYOND``
OLDEST = "3.0.0"
BEYOND = "4"
SUPPORTED = f">={OLDEST},<{BEYOND}"
#: the distributions that provide the ``paddle`` module (they must not be installed over each other)
DISTRIBUTIONS = ("paddlepaddle", "paddlepaddle-gpu")

HOW_TO_INSTALL = (f"install a supported build: CPU `pip install \"paddlepaddle{SUPPORTED}\"`; GPU: the "
                  f"paddlepaddle-gpu 3.x wheel for your CUDA from Paddle's own index "
                  f"(https://www.paddlepaddle.org.cn/install/quick; the default index's paddlepaddle-gpu is 2.6)")


class UnsupportedPaddle(ImportError):
    """No Paddle, or one outside ``SUPPORTED``; the message is one line with the fix."""


def _release(version: str) -> tuple[int, ...]:
    """``3.1.0rc1`` -> ``(3, 1, 0)``: the leading numbers of a version string."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def is_supported(version: str) -> bool:
    release = _release(version)
    return release == (0, 0, 0) or _release(OLDEST) <= release < _release(BEYOND)


def installed_paddle() -> tuple[str, str] | None:
    """``(distribution, version)`` of the Paddle that ``import paddle`` would load, from the metadata of the
    distribution that installed that very folder (Paddle is not imported), or from ``paddle.__version__`` for a
    build without metadata; None when there is no ``paddle`` module."""
    import os
    from importlib import metadata
    from importlib.util import find_spec
    spec = find_spec("paddle")
    if spec is None:
        return None
    names = list(DISTRIBUTIONS) + [n for n in metadata.packages_distributions().get("paddle", [])
                                   if n not in DISTRIBUTIONS]  # other builds (xpu, dcu, ...)
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if spec.origin and os.path.realpath(os.path.dirname(spec.origin)) == os.path.realpath(
                str(dist.locate_file("paddle"))):
            return name, dist.version
    import paddle
    return "paddle", paddle.__version__


def refusal(found: tuple[str, str] | None) -> str | None:
    """The one-line refusal for ``found`` (``installed_paddle()``), None when it is supported."""
    if found is None:
        return f"rifle-paddle needs PaddlePaddle {SUPPORTED}, which is not installed: {HOW_TO_INSTALL}"
    name, version = found
    if is_supported(version):
        return None
    return f"rifle-paddle needs PaddlePaddle {SUPPORTED}, but {name} {version} is installed: {HOW_TO_INSTALL}"


def _one_line_hook(previous):
    """An ``excepthook`` that prints an ``UnsupportedPaddle`` as its message alone (a console script then says one
    line, not a traceback through the import machinery) and hands every other exception to ``previous``."""
    def hook(kind, value, traceback):
        if issubclass(kind, UnsupportedPaddle):
            print(f"error: {value}", file=sys.stderr)
        else:
            previous(kind, value, traceback)
    return hook


def require_supported_paddle() -> None:
    """Raise ``UnsupportedPaddle`` unless a supported Paddle is installed (see the module docstring)."""
    message = refusal(installed_paddle())
    if message is None:
        return
    if sys.excepthook is sys.__excepthook__:  # not under IPython or a user's own hook
        sys.excepthook = _one_line_hook(sys.excepthook)
    raise UnsupportedPaddle(message)
