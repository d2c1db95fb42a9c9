"""Adam from optax, with optax's linear schedule from lr to 0 (as flax_port/optim.py builds it).

optax takes over the moments, the bias correction and the schedule; Equinox adds nothing here.
"""

import optax

from common.config import Config

# ----------------------------------------------------------------------------- schedule

def learning_rate(cfg: Config) -> optax.Schedule:
    """lr * (1 - step / num_steps) as an optax schedule: optax passes the 0-based `step`."""
    return optax.linear_schedule(init_value=cfg.learning_rate, end_value=0.0, transition_steps=cfg.num_steps)


# ----------------------------------------------------------------------------- optimizer

def adam(cfg: Config) -> optax.GradientTransformation:
    """optax.adam with every argument spelled out (its defaults are b1 0.9, b2 0.999)."""
    return optax.adam(
        learning_rate(cfg), b1=cfg.beta1, b2=cfg.beta2, eps=cfg.adam_eps, eps_root=0.0, nesterov=False
    )
