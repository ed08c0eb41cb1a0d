"""The run's records, kept by hapi callbacks that the engine installs in every run: ``metrics.json`` and
``best.pdparams`` (``RunRecorder``), VisualDL's per-step scalars (``VisualDLLogger``), the estimated end of the run
(``RunProgress``) and images per second with the loader's share (``Throughput``). They record a run; they change
nothing in it, which is what sets them apart from the method callbacks in ``callbacks/`` (RIFLE). The resumable
checkpoints are the engine's (``engine/resume.py``); epoch numbering is ``core/epoch_numbers.py``."""
from .progress import RunProgress
from .run_record import RunRecorder
from .throughput import Throughput
from .visualdl import VisualDLLogger

__all__ = ["RunProgress", "RunRecorder", "Throughput", "VisualDLLogger"]
