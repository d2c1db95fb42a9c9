"""Ports that are not the project's own twins: compare/ reaches each only by its module path
(`python -m compare --impls pure,examples.equinox_port`) and the `Impl` contract of common/impl.py."""
