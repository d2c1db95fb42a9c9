"""The training step: loss and gradients in one pass, then Adam, all inside one jitted function.

Twins: pure/train.py and nnx_port/train.py. A flax TrainState carries params, the optax transformation and its state.
TrainState rather than a bare (params, opt_state) pair because that is what Flax users reach
for; compare/ reads `state.params` and `state.opt_state` out of it.
None of these functions is jitted here: callers jit them where they call them.
"""

import jax
from flax.training import train_state

from common.config import Config
from common.data import Batch
from flax_port import model, optim

# ----------------------------------------------------------------------------- state

def init_state(cfg: Config, *, key: jax.Array) -> train_state.TrainState:
    """Fresh weights and optimizer state, in the TrainState that the step threads."""
    params = model.init_params(cfg, key=key)
    return train_state.TrainState.create(apply_fn=model.GPT(cfg).apply, params=params, tx=optim.adam(cfg))


def params_of(state):
    return state.params


# ----------------------------------------------------------------------------- step

def compute_grads(state, batch: Batch, cfg: Config):
    """Loss and gradients of one name (T,) or of B names (B, T), in one forward and one backward pass."""
    loss_fn = model.loss_fn if batch.inputs.ndim == 1 else model.batch_loss_fn  # the shape is static under jit
    return jax.value_and_grad(loss_fn)(state.params, batch, cfg)


def apply_grads(state, grads, cfg: Config):
    del cfg  # the optimizer's hyperparameters live in state.tx
    return state.apply_gradients(grads=grads)


def train_step(state, batch: Batch, cfg: Config):
    loss, grads = compute_grads(state, batch, cfg)
    return apply_grads(state, grads, cfg), loss


# ----------------------------------------------------------------------------- run

def train_steps(state, batches: Batch, cfg: Config):
    """Several steps in one call: `lax.scan` over a stack of names (k, T) or (k, B, T) -> k losses."""
    return jax.lax.scan(lambda s, b: train_step(s, b, cfg), state, batches)
