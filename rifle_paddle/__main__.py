"""``python -m rifle_paddle``: the same command as ``rifle-train`` (``python -m rifle_paddle --gpus 0,1 -c ...`` for
several cards). ``paddle.distributed.launch`` runs this file as a script on every rank (``app.launch``), so it works
from a pip install, without a checkout's ``train.py``."""
import os
import sys

if not __package__:  # run as a script: its own folder first on sys.path would shadow top-level modules by ours
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]

from rifle_paddle.app.cli import train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_main())
