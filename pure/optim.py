"""Adam, written out: state in, state out, with the learning rate decaying linearly to 0.

Twins: flax_port/optim.py and nnx_port/optim.py (there optax builds the same optimizer from a schedule and adam).
"""

import jax
import jax.numpy as jnp

from common.config import Config

# ----------------------------------------------------------------------------- schedule

def learning_rate(step, cfg: Config):
    """lr * (1 - step / num_steps): the rate for 0-based `step`, reaching 0 after the last step."""
    return cfg.learning_rate * (1 - step / cfg.num_steps)


# ----------------------------------------------------------------------------- optimizer

def adam_init(params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return {"step": jnp.zeros((), jnp.int32), "m": zeros, "v": zeros}


def adam_update(params, grads, opt_state, cfg: Config):
    """One Adam step. Written in optax's order of operations, so that the two agree bitwise."""
    b1, b2, eps = cfg.beta1, cfg.beta2, cfg.adam_eps
    step = opt_state["step"]
    t = step + 1  # bias correction counts from 1
    lr = learning_rate(step, cfg)

    m = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, grads, opt_state["m"])
    v = jax.tree.map(lambda g, v: (1 - b2) * g**2 + b2 * v, grads, opt_state["v"])
    c1, c2 = 1 - b1**t, 1 - b2**t  # bias corrections: the moments start at 0
    m_hat = jax.tree.map(lambda m: m / c1, m)
    v_hat = jax.tree.map(lambda v: v / c2, v)
    params = jax.tree.map(lambda p, m, v: p - lr * (m / (jnp.sqrt(v) + eps)), params, m_hat, v_hat)
    return params, {"step": t, "m": m, "v": v}
