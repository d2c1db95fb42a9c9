"""The training step: loss and gradients in one pass, then Adam, all inside one jitted function.

Twins: flax_port/train.py and nnx_port/train.py (there a flax TrainState carries params, optimizer and step).
None of these functions is jitted here: callers jit them where they call them.
"""

import jax

from common.config import Config
from common.data import Batch
from pure import model, optim

# ----------------------------------------------------------------------------- state

def init_state(cfg: Config, *, key: jax.Array):
    """Fresh weights and optimizer state: the pair (params, opt_state) that the step threads."""
    params = model.init_params(cfg, key=key)
    return params, optim.adam_init(params)


def params_of(state):
    return state[0]


# ----------------------------------------------------------------------------- step

def compute_grads(state, batch: Batch, cfg: Config):
    """Loss and gradients of one name (T,) or of B names (B, T), in one forward and one backward pass."""
    params, _ = state
    loss_fn = model.loss_fn if batch.inputs.ndim == 1 else model.batch_loss_fn  # the shape is static under jit
    return jax.value_and_grad(loss_fn)(params, batch, cfg)


def apply_grads(state, grads, cfg: Config):
    params, opt_state = state
    return optim.adam_update(params, grads, opt_state, cfg)


def train_step(state, batch: Batch, cfg: Config):
    loss, grads = compute_grads(state, batch, cfg)
    return apply_grads(state, grads, cfg), loss


# ----------------------------------------------------------------------------- run

def train_steps(state, batches: Batch, cfg: Config):
    """Several steps in one call: `lax.scan` over a stack of names (k, T) or (k, B, T) -> k losses."""
    return jax.lax.scan(lambda s, b: train_step(s, b, cfg), state, batches)
