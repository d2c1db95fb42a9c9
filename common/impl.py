"""What the command line needs from an implementation: the same eight functions from each."""

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Impl:
    name: str  # "pure" or "flax_port"
    init_state: Callable  # (cfg, *, key) -> training state
    train_step: Callable  # (state, batch (T,), cfg) -> (state, loss); never jitted inside
    train_steps: Callable  # (state, batches (k, T), cfg) -> (state, losses (k,)): a lax.scan of it
    params_of: Callable  # state -> params in the implementation's own tree
    sample_tokens: Callable  # (params, prompt, prompt_len, cfg, *, key, num_samples, temperature)
    to_flat: Callable  # params -> {seed name: array}, the checkpoint layout
    from_flat: Callable  # {seed name: array} -> params
