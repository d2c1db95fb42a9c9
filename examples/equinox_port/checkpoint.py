"""The Equinox model in the checkpoint's flat layout, both ways: module fields <-> the seed's names.

'l0.wq' is gpt.blocks[0].attn.wq.weight, a Dense (in, out) as in the flat layout; lm_head is an
eqx.nn.Linear(D, V) whose (V, D) weight is the flat layout's too; wte and wpe are Embedding
tables. So every conversion is a rename, and a round trip is bitwise. Adam's state is optax's
(ScaleByAdamState, ScaleByScheduleState), whose moments are GPT modules like the model and whose
two counts both equal the flat step. Nothing here calls int() on a value, so state_to_flat also
runs inside jit (compare --against reads the moments there).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from common.checkpoint import check_params, param_shapes
from common.config import Config

# ----------------------------------------------------------------------------- names

def layers(gpt) -> dict:
    """{flat name: the Dense, Linear or Embedding holding that weight}, in the flat layout's order."""
    named = {"wte": gpt.wte, "wpe": gpt.wpe, "lm_head": gpt.lm_head}
    for i, block in enumerate(gpt.blocks):
        named |= {f"l{i}.{w}": getattr(block.attn, w) for w in ("wq", "wk", "wv", "wo")}
        named |= {f"l{i}.{w}": getattr(block.mlp, w) for w in ("fc1", "fc2")}
    return named


# ----------------------------------------------------------------------------- parameters

def to_flat(gpt, cfg: Config | None = None) -> dict:
    """A GPT (or a GPT of gradients, of Adam moments; or of k of them stacked, as compare/ stacks the
    parameters after each step of a scan) -> the flat dict; with `cfg`, refuses a tree that does not fit."""
    flat = {name: layer.weight for name, layer in layers(gpt).items()}
    if cfg is not None:
        check_params(flat, param_shapes(cfg), "equinox parameter tree")
    return flat


def from_flat(flat: dict, cfg: Config):
    """The flat dict -> a GPT holding those weights. `cfg` is required: it says which modules to
    build (n_head is in no shape). The modules are built abstractly (no random draws), then filled."""
    from examples.equinox_port import model

    check_params(flat, param_shapes(cfg), "flat parameter dict")
    skeleton = eqx.filter_eval_shape(model.GPT, cfg, key=jax.random.key(0))
    return eqx.tree_at(lambda gpt: [layer.weight for layer in layers(gpt).values()], skeleton,
                       [jnp.asarray(flat[n]) for n in layers(skeleton)])


# ----------------------------------------------------------------------------- training state

def state_to_flat(state, cfg: Config | None = None):
    """(model, optax state) -> (flat params, {"step": int32, "m": flat, "v": flat})."""
    gpt, (adam, _schedule) = state
    flat_opt = {"step": jnp.asarray(adam.count, jnp.int32), "m": to_flat(adam.mu, cfg), "v": to_flat(adam.nu, cfg)}
    return to_flat(gpt, cfg), flat_opt


def state_from_flat(flat_params: dict, flat_opt: dict, cfg: Config):
    """(flat params, flat Adam state) -> (model, optax state), ready for train_step."""
    step = jnp.asarray(flat_opt["step"], jnp.int32)
    adam = optax.ScaleByAdamState(count=step, mu=from_flat(flat_opt["m"], cfg), nu=from_flat(flat_opt["v"], cfg))
    return from_flat(flat_params, cfg), (adam, optax.ScaleByScheduleState(count=step))
