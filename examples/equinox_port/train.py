"""The training step: loss and gradients in one pass, then Adam, as an Equinox user writes it.

The state is the pair (model, optax state): both are pytrees of arrays (an eqx.Module is one),
so jax.jit and lax.scan carry them as they are. `eqx.filter_value_and_grad` differentiates with
respect to the model's floating-point arrays; `eqx.apply_updates` adds optax's updates to them.
None of these functions is jitted here: callers jit them where they call them (`jax.jit` or
`eqx.filter_jit`).
"""

import equinox as eqx
import jax

from common.config import Config
from common.data import Batch
from examples.equinox_port import model, optim

# ----------------------------------------------------------------------------- state

def init_state(cfg: Config, *, key: jax.Array):
    """Fresh weights and optimizer state: the pair (model, opt_state) that the step threads."""
    gpt = model.init_params(cfg, key=key)
    return gpt, optim.adam(cfg).init(eqx.filter(gpt, eqx.is_array))


def params_of(state):
    return state[0]


# ----------------------------------------------------------------------------- step

def compute_grads(state, batch: Batch, cfg: Config):
    """Loss and gradients of one name (T,) or of B names (B, T), in one forward and one backward pass."""
    gpt, _ = state
    loss_fn = model.loss_fn if batch.inputs.ndim == 1 else model.batch_loss_fn  # the shape is static under jit
    return eqx.filter_value_and_grad(loss_fn)(gpt, batch, cfg)  # grads: a GPT holding gradients


def apply_grads(state, grads, cfg: Config):
    gpt, opt_state = state
    updates, opt_state = optim.adam(cfg).update(grads, opt_state)
    return eqx.apply_updates(gpt, updates), opt_state


def train_step(state, batch: Batch, cfg: Config):
    loss, grads = compute_grads(state, batch, cfg)
    return apply_grads(state, grads, cfg), loss


# ----------------------------------------------------------------------------- run

def train_steps(state, batches: Batch, cfg: Config):
    """Several steps in one call: `lax.scan` over a stack of names (k, T) or (k, B, T) -> k losses."""
    return jax.lax.scan(lambda s, b: train_step(s, b, cfg), state, batches)
