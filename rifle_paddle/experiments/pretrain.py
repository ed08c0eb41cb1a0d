"""Produce a source checkpoint to transfer from, when the real ImageNet weights are out of reach.

    python -m rifle_paddle.experiments.pretrain -c configs/fashion_mnist/source_resnet18.yaml \\
        --out output/weights/fashion_source_resnet18.pdparams

Trains the configured backbone from scratch on the source task (the config must say ``model.pretrained: null``, or
any other spelling of no weights training accepts: ``config.schema.no_weights``) through the ordinary engine, then
copies the final weights to ``--out``, where fine-tuning configs point ``model.pretrained``. An existing ``--out``
is reused unless ``--force``: pretraining is the slow, shared part of a transfer benchmark and must not be repeated
per method or seed.
"""
from __future__ import annotations

import os
import shutil
import sys

from ..console import module_parser
from ..config import ConfigError, load_config
from ..config.schema import no_weights


def pretrain(cfg: dict, out: str, force: bool = False) -> str:
    """Train ``cfg`` and copy its last weights to ``out``; return ``out`` (existing: reused unless ``force``)."""
    if os.path.isfile(out) and not force:
        return out
    if not no_weights(cfg["model"]["pretrained"]):
        raise ConfigError([f"model.pretrained must be null (none) for pretraining, got "
                           f"{cfg['model']['pretrained']!r}"])
    from ..engine import train
    result = train(cfg)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}"
    shutil.copyfile(os.path.join(result["run_dir"], "last.pdparams"), tmp)
    os.replace(tmp, out)
    return out


def main(argv=None) -> int:
    p = module_parser("python -m rifle_paddle.experiments.pretrain", __doc__)
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="where to write the source .pdparams")
    p.add_argument("--force", action="store_true", help="pretrain again even if --out exists")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, args.override)
        path = pretrain(cfg, args.out, args.force)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    print(f"source checkpoint: {path}\nuse it with: -o model.pretrained={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
