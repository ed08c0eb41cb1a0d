"""``docs/config.md``, every configuration key with its default and meaning, written from the schema.

A hand-kept key table goes stale (an audit found four wrong defaults in the old README's); this one is generated
and a test fails when it differs from the schema:

    python -m rifle_paddle.config.reference            # (re)write docs/config.md
    python -m rifle_paddle.config.reference --check    # exit 1 if it is out of date
"""
from __future__ import annotations

import os
import sys

from ..console import module_parser
from .schema import SCHEMA

DOC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs",
                        "config.md")


def _value(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe_schema() -> str:
    """Plain text for ``--help-config``: each key, its default (and choices), its meaning."""
    lines = []
    for section, fields in SCHEMA.items():
        lines.append(f"{section}:")
        for key, f in fields.items():
            choices = f" [{'|'.join(f.listed)}]" if f.listed else ""
            lines.append(f"  {key}: {f.default!r}{choices}\n      {f.doc}")
    return "\n".join(lines)


def schema_markdown() -> str:
    """The Markdown of ``docs/config.md``."""
    text = ["# Configuration keys", "",
            "Generated from `rifle_paddle/config/schema.py` by `python -m rifle_paddle.config.reference`; do not edit.",
            "`rifle-train --help-config` prints the same. A config file sets any of these (`_base_: [a.yaml, "
            "b.yaml]` inherits, later files win, then the file itself; a base is a file relative to the one naming it "
            "or a packaged name such as `cub200/resnet50_rifle`); `-o section.key=value` overrides one on the "
            "command line (the value is YAML: `-o rifle.epochs=[10,20]`, `-o model.pretrained=null`). Unknown keys, "
            "wrong types and out-of-range values are refused together, with the closest valid names, before any "
            "data or model is touched. The defaults are the RIFLE authors' protocol; where this project offers "
            "something else it is a named option, listed in the [deviation ledger](fidelity.md).", ""]
    for section, fields in SCHEMA.items():
        text += [f"## `{section}`", "", "| key | default | meaning |", "| --- | --- | --- |"]
        for key, f in fields.items():
            choices = f" (one of {', '.join(f'`{c}`' for c in f.listed)})" if f.listed else ""
            doc = f.doc.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            text.append(f"| `{section}.{key}` | `{_value(f.default)}` | {doc}{choices} |")
        text.append("")
    return "\n".join(text)


def main(argv=None) -> int:
    parser = module_parser("python -m rifle_paddle.config.reference", __doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if docs/config.md is stale")
    parser.add_argument("--out", default=DOC_PATH, help="where to write (default: the checkout's docs/config.md)")
    args = parser.parse_args(argv)
    text = schema_markdown()
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print(f"{args.out} is out of date: run `python -m rifle_paddle.config.reference`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    from ..core.files import atomic_write_text
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_text(text, args.out)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
