"""The equivalence checks, asserted with chex: same weights and tokens in, same numbers out.

Each check takes `variant`, a wrapper applied to the functions under test (chex's with_jit /
without_jit in the tests, `jax.jit` or nothing elsewhere), so every check runs in both modes.
"""

import chex
import jax
import jax.numpy as jnp

from common.config import Config
from common.data import Batch
from compare import convert
from compare.tolerances import ONE_UPDATE_WITHOUT_JIT
from flax_port import model as flax_model
from flax_port import sample as flax_sample
from flax_port import train as flax_train
from pure import model as pure_model
from pure import sample as pure_sample
from pure import train as pure_train


def identity(fn):
    return fn


def pure_and_flax_states(cfg: Config, *, key, scale: float = 1.0):
    """One initialisation, converted into both: (pure (params, opt_state), flax TrainState)."""
    params, opt_state = pure_train.init_state(cfg, key=key)
    params = jax.tree.map(lambda w: w * scale, params)
    return (params, opt_state), convert.state_pure_to_flax((params, opt_state), cfg)


def assert_logits_equal(
    pure_params, flax_params, tokens, cfg_pure: Config, cfg_flax: Config | None = None, variant=identity
):
    """Bitwise. `cfg_flax` lets a test give the port a different config and watch this fail."""
    cfg_flax = cfg_flax or cfg_pure
    logits_p = variant(lambda p, t: pure_model.forward(p, t, cfg_pure))(pure_params, tokens)
    logits_f = variant(lambda p, t: flax_model.forward(p, t, cfg_flax))(flax_params, tokens)
    chex.assert_trees_all_equal(logits_p, logits_f)


def assert_grads_equal(pure_params, flax_params, batch: Batch, cfg: Config, variant=identity):
    """Bitwise, compared in pure's layout."""
    loss_p, grads_p = variant(lambda p, b: jax.value_and_grad(pure_model.loss_fn)(p, b, cfg))(pure_params, batch)
    loss_f, grads_f = variant(lambda p, b: jax.value_and_grad(flax_model.loss_fn)(p, b, cfg))(flax_params, batch)
    chex.assert_trees_all_equal(loss_p, loss_f)
    chex.assert_trees_all_equal(grads_p, convert.flax_to_pure(grads_f))


def assert_one_update_equal(pure_state, flax_state, batch: Batch, cfg_pure: Config, cfg_flax: Config | None = None,
                            variant=identity, exact=True):
    """Bitwise; with `exact=False` (no outer jit, optax's own jit inside) parameters are compared
    within ONE_UPDATE_WITHOUT_JIT (see compare/tolerances.py), moments still bitwise."""
    cfg_flax = cfg_flax or cfg_pure
    if cfg_flax != cfg_pure:
        flax_state = convert.state_pure_to_flax(pure_state, cfg_flax)
    new_p, loss_p = variant(lambda s, b: pure_train.train_step(s, b, cfg_pure))(pure_state, batch)
    new_f, loss_f = variant(lambda s, b: flax_train.train_step(s, b, cfg_flax))(flax_state, batch)
    params_f, opt_f = convert.state_flax_to_pure(new_f, cfg_flax)
    chex.assert_trees_all_equal(loss_p, loss_f)
    chex.assert_trees_all_equal(new_p[1], opt_f)
    if exact:
        chex.assert_trees_all_equal(new_p[0], params_f)
    else:
        chex.assert_trees_all_close(new_p[0], params_f, **ONE_UPDATE_WITHOUT_JIT)


def assert_updates_equal(pure_state, flax_state, batches: Batch, cfg: Config, variant=identity):
    """Several updates over a sequence of names (k, T), as one lax.scan: bitwise, every output."""
    new_p, losses_p = variant(lambda s, b: pure_train.train_steps(s, b, cfg))(pure_state, batches)
    new_f, losses_f = variant(lambda s, b: flax_train.train_steps(s, b, cfg))(flax_state, batches)
    params_f, opt_f = convert.state_flax_to_pure(new_f, cfg)
    chex.assert_trees_all_equal(losses_p, losses_f)
    chex.assert_trees_all_equal(new_p, (params_f, opt_f))


def assert_samples_equal(pure_params, flax_params, prompt, prompt_len, cfg: Config, *, key, variant=identity):
    """Same weights, same key: the same tokens, bitwise."""
    kw = dict(key=key, num_samples=8, temperature=jnp.float32(0.5))
    toks_p = variant(lambda p, t, n: pure_sample.sample_tokens(p, t, n, cfg, **kw))(pure_params, prompt, prompt_len)
    toks_f = variant(lambda p, t, n: flax_sample.sample_tokens(p, t, n, cfg, **kw))(flax_params, prompt, prompt_len)
    chex.assert_trees_all_equal(toks_p, toks_f)
