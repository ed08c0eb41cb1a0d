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
# The public API: what a user's own training loop needs, every name in docs/api.md's table (tests/test_api.py holds
# the two to each other). The rest is reached by its module path.
from .callbacks import RIFLE, RifleController, reinitialize_layer  # noqa: E402
from .config import ConfigError, load_config  # noqa: E402
from .data import DataError, build_dataset, build_datasets, build_loader, list_readers, register_reader  # noqa: E402
from .engine import TransferModel, train  # noqa: E402
from .models import build_network, create_model, find_classifier, list_models, register_model  # noqa: E402
from .regularizers import (DELTA, DTNH, L2SP, REGULARIZERS, BatchSpectralShrinkage, FeatureDistillation,  # noqa: E402
                           RegularizedStep, build_regularizer)
from .tricks import install_tricks, wrap_train_step  # noqa: E402

__all__ = ["BatchSpectralShrinkage", "ConfigError", "DELTA", "DTNH", "DataError", "FeatureDistillation", "L2SP",
           "REGULARIZERS", "RIFLE", "RegularizedStep", "RifleController", "TransferModel", "__version__",
           "build_dataset", "build_datasets", "build_loader", "build_network", "build_regularizer", "create_model",
           "find_classifier", "install_tricks", "list_models", "list_readers", "load_config", "register_model",
           "register_reader", "reinitialize_layer", "train", "wrap_train_step"]
