"""What pure/ and flax_port/ share and do not compare: config, data, CLI plumbing, checkpoints."""
