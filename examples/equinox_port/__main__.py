"""`python -m examples.equinox_port`: train the Equinox microgpt, then sample names (`sample` for a checkpoint)."""

from common.cli import run_cli, trainer_main
from common.shell import leave
from examples.equinox_port import impl

leave(run_cli(lambda argv: trainer_main(impl, "examples.equinox_port", argv)))
