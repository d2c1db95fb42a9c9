"""The public contract between an implementation of microgpt and everything that runs or compares one.

The command line and compare/ need the same functions from each implementation: pure/,
flax_port/, nnx_port/, and any port a user brings (examples/equinox_port/, `mypkg.port`). A port
is a module whose `impl()` returns an `Impl`; compare/ reaches it by module path
(`python -m compare --impls pure,mypkg.port`, `python -m compare check mypkg.port`) and knows
nothing else about it. docs/porting.md walks through writing one.

Every implementation keeps its own trees (pure's flat dict, linen's nested params in a TrainState,
NNX's modules, Equinox's modules); the checkpoint's flat layout (common/checkpoint.py) is the one
format they all convert to and from, so that anything can go from one implementation to another
through it.
"""

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Impl:
    """One implementation, as functions. Shapes are for one name of length T = cfg.block_size (the
    tokens padded to it), B names in a batch, vocabulary V = cfg.vocab_size, width D = cfg.n_embd;
    every float is float32, every token int32. `batch` is common.data.Batch (inputs, targets,
    mask: (T,) each, or (B, T)).

    Nothing here is jitted by the implementation: compare/ and the trainers call `jax.jit` (or
    not) where they call each function, so every function must trace under jit, run eagerly, and
    run inside `jax.lax.scan` and `jax.vmap` where noted. Parameters and states are pytrees whose
    leaves are arrays (a flax TrainState, an nnx (graphdef, variables) split, an eqx.Module all
    are); their structure must not change from one step to the next.

    What must be bitwise: `to_flat` / `from_flat` and `state_to_flat` / `state_from_flat` are
    renames (a transpose at most), so a round trip through the flat layout gives every bit back.
    The numerical functions are judged against the reference (`compare check`): bitwise where the
    arithmetic is the same, "equal to float32 rounding" where it is reordered (compare/verdict.py).

    Fields:
      name: a short label shown in tables ("pure", "equinox_port").
      init_state(cfg, *, key) -> state: fresh weights and optimizer state; `key` a jax PRNG key.
        Its own initialisation (compare/ starts every implementation from the first one's,
        converted through state_from_flat).
      train_step(state, batch, cfg) -> (state, loss): one step of Adam on one name (T,) or B names
        (B, T); the loss is a float32 scalar, before the update.
      train_steps(state, batches, cfg) -> (state, losses): k steps in one call over (k, T) or
        (k, B, T), losses (k,); a `jax.lax.scan` of train_step.
      params_of(state) -> params: the parameters inside a state, in the implementation's own tree.
      sample_tokens(params, prompt, prompt_len, cfg, *, key, num_samples, temperature) ->
        (num_samples, T) int32: usually common.sampling.sample_tokens fed the model's logits.
      forward(params, tokens (T,), cfg) -> logits (T, V): the model's own forward pass.
      loss_fn(params, batch (T,), cfg) -> scalar: the mean next-token negative log-likelihood
        over the real (mask 1) positions; `jax.value_and_grad` of it with respect to params gives
        the gradients compare/ checks.
      to_flat(params, cfg=None) -> {flat name: array}: the checkpoint's names ("wte", "wpe",
        "lm_head", "l0.wq" ... "l0.fc2") and shapes (common/checkpoint.py: param_shapes); also
        applied to gradients and Adam moments, which have the params' tree, and to params
        stacked over k steps (a leading axis on every leaf: `python -m compare` stacks the
        parameters after each step of a scan), so a transpose must swap the last two axes only.
        With `cfg`, refuse (UserError) a tree that does not fit.
      from_flat(flat, cfg) -> params: the inverse; `cfg` may be needed to build modules.
      state_to_flat(state, cfg=None) -> (flat params, {"step": int32 scalar, "m": flat, "v":
        flat}): Adam's step count and moments in the flat names. Should trace under jit (no int()
        on a value): `compare --against` reads the moments inside the compiled run.
      state_from_flat(flat params, flat Adam state, cfg) -> state, ready for train_step.
      batch_loss_fn(params, batch (B, T), cfg) -> scalar: optional (None: no batches): the mean
        over the real tokens of all B names, every token weighing the same.
      tapped_loss(params, batch, cfg, perturbations) -> (loss, taps): optional (None: `compare
        where` cannot localize inside the forward pass). `perturbations` maps every tap name of
        common/taps.py to an array of that tap's shape (zeros, or what a test adds); each tap's
        value enters the rest of the pass plus its perturbation, so that jax.grad with respect
        to `perturbations` is the gradient of the loss with respect to each tap. `taps` maps
        every tap name to its value (before the perturbation is added); the loss is loss_fn's
        (or batch_loss_fn's) bit for bit. Nothing of this runs in the trainers' step.
      tapped_sample(params, prompt, prompt_len, cfg, *, key, num_samples, temperature) -> (tokens,
        {"logits", "scaled"}): optional (None: `compare where --sample` compares tokens and logits
        only). Per name and position, (num_samples, T, V) each: the forward's logits at that position
        on the tokens so far, and the categorical's input (logits / temperature).
    """

    name: str  # "pure", "flax_port", "nnx_port", or a port's own label
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
    # The sampling taps (optional; `compare where --sample`): sample_tokens's arguments -> (tokens,
    # {"logits": (num_samples, T, V), the forward's row at each position on the tokens so far;
    # "scaled": (num_samples, T, V), what the categorical draws each token from}). A port that samples
    # with common.sampling.sample_tokens gets them with taps=True (the twins' sample.py).
    tapped_sample: Callable | None = None
