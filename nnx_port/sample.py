"""Sampling names from the flax.nnx model.

Twins: pure/sample.py and flax_port/sample.py. The logits come from calling the module itself
(through model.forward); the module is a pytree, so jit traces it like any argument.
The loop itself lives once, in common/sampling.py; this file says where the logits come from.
"""

from common import sampling
from common.config import Config
from nnx_port import model


def sample_tokens(gpt: model.GPT, prompt, prompt_len, cfg: Config, *, key, num_samples: int, temperature):
    """(num_samples, T) tokens continuing `prompt`; see common.sampling.sample_tokens."""
    logits_fn = lambda tokens: model.forward(gpt, tokens, cfg)  # noqa: E731
    return sampling.sample_tokens(
        logits_fn, prompt, prompt_len, cfg, key=key, num_samples=num_samples, temperature=temperature
    )


def tapped_sample(gpt: model.GPT, prompt, prompt_len, cfg: Config, *, key, num_samples: int, temperature):
    """sample_tokens with the sampling taps: (tokens, {"logits", "scaled"}), for `compare where --sample`."""
    logits_fn = lambda tokens: model.forward(gpt, tokens, cfg)  # noqa: E731
    return sampling.sample_tokens(
        logits_fn, prompt, prompt_len, cfg, key=key, num_samples=num_samples, temperature=temperature, taps=True
    )
