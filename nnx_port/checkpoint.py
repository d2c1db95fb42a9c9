"""nnx_port's trees in the checkpoint's flat layout, both ways: NNX attribute paths <-> the seed's names.

Twins: pure/checkpoint.py (there the tree already is the flat dict) and flax_port/checkpoint.py
(linen's paths). NNX names a weight by the attribute path to it: 'l0.wq' is
gpt.blocks[0].attn.wq.kernel, path ('blocks', 0, 'attn', 'wq', 'kernel'). Every conversion is a
rename, so a round trip is bitwise exact. Adam's state converts too: nnx.Optimizer holds optax's
(ScaleByAdamState, ScaleByScheduleState) plus its own step, a uint32 where optax and the flat
layout count in int32; all three counts equal the flat step.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.traverse_util import flatten_dict, unflatten_dict

from common.checkpoint import check_params, param_shapes
from common.config import Config
from common.errors import UserError

# ----------------------------------------------------------------------------- names

LAYER_PARTS = {"wq": "attn", "wk": "attn", "wv": "attn", "wo": "attn", "fc1": "mlp", "fc2": "mlp"}


def nnx_path(name: str) -> tuple:
    """'wte' -> ('wte', 'embedding'); 'l0.wq' -> ('blocks', 0, 'attn', 'wq', 'kernel')."""
    if "." not in name:
        return (name, "embedding")  # wte, wpe and lm_head are nnx.Embed tables
    layer, weight = name.split(".", 1)
    index = int(layer[1:]) if layer[:1] == "l" and layer[1:].isdigit() else layer
    return ("blocks", index, LAYER_PARTS.get(weight, "?"), weight, "kernel")


def flat_name(path: tuple) -> str:
    """The inverse of nnx_path; a path it does not know keeps its slash-joined form."""
    if len(path) == 2 and path[1] == "embedding":
        return path[0]
    if len(path) == 5 and path[0] == "blocks" and path[4] == "kernel" and LAYER_PARTS.get(path[3]) == path[2]:
        return f"l{path[1]}.{path[3]}"
    return "/".join(map(str, path))


# ----------------------------------------------------------------------------- parameters

def to_flat(tree, cfg: Config | None = None) -> dict:
    """A GPT module, or an nnx.State of its shape (gradients, Adam moments) -> the flat dict;
    with `cfg`, refuses a tree that does not fit."""
    if isinstance(tree, nnx.Module):
        tree = nnx.state(tree, nnx.Param)
    flat = {flat_name(path): v for path, v in flatten_dict(nnx.to_pure_dict(tree)).items()}
    if cfg is not None:
        check_params(flat, param_shapes(cfg), "nnx parameter tree")
    return flat


def from_flat(flat: dict, cfg: Config):
    """The flat dict -> a GPT module holding those weights. `cfg` is required: it says which
    modules to build (n_head is in no shape). The modules are built abstractly (nnx.eval_shape:
    no random draws), then filled."""
    from nnx_port import model

    check_params(flat, param_shapes(cfg), "flat parameter dict")
    graphdef, variables = nnx.split(nnx.eval_shape(lambda: model.init_params(cfg, key=jax.random.key(0))))
    nnx.replace_by_pure_dict(variables, unflatten_dict({nnx_path(k): jnp.asarray(v) for k, v in flat.items()}))
    return nnx.merge(graphdef, variables)


# ----------------------------------------------------------------------------- training state

def state_to_flat(state, cfg: Config | None = None):
    """(graphdef, variables) of (model, optimizer) -> (flat params, {"step": int32, "m": flat, "v": flat})."""
    gpt, optimizer = nnx.merge(*state)
    adam, schedule = optimizer.opt_state
    counts = [int(np.asarray(c[...])) for c in (optimizer.step, adam.count, schedule.count)]
    if len(set(counts)) != 1:
        raise UserError(f"nnx optimizer state is inconsistent: step, adam count, schedule count = {counts}")
    flat_opt = {"step": jnp.asarray(adam.count[...], jnp.int32), "m": to_flat(adam.mu, cfg), "v": to_flat(adam.nu, cfg)}
    return to_flat(gpt, cfg), flat_opt


def state_from_flat(flat_params: dict, flat_opt: dict, cfg: Config):
    """(flat params, flat Adam state) -> the (graphdef, variables) that train_step threads."""
    from nnx_port import optim

    check_params(flat_opt["m"], param_shapes(cfg), "flat Adam m")
    check_params(flat_opt["v"], param_shapes(cfg), "flat Adam v")
    gpt = from_flat(flat_params, cfg)
    graphdef, variables = nnx.split((gpt, nnx.Optimizer(gpt, optim.adam(cfg), wrt=nnx.Param)))
    step = jnp.asarray(flat_opt["step"], jnp.int32)
    values = {(1, "step"): step.astype(jnp.uint32)}  # NNX's own count is a uint32
    values |= {(1, "opt_state", 0, "count"): step, (1, "opt_state", 1, "count"): step}  # optax's: adam, schedule
    values |= {(1, "opt_state", 0, "mu", *nnx_path(k)): jnp.asarray(m) for k, m in flat_opt["m"].items()}
    values |= {(1, "opt_state", 0, "nu", *nnx_path(k)): jnp.asarray(v) for k, v in flat_opt["v"].items()}
    nnx.replace_by_pure_dict(variables, unflatten_dict(values))
    return graphdef, variables
