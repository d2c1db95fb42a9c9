"""The implementations compare/ knows, by name, in the order columns and pairs are shown."""

import importlib
import itertools

NAMES = ("pure", "flax_port", "nnx_port")


def available() -> list[str]:
    """The names whose package is present (nnx_port arrives later on some branches)."""
    return [n for n in NAMES if importlib.util.find_spec(n) is not None]


def get(name: str):
    """The `Impl` of one implementation (see common/impl.py)."""
    return importlib.import_module(name).impl()


def pairs(names) -> list[tuple[str, str]]:
    """Every pair once, in column order: (pure, flax_port), (pure, nnx_port), (flax_port, nnx_port)."""
    return list(itertools.combinations(names, 2))
