"""Sampling names from the dict-of-arrays model.

Twins: flax_port/sample.py and nnx_port/sample.py (there the logits come from the flax module's `apply`).
The loop itself lives once, in common/sampling.py; this file says where the logits come from.
"""

from common import sampling
from common.config import Config
from pure import model


def sample_tokens(params, prompt, prompt_len, cfg: Config, *, key, num_samples: int, temperature):
    """(num_samples, T) tokens continuing `prompt`; see common.sampling.sample_tokens."""
    logits_fn = lambda tokens: model.forward(params, tokens, cfg)  # noqa: E731
    return sampling.sample_tokens(
        logits_fn, prompt, prompt_len, cfg, key=key, num_samples=num_samples, temperature=temperature
    )


def tapped_sample(params, prompt, prompt_len, cfg: Config, *, key, num_samples: int, temperature):
    """sample_tokens with the sampling taps: (tokens, {"logits", "scaled"}), for `compare where --sample`."""
    logits_fn = lambda tokens: model.forward(params, tokens, cfg)  # noqa: E731
    return sampling.sample_tokens(
        logits_fn, prompt, prompt_len, cfg, key=key, num_samples=num_samples, temperature=temperature, taps=True
    )
