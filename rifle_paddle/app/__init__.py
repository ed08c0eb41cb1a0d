"""The command-line application: ``train.py`` / ``rifle-train``, ``eval.py`` / ``rifle-eval`` (``cli``), the
offline demo (``demo``) and ``rifle-selftest`` (``selftest``). It sits on top of everything else; nothing imports
from here."""
