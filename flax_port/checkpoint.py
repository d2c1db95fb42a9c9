"""flax_port's trees in the checkpoint's flat layout, both ways: linen's nested paths <-> the seed's names.

Twins: pure/checkpoint.py and nnx_port/checkpoint.py (there the tree already is the flat dict).
A file of its own rather than a part of model.py: the mapping is about the checkpoint format, not
about the model, and model.py stays a line-by-line twin of pure/model.py. It lives in flax_port/
rather than compare/ so that a reader (and the trainer's --save) never needs compare/ to see how
this tree is stored. Every conversion is a rename: lm_head is an nn.Embed, so even the output
matrix keeps the (V, D) layout, and a round trip is bitwise exact. Adam's state converts too:
optax's (ScaleByAdamState, ScaleByScheduleState), whose two counts both equal the flat step.
"""

import jax.numpy as jnp
import numpy as np
import optax
from flax.traverse_util import flatten_dict, unflatten_dict

from common.checkpoint import check_params, param_shapes
from common.config import Config
from common.errors import UserError

# ----------------------------------------------------------------------------- names

LAYER_PARTS = {"wq": "attn", "wk": "attn", "wv": "attn", "wo": "attn", "fc1": "mlp", "fc2": "mlp"}


def flax_path(name: str) -> tuple[str, ...]:
    """'wte' -> ('wte', 'embedding'); 'l0.wq' -> ('l0', 'attn', 'wq', 'kernel')."""
    if "." not in name:
        return (name, "embedding")  # wte, wpe and lm_head are nn.Embed tables
    layer, weight = name.split(".", 1)
    return (layer, LAYER_PARTS.get(weight, "?"), weight, "kernel")


def flat_name(path: tuple[str, ...]) -> str:
    """The inverse of flax_path; a path it does not know keeps its slash-joined form."""
    if len(path) == 2 and path[1] == "embedding":
        return path[0]
    if len(path) == 4 and path[3] == "kernel" and LAYER_PARTS.get(path[2]) == path[1]:
        return f"{path[0]}.{path[2]}"
    return "/".join(path)


# ----------------------------------------------------------------------------- parameters

def to_flat(params, cfg: Config | None = None) -> dict:
    """linen's nested params (or gradients) -> the flat dict; with `cfg`, refuses a tree that does not fit."""
    flat = {flat_name(path): v for path, v in flatten_dict(dict(params)).items()}
    if cfg is not None:
        check_params(flat, param_shapes(cfg), "flax parameter tree")
    return flat


def from_flat(flat: dict, cfg: Config | None = None) -> dict:
    """The flat dict -> linen's nested params; with `cfg`, refuses a dict that does not fit."""
    if cfg is not None:
        check_params(flat, param_shapes(cfg), "flat parameter dict")
    return unflatten_dict({flax_path(k): v for k, v in flat.items()})


# ----------------------------------------------------------------------------- training state

def opt_state_from_flat(flat_opt: dict, cfg: Config | None = None):
    """{"step", "m", "v"} -> optax's state for optim.adam: the Adam moments and the schedule's count."""
    step = jnp.asarray(flat_opt["step"], jnp.int32)
    return (
        optax.ScaleByAdamState(count=step, mu=from_flat(flat_opt["m"], cfg), nu=from_flat(flat_opt["v"], cfg)),
        optax.ScaleByScheduleState(count=step),
    )


def opt_state_to_flat(opt_state, cfg: Config | None = None) -> dict:
    adam, schedule = opt_state
    if int(np.asarray(adam.count)) != int(np.asarray(schedule.count)):
        raise UserError(f"optax state is inconsistent: adam count {adam.count} != schedule count {schedule.count}")
    return {"step": jnp.asarray(adam.count, jnp.int32), "m": to_flat(adam.mu, cfg), "v": to_flat(adam.nu, cfg)}


def state_to_flat(state, cfg: Config | None = None):
    """A TrainState -> (flat params, {"step": int32, "m": flat, "v": flat})."""
    return to_flat(state.params, cfg), opt_state_to_flat(state.opt_state, cfg)


def state_from_flat(flat_params: dict, flat_opt: dict, cfg: Config):
    """(flat params, flat Adam state) -> a TrainState holding the same numbers, ready for train_step."""
    from flax.training.train_state import TrainState

    from flax_port import model, optim

    return TrainState(
        step=jnp.asarray(flat_opt["step"], jnp.int32),
        apply_fn=model.GPT(cfg).apply,
        params=from_flat(flat_params, cfg),
        tx=optim.adam(cfg),
        opt_state=opt_state_from_flat(flat_opt, cfg),
    )
