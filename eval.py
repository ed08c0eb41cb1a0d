#!/usr/bin/env python
"""Evaluate a trained checkpoint: top-1/top-5 and a JSON result. `python eval.py --help`."""
import sys

from rifle_paddle.app.cli import eval_main

if __name__ == "__main__":
    sys.exit(eval_main())
