"""`python -m flax_port`: train the flax.linen microgpt, then sample names (`sample` for a checkpoint)."""

import sys

from common.cli import run_cli, trainer_main
from flax_port import impl

sys.exit(run_cli(lambda argv: trainer_main(impl, "flax_port", argv)))
