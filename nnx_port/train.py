"""The training step: loss and gradients in one pass, then Adam, all inside one jitted function.

Twins: pure/train.py and flax_port/train.py. An nnx.Optimizer holds the optax transformation and
its state beside the model, and `optimizer.update(model, grads)` changes both in place.
The state this file threads is `nnx.split((model, optimizer))`: (graphdef, variables). The
graphdef is static (the modules' structure, the optax transformation); the variables are a plain
pytree of arrays, so the common runner's `jax.jit(...).lower(state, ...)` and `lax.scan` carry
it like the other twins' states. Each step merges them back into live modules, runs NNX code,
and splits again: under jit the merge and split happen while tracing and cost nothing per step
(docs/speed.md compares this with `nnx.jit` called on the modules every step). apply_grads merges with
`copy=True`: by default merge reuses the state's Variables, and the in-place update would then
change the caller's state whenever the step runs without jit.
None of these functions is jitted here: callers jit them where they call them.
"""

import jax
from flax import nnx

from common.config import Config
from common.data import Batch
from nnx_port import model, optim

# ----------------------------------------------------------------------------- state

def init_state(cfg: Config, *, key: jax.Array):
    """Fresh weights and optimizer state, split into the (graphdef, variables) that the step threads."""
    gpt = model.init_params(cfg, key=key)
    optimizer = nnx.Optimizer(gpt, optim.adam(cfg), wrt=nnx.Param)
    return nnx.split((gpt, optimizer))


def params_of(state):
    gpt, _ = nnx.merge(*state, copy=True)
    return gpt


# ----------------------------------------------------------------------------- step

def compute_grads(state, batch: Batch, cfg: Config):
    """Loss and gradients of one name (T,) or of B names (B, T), in one forward and one backward pass."""
    gpt, _ = nnx.merge(*state)
    loss_fn = model.loss_fn if batch.inputs.ndim == 1 else model.batch_loss_fn  # the shape is static under jit
    return nnx.value_and_grad(loss_fn, argnums=0)(gpt, batch, cfg)  # grads: an nnx.State of the Params


def apply_grads(state, grads, cfg: Config):
    del cfg  # the optimizer's hyperparameters live in optimizer.tx
    graphdef, _ = state
    gpt, optimizer = nnx.merge(*state, copy=True)  # new Variables: an eager call leaves `state` as it was
    optimizer.update(gpt, grads)  # in place: the model's Params and the optimizer's moments and step
    return graphdef, nnx.state((gpt, optimizer))


def train_step(state, batch: Batch, cfg: Config):
    loss, grads = compute_grads(state, batch, cfg)
    return apply_grads(state, grads, cfg), loss


# ----------------------------------------------------------------------------- run

def train_steps(state, batches: Batch, cfg: Config):
    """Several steps in one call: `lax.scan` over a stack of names (k, T) or (k, B, T) -> k losses."""
    return jax.lax.scan(lambda s, b: train_step(s, b, cfg), state, batches)
