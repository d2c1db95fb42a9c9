"""From any implementation to any other, through the checkpoint's flat layout.

Each twin maps its own tree to and from the flat layout (pure/checkpoint.py,
flax_port/checkpoint.py, nnx_port/checkpoint.py, exposed through its `Impl`); this file only
chains two of those maps, so no twin imports compare/ and adding a twin adds no pairwise code.
Parameters and Adam state both go through: (flat params, {"step": int32, "m": flat, "v": flat}).

The pure <-> flax functions below keep their old names for the callers that use them.
"""

from common.config import Config
from common.impl import Impl

# ----------------------------------------------------------------------------- any pair

def params(tree, src: Impl, dst: Impl, cfg: Config | None = None):
    """`src`'s params (or gradients) -> `dst`'s params, by way of the flat dict."""
    return dst.from_flat(src.to_flat(tree), cfg)


def state(train_state, src: Impl, dst: Impl, cfg: Config):
    """`src`'s training state -> `dst`'s, holding the same numbers (weights, moments, step)."""
    flat_params, flat_opt = src.state_to_flat(train_state)
    return dst.state_from_flat(flat_params, flat_opt, cfg)


# ----------------------------------------------------------------------------- pure <-> flax_port

def flax_path(name: str) -> tuple[str, ...]:
    from flax_port.checkpoint import flax_path

    return flax_path(name)


def pure_name(path: tuple[str, ...]) -> str:
    from flax_port.checkpoint import flat_name

    return flat_name(path)


def pure_to_flax(params: dict, cfg: Config | None = None) -> dict:
    """pure's flat dict -> flax's nested params; with `cfg`, refuses a tree that does not fit."""
    from flax_port import checkpoint

    return checkpoint.from_flat(params, cfg)


def flax_to_pure(params, cfg: Config | None = None) -> dict:
    """flax's nested params -> pure's flat dict; with `cfg`, refuses a tree that does not fit."""
    from flax_port import checkpoint

    return checkpoint.to_flat(params, cfg)


def state_pure_to_flax(pure_state, cfg: Config):
    """pure's (params, opt_state) -> a flax TrainState holding the same numbers."""
    import flax_port
    import pure

    return state(pure_state, pure.impl(), flax_port.impl(), cfg)


def state_flax_to_pure(flax_state, cfg: Config):
    import flax_port
    import pure

    return state(flax_state, flax_port.impl(), pure.impl(), cfg)
