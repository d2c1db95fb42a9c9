"""The one mapping between pure/'s flat dict and flax_port/'s parameter tree.

Nothing else in the project knows both layouts. Every conversion is a rename: flax's lm_head is an
nn.Embed, so even the output matrix keeps pure's (V, D) layout, and a round trip is bitwise exact.
Optimizer state converts too: pure's {"step", "m", "v"} <-> optax's (ScaleByAdamState,
ScaleByScheduleState), whose two counts both equal pure's step.
"""

import jax.numpy as jnp
import numpy as np
import optax
from flax.traverse_util import flatten_dict, unflatten_dict

from common.checkpoint import check_params
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


def pure_name(path: tuple[str, ...]) -> str:
    """The inverse of flax_path; a path it does not know keeps its slash-joined form."""
    if len(path) == 2 and path[1] == "embedding":
        return path[0]
    if len(path) == 4 and path[3] == "kernel" and LAYER_PARTS.get(path[2]) == path[1]:
        return f"{path[0]}.{path[2]}"
    return "/".join(path)


def expected_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    from pure.model import param_shapes

    return param_shapes(cfg)


# ----------------------------------------------------------------------------- parameters

def pure_to_flax(params: dict, cfg: Config | None = None) -> dict:
    """pure's flat dict -> flax's nested params; with `cfg`, refuses a tree that does not fit."""
    if cfg is not None:
        check_params(params, expected_shapes(cfg), "pure parameter tree")
    return unflatten_dict({flax_path(k): v for k, v in params.items()})


def flax_to_pure(params, cfg: Config | None = None) -> dict:
    """flax's nested params -> pure's flat dict; with `cfg`, refuses a tree that does not fit."""
    flat = {pure_name(path): v for path, v in flatten_dict(dict(params)).items()}
    if cfg is not None:
        check_params(flat, expected_shapes(cfg), "flax parameter tree")
    return flat


# ----------------------------------------------------------------------------- optimizer state

def opt_state_pure_to_flax(opt_state: dict, cfg: Config | None = None):
    step = jnp.asarray(opt_state["step"], jnp.int32)
    return (
        optax.ScaleByAdamState(
            count=step, mu=pure_to_flax(opt_state["m"], cfg), nu=pure_to_flax(opt_state["v"], cfg)
        ),
        optax.ScaleByScheduleState(count=step),
    )


def opt_state_flax_to_pure(opt_state, cfg: Config | None = None) -> dict:
    adam, schedule = opt_state
    if int(np.asarray(adam.count)) != int(np.asarray(schedule.count)):
        raise UserError(
            f"optax state is inconsistent: adam count {adam.count} != schedule count {schedule.count}"
        )
    return {
        "step": jnp.asarray(adam.count, jnp.int32),
        "m": flax_to_pure(adam.mu, cfg),
        "v": flax_to_pure(adam.nu, cfg),
    }


# ----------------------------------------------------------------------------- training state

def state_pure_to_flax(state, cfg: Config):
    """pure's (params, opt_state) -> a flax TrainState holding the same numbers."""
    from flax.training.train_state import TrainState

    from flax_port import model, optim

    params, opt_state = state
    return TrainState(
        step=jnp.asarray(opt_state["step"], jnp.int32),
        apply_fn=model.GPT(cfg).apply,
        params=pure_to_flax(params, cfg),
        tx=optim.adam(cfg),
        opt_state=opt_state_pure_to_flax(opt_state, cfg),
    )


def state_flax_to_pure(state, cfg: Config):
    return flax_to_pure(state.params, cfg), opt_state_flax_to_pure(state.opt_state, cfg)
