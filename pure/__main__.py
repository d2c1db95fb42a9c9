"""`python -m pure`: train the dict-of-arrays microgpt, then sample names (`sample` for a checkpoint)."""

import sys

from common.cli import run_cli, trainer_main
from pure import impl

sys.exit(run_cli(lambda argv: trainer_main(impl, "pure", argv)))
