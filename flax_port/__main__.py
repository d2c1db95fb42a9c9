"""`python -m flax_port`: train the flax.linen microgpt, then sample names (`sample` for a checkpoint)."""

from common.cli import run_cli, trainer_main
from common.shell import leave
from flax_port import impl

leave(run_cli(lambda argv: trainer_main(impl, "flax_port", argv)))
