"""pure/ and flax_port/ compute the same thing: every check under jit and without, each with a
twin test proving that the check fails on a real difference."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import flax_port.model
from common.config import Config
from common.data import Tokenizer, encode_name, training_batches
from common.runner import prompt_tokens
from compare import convert, equivalence
from compare.tolerances import JIT_VS_EAGER, JIT_VS_EAGER_10X
from pure import model as pure_model

TOK = Tokenizer("abcdefghijklmnopqrstuvwxyz")
CFG = Config(vocab_size=TOK.vocab_size)
LONG = "abcdefghijklmnopqrstuvwxyz"  # longer than block_size: truncated
CASES = [
    dict(testcase_name=f"seed{seed}_x{scale}_{len(name)}letters", seed=seed, scale=scale, name=name)
    for seed in (0, 1, 2) for scale in (1.0, 10.0) for name in ("a", LONG)
]


def setup(seed, scale, name):
    pure_state, flax_state = equivalence.pure_and_flax_states(CFG, key=jax.random.PRNGKey(seed), scale=scale)
    return pure_state, flax_state, encode_name(name, TOK, CFG.block_size)


def nudged(flax_params, path=("l0", "attn", "wq", "kernel"), by=1e-4):
    """The flax tree with one weight moved by `by`."""
    flat = dict(convert.flax_to_pure(flax_params))
    name = convert.pure_name(path)
    flat[name] = flat[name].at[0, 0].add(by)
    return convert.pure_to_flax(flat)


class EqualTest(chex.TestCase):
    """Same weights, same tokens: equal numbers."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*CASES)
    def test_logits_equal_bitwise(self, seed, scale, name):
        (params, _), state, batch = setup(seed, scale, name)
        equivalence.assert_logits_equal(params, state.params, batch.inputs, CFG, variant=self.variant)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*CASES)
    def test_gradients_equal_bitwise(self, seed, scale, name):
        (params, _), state, batch = setup(seed, scale, name)
        equivalence.assert_grads_equal(params, state.params, batch, CFG, variant=self.variant)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*CASES[::2])
    def test_one_update_equal(self, seed, scale, name):
        pure_state, flax_state, batch = setup(seed, scale, name)
        exact = self.variant.type == chex.ChexVariantType.WITH_JIT
        equivalence.assert_one_update_equal(pure_state, flax_state, batch, CFG, variant=self.variant, exact=exact)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*CASES[::2])
    def test_ten_updates_equal_over_a_sequence_of_names(self, seed, scale, name):
        pure_state, flax_state, _ = setup(seed, scale, name)
        names = [name, "emma", "x", LONG, "olivia", "bo", "ava", "zoe", "kaelyn", "mia"]
        batches = training_batches(names, TOK, CFG.block_size, 10, seed)
        equivalence.assert_updates_equal(pure_state, flax_state, batches, CFG, variant=self.variant)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*CASES[:4])
    def test_sampled_names_equal_for_the_same_key(self, seed, scale, name):
        (params, _), state, _ = setup(seed, scale, name)
        prompt, n = prompt_tokens(TOK, "ka", CFG)
        key = jax.random.PRNGKey(seed)
        equivalence.assert_samples_equal(params, state.params, prompt, n, CFG, key=key, variant=self.variant)


class FailingTwinTest(chex.TestCase):
    """The same checks on a real difference: each must raise (with the same tolerances)."""

    @property
    def exact(self):
        return self.variant.type == chex.ChexVariantType.WITH_JIT

    @chex.variants(with_jit=True, without_jit=True)
    def test_logits_check_catches_one_weight_nudged_by_1e_4(self):
        (params, _), state, batch = setup(0, 1.0, "emma")
        with pytest.raises(AssertionError):
            equivalence.assert_logits_equal(params, nudged(state.params), batch.inputs, CFG, variant=self.variant)

    @chex.variants(with_jit=True, without_jit=True)
    def test_logits_check_catches_a_wrong_rmsnorm_epsilon(self):
        (params, _), state, batch = setup(0, 1.0, "emma")
        wrong = dataclasses.replace(CFG, norm_eps=1e-6)  # flax's own default
        with pytest.raises(AssertionError):
            equivalence.assert_logits_equal(params, state.params, batch.inputs, CFG, wrong, variant=self.variant)

    @chex.variants(with_jit=True, without_jit=True)
    def test_logits_check_catches_a_missing_causal_mask(self):
        (params, _), state, batch = setup(0, 1.0, "emma")
        T = CFG.block_size
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(flax_port.model.nn, "make_causal_mask", lambda x: jnp.ones((1, T, T), bool))
            with pytest.raises(AssertionError):
                equivalence.assert_logits_equal(params, state.params, batch.inputs, CFG, variant=self.variant)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gradient_check_catches_one_weight_nudged_by_1e_4(self):
        (params, _), state, batch = setup(0, 1.0, "emma")
        with pytest.raises(AssertionError):
            equivalence.assert_grads_equal(params, nudged(state.params), batch, CFG, variant=self.variant)

    @chex.variants(with_jit=True, without_jit=True)
    def test_update_check_catches_a_different_adam_beta(self):
        pure_state, flax_state, batch = setup(0, 1.0, "emma")
        wrong = dataclasses.replace(CFG, beta1=0.9)  # optax's default
        with pytest.raises(AssertionError):
            equivalence.assert_one_update_equal(
                pure_state, flax_state, batch, CFG, wrong, variant=self.variant, exact=self.exact
            )

    @chex.variants(with_jit=True, without_jit=True)
    def test_update_check_catches_a_different_adam_epsilon(self):
        pure_state, flax_state, batch = setup(0, 1.0, "emma")
        wrong = dataclasses.replace(CFG, adam_eps=1e-3)
        with pytest.raises(AssertionError):
            equivalence.assert_one_update_equal(
                pure_state, flax_state, batch, CFG, wrong, variant=self.variant, exact=self.exact
            )

    @chex.variants(with_jit=True, without_jit=True)
    def test_update_check_catches_one_weight_nudged_by_1e_4(self):
        pure_state, flax_state, batch = setup(0, 1.0, "emma")
        flax_state = flax_state.replace(params=nudged(flax_state.params))
        with pytest.raises(AssertionError):
            equivalence.assert_one_update_equal(
                pure_state, flax_state, batch, CFG, variant=self.variant, exact=self.exact
            )

    @chex.variants(with_jit=True, without_jit=True)
    def test_ten_updates_check_catches_one_weight_nudged_by_1e_4(self):
        pure_state, flax_state, _ = setup(0, 1.0, "emma")
        flax_state = flax_state.replace(params=nudged(flax_state.params))
        batches = training_batches(["emma", "olivia", "ava"], TOK, CFG.block_size, 10, 0)
        with pytest.raises(AssertionError):
            equivalence.assert_updates_equal(pure_state, flax_state, batches, CFG, variant=self.variant)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sample_check_catches_different_weights(self):
        (params, _), state, _ = setup(0, 1.0, "emma")
        prompt, n = prompt_tokens(TOK, "", CFG)
        changed = nudged(state.params, ("lm_head", "embedding"), by=-2.0)  # 'a' much less likely
        with pytest.raises(AssertionError):
            key = jax.random.PRNGKey(0)
            equivalence.assert_samples_equal(params, changed, prompt, n, CFG, key=key, variant=self.variant)


# ----------------------------------------------------------------------------- truly eager

@pytest.mark.parametrize("seed, scale", [(0, 1.0), (1, 10.0)])
def test_everything_bitwise_under_disable_jit(seed, scale):
    """chex's without_jit leaves library jits (optax's) on; jax.disable_jit() turns them off too."""
    pure_state, flax_state, batch = setup(seed, scale, "emma")
    batches = training_batches(["emma", "a", LONG], TOK, CFG.block_size, 3, seed)
    with jax.disable_jit():
        equivalence.assert_logits_equal(pure_state[0], flax_state.params, batch.inputs, CFG)
        equivalence.assert_grads_equal(pure_state[0], flax_state.params, batch, CFG)
        equivalence.assert_one_update_equal(pure_state, flax_state, batch, CFG, exact=True)
        equivalence.assert_updates_equal(pure_state, flax_state, batches, CFG)


# ----------------------------------------------------------------------------- each alone, jit vs not

@pytest.mark.parametrize("which", ["pure", "flax_port"])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_jit_and_eager_agree_for_each_implementation(which, scale):
    (params, _), state, batch = setup(1, scale, LONG)
    model, p = (pure_model, params) if which == "pure" else (flax_port.model, state.params)
    grad_fn = jax.value_and_grad(model.loss_fn)
    eager_logits = model.forward(p, batch.inputs, CFG)
    jit_logits = jax.jit(model.forward, static_argnums=2)(p, batch.inputs, CFG)
    tol = JIT_VS_EAGER if scale == 1.0 else JIT_VS_EAGER_10X
    chex.assert_trees_all_close(eager_logits, jit_logits, **tol)
    chex.assert_trees_all_close(grad_fn(p, batch, CFG), jax.jit(grad_fn, static_argnums=2)(p, batch, CFG), **tol)


@pytest.mark.parametrize("scale, by", [(1.0, 1e-3), (10.0, 1e-2)])
def test_jit_vs_eager_check_catches_a_nudged_weight(scale, by):
    (params, _), _, batch = setup(1, scale, LONG)
    changed = dict(params, wte=params["wte"].at[TOK.bos].add(by))  # BOS starts every name
    eager_logits = pure_model.forward(params, batch.inputs, CFG)
    jit_logits = jax.jit(pure_model.forward, static_argnums=2)(changed, batch.inputs, CFG)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(eager_logits, jit_logits, **(JIT_VS_EAGER if scale == 1.0 else JIT_VS_EAGER_10X))


# ----------------------------------------------------------------------------- conversion

def test_round_trips_are_bitwise():
    (params, opt_state), state, batch = setup(0, 1.0, "emma")
    pure_state, _ = equivalence.pure_and_flax_states(CFG, key=jax.random.PRNGKey(0))
    stepped = jax.jit(lambda s, b: __import__("pure.train").train.train_step(s, b, CFG))(pure_state, batch)[0]
    back = convert.state_flax_to_pure(convert.state_pure_to_flax(stepped, CFG), CFG)
    chex.assert_trees_all_equal(back, stepped)
    again = convert.pure_to_flax(convert.flax_to_pure(state.params, CFG), CFG)
    chex.assert_trees_all_equal(again, state.params)


def test_round_trip_check_catches_a_changed_leaf():
    (params, _), _, _ = setup(0, 1.0, "emma")
    back = convert.flax_to_pure(nudged(convert.pure_to_flax(params), by=1e-7))
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(back, params)


def test_a_tree_that_does_not_fit_is_refused_naming_each_path():
    from common.errors import UserError

    (params, _), state, _ = setup(0, 1.0, "emma")
    broken = dict(params)
    del broken["l0.wk"]
    broken["l0.extra"] = jnp.zeros(3)
    broken["wpe"] = jnp.zeros((8, 16))
    with pytest.raises(UserError) as err:
        convert.pure_to_flax(broken, CFG)
    msg = str(err.value)
    assert "missing l0.wk (expected (16, 16))" in msg
    assert "extra l0.extra (3,)" in msg
    assert "wpe has shape (8, 16), expected (16, 16)" in msg
    flax_broken = jax.tree.map(lambda x: x, state.params)
    flax_broken["l0"]["attn"]["wq"]["bias"] = jnp.zeros(16)
    with pytest.raises(UserError, match="extra l0/attn/wq/bias"):
        convert.flax_to_pure(flax_broken, CFG)


def test_nudged_helper_really_changes_one_weight():
    (_, _), state, _ = setup(0, 1.0, "emma")
    a = convert.flax_to_pure(state.params)
    b = convert.flax_to_pure(nudged(state.params))
    diffs = {k: int(np.sum(np.asarray(a[k]) != np.asarray(b[k]))) for k in a}
    assert diffs["l0.wq"] == 1 and sum(diffs.values()) == 1
