"""`python -m pure`: train the dict-of-arrays microgpt, then sample names (`sample` for a checkpoint)."""

from common.cli import run_cli, trainer_main
from common.shell import leave
from pure import impl

leave(run_cli(lambda argv: trainer_main(impl, "pure", argv)))
