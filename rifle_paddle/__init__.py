"""rifle-paddle: deep transfer learning for image classification in PaddlePaddle (RIFLE, DTNH).

Paddle is not a hard dependency of the package metadata (``paddlepaddle`` and ``paddlepaddle-gpu`` both provide
``paddle`` and must not be installed over each other), so it is checked here, before anything imports it: no
Paddle, or one outside the supported range, is refused with one line saying what is installed and how to install a
supported CPU or GPU build (``core.paddle_version``). Every command line imports this package first.
"""
import warnings

from .core.paddle_version import require_supported_paddle

__version__ = "0.1.0"

require_supported_paddle()

# Paddle warns on import when the C++ extension toolchain has no ccache; it concerns custom-op builders only.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)

# Every package that owns a config choice list or check registers it with ``config`` on import, so the config
# layer validates the owners' names without importing them; import them all before any config is read.
from . import models, data, callbacks, regularizers, tricks, engine  # noqa: E402,F401
# The public API: what a user's own training loop needs (docs/api.md). The engine, the table machinery
# (``experiments``) and the command line are reached by their module paths.
from .callbacks import RIFLE, RifleController, reinitialize_layer  # noqa: E402
from .data import DataError, build_dataset, build_loader, list_readers  # noqa: E402
from .models import create_model, find_classifier, list_models  # noqa: E402
from .regularizers import DELTA, DTNH, L2SP, BatchSpectralShrinkage, FeatureDistillation  # noqa: E402
from .tricks import install_tricks  # noqa: E402

__all__ = ["BatchSpectralShrinkage", "DELTA", "DTNH", "DataError", "FeatureDistillation", "L2SP", "RIFLE",
           "RifleController", "__version__", "build_dataset", "build_loader", "create_model", "find_classifier",
           "install_tricks", "list_models", "list_readers", "reinitialize_layer"]
