"""pure's trees in the checkpoint's flat layout, both ways: nothing to rename.

Twins: flax_port/checkpoint.py and nnx_port/checkpoint.py (there linen's nested paths are mapped to the flat names).
pure's params already are the seed's flat dict and its Adam state already is
{"step", "m", "v"}, so each conversion is a copy of the dict, and a check of its shapes if a
config is given.
"""

import jax.numpy as jnp

from common.checkpoint import check_params, param_shapes
from common.config import Config

# ----------------------------------------------------------------------------- parameters

def to_flat(params, cfg: Config | None = None) -> dict:
    """pure's params (or gradients) -> the flat dict; with `cfg`, refuses a tree that does not fit."""
    if cfg is not None:
        check_params(params, param_shapes(cfg), "pure parameter tree")
    return dict(params)


def from_flat(flat: dict, cfg: Config | None = None) -> dict:
    """The flat dict -> pure's params; with `cfg`, refuses a dict that does not fit."""
    if cfg is not None:
        check_params(flat, param_shapes(cfg), "pure parameter tree")
    return dict(flat)


# ----------------------------------------------------------------------------- training state

def state_to_flat(state, cfg: Config | None = None):
    """pure's (params, opt_state) -> (flat params, {"step": int32, "m": flat, "v": flat})."""
    params, opt_state = state
    flat_opt = {
        "step": jnp.asarray(opt_state["step"], jnp.int32),
        "m": to_flat(opt_state["m"], cfg), "v": to_flat(opt_state["v"], cfg),
    }
    return to_flat(params, cfg), flat_opt


def state_from_flat(flat_params: dict, flat_opt: dict, cfg: Config):
    """(flat params, flat Adam state) -> pure's (params, opt_state), ready for train_step."""
    opt_state = {
        "step": jnp.asarray(flat_opt["step"], jnp.int32),
        "m": from_flat(flat_opt["m"], cfg), "v": from_flat(flat_opt["v"], cfg),
    }
    return from_flat(flat_params, cfg), opt_state
