"""What pure/, flax_port/ and nnx_port/ share and do not compare: config, data, CLI plumbing, checkpoints."""

from common import shell

shell.install()  # first thing a `python -m` entry point runs; does nothing when `common` is imported elsewhere
