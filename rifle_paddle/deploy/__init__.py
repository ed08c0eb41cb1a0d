"""The way out of training: export a run's network for Paddle Inference, and predict with it.

``rifle-export`` writes a self-contained folder (the static graph, its weights, ``preprocess.json`` saying exactly
how an image becomes the network's input, and ``classes.json``); ``rifle-predict`` reads nothing else, so the folder
can be copied to a machine without the training data or this package's configs.
"""
from .preprocess import Preprocessing

__all__ = ["Preprocessing"]
