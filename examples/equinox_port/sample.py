"""Sampling names from the Equinox model: the loop is common/sampling.py's; the logits come from calling the module."""

from common import sampling
from common.config import Config
from examples.equinox_port import model


def sample_tokens(gpt, prompt, prompt_len, cfg: Config, *, key, num_samples: int, temperature):
    """(num_samples, T) tokens continuing `prompt`; see common.sampling.sample_tokens."""
    logits_fn = lambda tokens: model.forward(gpt, tokens, cfg)  # noqa: E731
    return sampling.sample_tokens(
        logits_fn, prompt, prompt_len, cfg, key=key, num_samples=num_samples, temperature=temperature
    )


def tapped_sample(gpt, prompt, prompt_len, cfg: Config, *, key, num_samples: int, temperature):
    """sample_tokens with the sampling taps: (tokens, {"logits", "scaled"}), for `compare where --sample`."""
    logits_fn = lambda tokens: model.forward(gpt, tokens, cfg)  # noqa: E731
    return sampling.sample_tokens(
        logits_fn, prompt, prompt_len, cfg, key=key, num_samples=num_samples, temperature=temperature, taps=True
    )
