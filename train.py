#!/usr/bin/env python
"""Fine-tune with RIFLE / plain fine-tuning from a YAML config. `python train.py --help`."""
import sys

from rifle_paddle.app.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
