"""What the command line and compare/ need from an implementation: the same functions from each.

Every implementation keeps its own trees (pure's flat dict, linen's nested params in a TrainState,
NNX's modules); the checkpoint's flat layout (common/checkpoint.py) is the one format they all
convert to and from, so that anything can go from one implementation to another through it.
"""

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Impl:
    name: str  # "pure", "flax_port" or "nnx_port"
    init_state: Callable  # (cfg, *, key) -> training state (a pytree: jit and lax.scan carry it)
    train_step: Callable  # (state, batch (T,) or (B, T), cfg) -> (state, loss); never jitted inside
    train_steps: Callable  # (state, batches (k, T) or (k, B, T), cfg) -> (state, losses (k,)): a lax.scan of it
    params_of: Callable  # state -> params in the implementation's own tree
    sample_tokens: Callable  # (params, prompt, prompt_len, cfg, *, key, num_samples, temperature)
    forward: Callable  # (params, tokens (T,), cfg) -> logits (T, V): the model's own function
    loss_fn: Callable  # (params, batch, cfg) -> scalar loss: the model's own function
    # The hub: the checkpoint's flat layout (common/checkpoint.py), both ways.
    to_flat: Callable  # params (or gradients of the same tree) -> {seed name: array}
    from_flat: Callable  # ({seed name: array}, cfg=None) -> params; nnx_port needs cfg to build its modules
    state_to_flat: Callable  # state -> (flat params, {"step": int32 scalar, "m": flat, "v": flat})
    state_from_flat: Callable  # (flat params, flat Adam state, cfg) -> state, ready for train_step
    batch_loss_fn: Callable | None = None  # (params, batch (B, T), cfg) -> the mean over the real tokens of B names
    # The taps (common/taps.py): (params, batch (T,) or (B, T), cfg, perturbations) -> (loss, taps).
    # `perturbations` maps every tap name to an array of the tap's shape (zeros, or what a test
    # adds); each tap's value enters the rest of the pass plus its perturbation, so that
    # jax.grad with respect to `perturbations` is the gradient of the loss with respect to each
    # tap. `taps` maps every tap name to its value (before the perturbation is added); the loss
    # is loss_fn's (or batch_loss_fn's) bit for bit when run op by op (under jit XLA may fuse the
    # added zeros differently). common.taps.zero_perturbations builds the zeros. Differentiate with
    # `params` passed to the transform, not closed over (NNX refuses a module from outside it):
    # jax.grad(lambda z, p: tapped_loss(p, batch, cfg, z), has_aux=True)(zeros, params).
    # Nothing of this runs in the trainers' step.
    tapped_loss: Callable | None = None
