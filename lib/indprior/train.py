"""`python -m indprior.train ...` = `python -m indprior train ...` (kept: the README of earlier versions used it)."""
from __future__ import annotations

import sys
from typing import Any

from .__main__ import cli as _cli
from .__main__ import main as _main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return _main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    _cli(["train", *sys.argv[1:]])
