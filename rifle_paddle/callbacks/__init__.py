"""Method callbacks: what a user drops into their own ``paddle.Model.fit`` to change how it trains (RIFLE). The run's
bookkeeping callbacks (metrics, VisualDL, progress, throughput) are ``records/``; the engine's own (checkpoints,
multi-card statistics) live with the engine, and the regularizers' monitor with the regularizers."""
from .rifle import RIFLE, RifleController, reinitialize_layer, reset_optimizer_state, rifle_schedule

__all__ = ["RIFLE", "RifleController", "reinitialize_layer", "reset_optimizer_state", "rifle_schedule"]
