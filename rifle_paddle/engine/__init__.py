"""Training engine: ``paddle.Model`` with a replaceable step, optimizer recipe, train/evaluate drivers."""
from .model import TrainStep, TransferModel
from .optim import build_lr_scheduler, build_optimizer
from .evaluation import evaluate, resolve_checkpoint
from .trainer import RunError, build_model, build_network, train

__all__ = ["RunError", "TrainStep", "TransferModel", "build_lr_scheduler", "build_model", "build_network",
           "build_optimizer", "evaluate", "resolve_checkpoint", "train"]
