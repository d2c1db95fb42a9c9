"""The sampling loop every implementation shares: they differ only in how logits are computed.

Fixed shapes throughout (a block_size buffer, a traced prompt length and temperature), so the
sampler compiles once whatever the prompt; one PRNG key split per token.
"""

import jax
import jax.numpy as jnp

from common.config import Config


def sample_tokens(logits_fn, prompt, prompt_len, cfg: Config, *, key, num_samples: int, temperature,
                  taps: bool = False):
    """(num_samples, T) tokens: row[p] is the token that follows position p of the name.

    `logits_fn(tokens)` maps a (T,) buffer to (T, V) logits. `prompt` (T,) holds BOS and the given
    start of the name in its first `prompt_len` places; those are copied, the rest is sampled
    until BOS (then BOS repeats). Causality makes the padding after the current position unseen.

    With `taps`, also the sampling taps of every name and position, (num_samples, T, V) each:
    "logits", the forward's row at that position on the tokens so far, and "scaled", what the
    categorical draws from (the logits over the temperature); `compare where --sample` lines them
    up. Without, the traced program is exactly the one it always was.
    """
    T, bos = cfg.block_size, cfg.vocab_size - 1

    def one_name(key):
        def step(carry, pos):
            tokens, key, done = carry
            key, sub = jax.random.split(key)
            logits = logits_fn(tokens)[pos]  # (V,)
            scaled = logits / temperature
            nxt = jax.random.categorical(sub, scaled)
            given = tokens[jnp.minimum(pos + 1, T - 1)]
            nxt = jnp.where(pos + 1 < prompt_len, given, nxt)
            nxt = jnp.where(done, bos, nxt)  # after BOS the name is over
            tokens = tokens.at[pos + 1].set(nxt, mode="drop")
            return (tokens, key, done | (nxt == bos)), ((nxt, logits, scaled) if taps else nxt)

        _, out = jax.lax.scan(step, (jnp.asarray(prompt), key, jnp.array(False)), jnp.arange(T))
        return out  # (T,), or with the taps ((T,), (T, V), (T, V))

    out = jax.vmap(one_name)(jax.random.split(key, num_samples))
    if taps:
        tokens, logits, scaled = out
        return tokens, {"logits": logits, "scaled": scaled}
    return out
