"""hapi callbacks: RIFLE, and the run's bookkeeping: the record (``metrics.json``, ``best.pdparams``; the
resumable checkpoints are the engine's, ``engine/resume.py``), VisualDL logging, progress, throughput and the
1-based epoch numbers shown to users. ``atomic_save`` lives in ``core/files.py`` (re-exported for older imports)."""
from .checkpoint import RunRecorder, atomic_save
from .rifle import RIFLE, RifleController, reinitialize_layer, reset_optimizer_state, rifle_schedule
from .visualdl import VisualDLLogger

__all__ = ["RIFLE", "RifleController", "RunRecorder", "VisualDLLogger", "atomic_save", "reinitialize_layer",
           "reset_optimizer_state", "rifle_schedule"]
