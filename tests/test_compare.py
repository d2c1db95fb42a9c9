"""The implementations compute the same thing: every check on a grid of model shapes, for every pair,
with jit and without, each with a failing twin proving that the check fails on a real difference.

Compiled functions are shared: one per (kind of output, implementation, shape, jit or not), reused by
every pair, seed and scale, so the grid costs a compile per function, not per case.
"""

import dataclasses
import functools

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
from compare import convert, equivalence, impls
from compare.tolerances import JIT_VS_EAGER, JIT_VS_EAGER_10X
from compare.verdict import BITWISE, DIFFERENT, ROUNDING, Verdict, assert_level

TOK = Tokenizer("abcdefghijklmnopqrstuvwxyz")
LONG = "abcdefghijklmnopqrstuvwxyz"  # longer than every block_size of the grid: truncated
SHAPES = equivalence.SHAPES  # the default, and one change at a time around it
NAMES = impls.available()
PAIRS = impls.pairs(NAMES)
MODES = list(equivalence.MODES)


def config(shape: str) -> Config:
    return Config(vocab_size=TOK.vocab_size, **SHAPES[shape])


@functools.cache
def impl(name: str):
    return impls.get(name)


@functools.cache
def function(kind: str, name: str, cfg: Config, mode: str):
    """The function under test, compiled once for its shapes (jit) or called as is (no_jit: library
    jits inside, such as optax's, stay on, as with chex's without_jit)."""
    fn = equivalence.raw(kind, impl(name), cfg)
    return jax.jit(fn) if mode == "jit" else fn


@functools.cache
def states(shape: str, seed: int = 0, scale: float = 1.0) -> dict:
    """One initialisation in every implementation. Every state of one implementation and shape shares
    the first one's tree structure: a fresh flax TrainState or nnx graphdef holds a new optax object,
    a new static value, and the compiled functions would compile again for it."""
    cfg = config(shape)
    made = equivalence.states_from_one_init([impl(n) for n in NAMES], cfg, key=jax.random.PRNGKey(seed), scale=scale)
    if (seed, scale) != (0, 1.0):
        made = [jax.tree.unflatten(jax.tree.structure(first), jax.tree.leaves(m))
                for first, m in zip(states(shape).values(), made)]
    return dict(zip(NAMES, made))


def inputs(kind: str, name: str, shape: str, seed: int = 0, scale: float = 1.0, word: str = "kaelyn"):
    """(x, data) for one check: params or state, and the tokens, name(s) or prompt."""
    cfg = config(shape)
    state = (states(shape) if (seed, scale) == (0, 1.0) else states(shape, seed, scale))[name]
    params = impl(name).params_of(state)
    if kind == "logits":
        return params, encode_name(word, TOK, cfg.block_size).inputs
    if kind == "grads":
        return params, encode_name(word, TOK, cfg.block_size)
    if kind == "update":
        return state, encode_name(word, TOK, cfg.block_size)
    if kind == "updates":
        words = [word, "emma", "x", LONG, "olivia", "bo", "ava", "zoe", "kaelyn", "mia"]
        return state, training_batches(words, TOK, cfg.block_size, 10, seed)
    prompt, n = prompt_tokens(TOK, "ka", cfg)
    return params, (prompt, n, jax.random.PRNGKey(seed))


def outputs(kind: str, name: str, shape: str, mode: str, **kw) -> dict:
    x, data = inputs(kind, name, shape, **kw)
    return equivalence.flatten(kind, impl(name), function(kind, name, config(shape), mode)(x, data))


@functools.cache
def cached_outputs(kind: str, name: str, shape: str, mode: str) -> dict:
    return outputs(kind, name, shape, mode)


def pair_id(pair):
    return "~".join(pair)


# ----------------------------------------------------------------------------- the grid

GRID = equivalence.GRID  # every kind at every shape under jit; without jit at three (see there)


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@pytest.mark.parametrize("kind, shape, mode", GRID)
def test_equal_on_the_shape_grid(kind, shape, pair, mode):
    a, b = (cached_outputs(kind, name, shape, mode) for name in pair)
    equivalence.assert_same(kind, a, b, equivalence.expected_level(kind, mode == "jit"), f"{kind} at {shape}")


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["logits", "grads", "update"])
def test_grid_check_catches_one_weight_nudged_by_1e_4(kind, shape, pair):
    """The same compiled functions, one weight of the second implementation moved: caught at every
    shape. (In the logits that is only ~10 ulps: the checks demand every bit where the arithmetic is the same.)"""
    a = cached_outputs(kind, pair[0], shape, "jit")
    x, data = inputs(kind, pair[1], shape)
    x = nudged(pair[1], x, shape, is_state=kind == "update")
    b = equivalence.flatten(kind, impl(pair[1]), function(kind, pair[1], config(shape), "jit")(x, data))
    with pytest.raises(AssertionError, match="expected bitwise equal"):
        equivalence.assert_same(kind, a, b, equivalence.expected_level(kind, jit=True))


def nudged(name: str, x, shape: str, is_state: bool = False, param: str = "l0.wq", by: float = 1e-4):
    """Params or a training state of implementation `name`, one weight moved by `by` (through the flat layout)."""
    cfg, it = config(shape), impl(name)
    if is_state:  # move the weight, keep the Adam state
        flat, opt = it.state_to_flat(x)
        moved = it.state_from_flat(dict(flat, **{param: jnp.asarray(flat[param]).at[0, 0].add(by)}), opt, cfg)
        return jax.tree.unflatten(jax.tree.structure(x), jax.tree.leaves(moved))  # the compiled step's own structure
    flat = it.to_flat(x)
    return it.from_flat(dict(flat, **{param: jnp.asarray(flat[param]).at[0, 0].add(by)}), cfg)


# ----------------------------------------------------------------------------- batches of names

@functools.cache
def batch_function(kind: str, name: str, mode: str):
    fn = equivalence.raw(kind, impl(name), CFG)
    return jax.jit(fn) if mode == "jit" else fn


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@pytest.mark.parametrize("kind", ["grads", "update", "updates"])
def test_equal_on_batches_of_8_names(kind, pair, mode):
    """B names a step (each twin's batch_loss_fn: a vmap of its one-name forward, the mean over real
    tokens), the default shape: the same levels as one name a step."""
    out = [batch_outputs(kind, name, mode) for name in pair]
    equivalence.assert_same(kind, *out, equivalence.expected_level(kind, mode == "jit"), f"{kind}, 8 names a step")


@functools.cache
def batch_outputs(kind: str, name: str, mode: str) -> dict:
    words = ["emma", "a", LONG, "olivia", "bo", "kaelyn", "zoe", "ava", "mia", "x", "noah", "li"]
    batches = training_batches(words, TOK, CFG.block_size, 2, 0, batch_size=8)  # (2, 8, T)
    data = batches if kind == "updates" else type(batches)(*(col[0] for col in batches))
    state = states("default")[name]
    x = state if kind != "grads" else impl(name).params_of(state)
    return equivalence.flatten(kind, impl(name), batch_function(kind, name, mode)(x, data))


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_batch_check_catches_one_weight_nudged_by_1e_4(pair):
    words = ["emma", "a", LONG, "olivia", "bo", "kaelyn", "zoe", "ava"]
    batches = training_batches(words, TOK, CFG.block_size, 1, 0, batch_size=8)
    batch = type(batches)(*(col[0] for col in batches))  # (8, T)
    out = []
    for name, move in zip(pair, (False, True)):
        params = impl(name).params_of(states("default")[name])
        params = nudged(name, params, "default") if move else params
        out.append(equivalence.flatten("grads", impl(name), batch_function("grads", name, "jit")(params, batch)))
    with pytest.raises(AssertionError, match="expected bitwise equal"):
        equivalence.assert_same("grads", *out, BITWISE)


# ----------------------------------------------------------------------------- seeds, scales, names

@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@pytest.mark.parametrize("seed, scale, word", [(1, 1.0, "a"), (2, 10.0, LONG), (1, 10.0, "a"), (2, 1.0, LONG)])
@pytest.mark.parametrize("kind", ["logits", "grads", "update", "updates"])
def test_equal_at_other_seeds_scales_and_name_lengths(kind, seed, scale, word, pair):
    """Default shape, under jit: weights at init scale and at 10x, names of 1 letter and longer than
    block_size; the compiled functions of the grid, fed other inputs."""
    a, b = (outputs(kind, name, "default", "jit", seed=seed, scale=scale, word=word) for name in pair)
    equivalence.assert_same(kind, a, b, BITWISE)


# ----------------------------------------------------------------------------- failing twins (configs, masks)

PURE, FLAX = "pure", "flax_port"
CFG = config("default")


PORTS = [(name, name) for name in NAMES if name != PURE]  # each port against pure


class FailingTwinTest(chex.TestCase):
    """Real differences of another kind than a nudged weight, in each port against pure: each must
    raise, with jit and without."""

    def check(self, port, kind, cfg_b=None, level=None):
        x_a, data = inputs(kind, PURE, "default")
        x_b, _ = inputs(kind, port, "default")
        if cfg_b is not None:  # the port built or stepped with another config (NNX builds its norms from it)
            flat, opt = impl(PURE).state_to_flat(states("default")[PURE])
            if kind in ("update", "updates"):
                x_b = impl(port).state_from_flat(flat, opt, cfg_b)
            else:
                x_b = impl(port).from_flat(flat, cfg_b)
        jit = self.variant.type == chex.ChexVariantType.WITH_JIT
        with pytest.raises(AssertionError, match=DIFFERENT):
            equivalence.check_pair(kind, impl(PURE), impl(port), x_a, x_b, data, CFG, cfg_b, variant=self.variant,
                                   level=level or equivalence.expected_level(kind, jit))

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*PORTS)
    def test_logits_check_catches_a_wrong_rmsnorm_epsilon(self, port):
        self.check(port, "logits", dataclasses.replace(CFG, norm_eps=1e-6))  # flax's own default

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*PORTS)
    def test_logits_check_catches_a_missing_causal_mask(self, port):
        T = CFG.block_size
        with pytest.MonkeyPatch.context() as mp:
            no_mask = lambda x: jnp.ones((1, T, T), bool)  # noqa: E731
            mp.setattr(flax_port.model.nn, "make_causal_mask", no_mask)
            if port == "nnx_port":
                import nnx_port.model

                mp.setattr(nnx_port.model.nnx, "make_causal_mask", no_mask)
            self.check(port, "logits")

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*PORTS)
    def test_update_check_catches_a_different_adam_beta(self, port):
        self.check(port, "update", dataclasses.replace(CFG, beta1=0.9))  # optax's default

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*PORTS)
    def test_update_check_catches_a_different_adam_epsilon(self, port):
        self.check(port, "update", dataclasses.replace(CFG, adam_eps=1.1e-8))

    @chex.variants(with_jit=True)
    @parameterized.named_parameters(*PORTS)
    def test_updates_check_catches_a_different_adam_epsilon(self, port):
        self.check(port, "updates", dataclasses.replace(CFG, adam_eps=1.1e-8))

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*PORTS)
    def test_sample_check_catches_different_weights(self, port):
        x_a, data = inputs("samples", PURE, "default")
        flat = dict(impl(PURE).to_flat(x_a))
        flat["lm_head"] = flat["lm_head"].at[0].add(-2.0)  # 'a' much less likely
        x_b = impl(port).from_flat(flat, CFG)
        with pytest.raises(AssertionError, match=DIFFERENT):
            equivalence.check_pair("samples", impl(PURE), impl(port), x_a, x_b, data, CFG, variant=self.variant)


# ----------------------------------------------------------------------------- truly eager

@pytest.mark.parametrize("shape", ["default"])
def test_one_update_bitwise_under_disable_jit(shape):
    """chex's without_jit leaves library jits (optax's) on; jax.disable_jit() turns them off too, and
    then even one update is bitwise."""
    for kind in ("update",):  # logits and gradients run op by op without jit in the grid already
        with jax.disable_jit():
            a, b = (outputs(kind, name, shape, "no_jit") for name in (PURE, FLAX))
        equivalence.assert_same(kind, a, b, BITWISE, f"{kind} under disable_jit at {shape}")


# ----------------------------------------------------------------------------- the verdict's levels

def test_the_verdict_tells_the_three_levels_apart():
    a = {"w": np.array([0.3, -0.1, 0.2], np.float32)}
    one_ulp = {"w": np.array([np.nextafter(np.float32(0.3), np.float32(1)), -0.1, 0.2], np.float32)}
    far = {"w": np.array([0.3 + 1e-4, -0.1, 0.2], np.float32)}
    for b, level in [(a, BITWISE), (one_ulp, ROUNDING), (far, DIFFERENT)]:
        v = Verdict()
        v.add(a, b, step=3)
        assert v.level == level and v.exit_code == (level == DIFFERENT)
        assert v.line().startswith(level)
    v = Verdict()
    v.add(a, far, step=3)
    assert "w[0] at step 3" in v.line() and v.first_over.ulps > 3000


def test_assert_level_accepts_rounding_only_where_asked():
    a = {"w": np.array([0.3], np.float32)}
    b = {"w": np.nextafter(a["w"], np.float32(1))}
    assert_level(a, b, ROUNDING, "w")
    with pytest.raises(AssertionError, match="expected bitwise equal, got equal to float32 rounding"):
        assert_level(a, b, BITWISE, "w")


# ----------------------------------------------------------------------------- each alone, jit vs not

@pytest.mark.parametrize("which", [PURE, FLAX])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_jit_and_eager_agree_for_each_implementation(which, scale):
    params, batch = inputs("grads", which, "default", seed=1, scale=scale, word=LONG)
    it = impl(which)
    tol = JIT_VS_EAGER if scale == 1.0 else JIT_VS_EAGER_10X
    chex.assert_trees_all_close(it.forward(params, batch.inputs, CFG),
                                function("logits", which, CFG, "jit")(params, batch.inputs), **tol)
    chex.assert_trees_all_close(equivalence.raw("grads", it, CFG)(params, batch),
                                function("grads", which, CFG, "jit")(params, batch), **tol)


@pytest.mark.parametrize("scale, by", [(1.0, 1e-3), (10.0, 1e-2)])
def test_jit_vs_eager_check_catches_a_nudged_weight(scale, by):
    params, batch = inputs("grads", PURE, "default", seed=1, scale=scale, word=LONG)
    changed = dict(params, wte=params["wte"].at[TOK.bos].add(by))  # BOS starts every name
    eager_logits = impl(PURE).forward(params, batch.inputs, CFG)
    jit_logits = function("logits", PURE, CFG, "jit")(changed, batch.inputs)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(eager_logits, jit_logits, **(JIT_VS_EAGER if scale == 1.0 else JIT_VS_EAGER_10X))


# ----------------------------------------------------------------------------- conversion

@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_round_trips_are_bitwise(pair):
    a, b = impl(pair[0]), impl(pair[1])
    stepped = function("update", pair[0], CFG, "jit")(*inputs("update", pair[0], "default"))[0]
    back = convert.state(convert.state(stepped, a, b, CFG), b, a, CFG)
    chex.assert_trees_all_equal(a.state_to_flat(back), a.state_to_flat(stepped))


def test_round_trip_check_catches_a_changed_leaf():
    params = impl(PURE).params_of(states("default")[PURE])
    flat = dict(impl(FLAX).to_flat(impl(FLAX).from_flat(params, CFG)))
    flat["l0.wq"] = flat["l0.wq"].at[0, 0].add(1e-7)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(flat, params)


def test_a_tree_that_does_not_fit_is_refused_naming_each_path():
    from common.errors import UserError

    params = dict(impl(PURE).params_of(states("default")[PURE]))
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
    flax_broken = jax.tree.map(lambda x: x, impl(FLAX).params_of(states("default")[FLAX]))
    flax_broken["l0"]["attn"]["wq"]["bias"] = jnp.zeros(16)
    with pytest.raises(UserError, match="extra l0/attn/wq/bias"):
        convert.flax_to_pure(flax_broken, CFG)


@pytest.mark.parametrize("name", NAMES)
def test_nudged_helper_really_changes_one_weight(name):
    x = impl(name).params_of(states("default")[name])
    a, b = impl(name).to_flat(x), impl(name).to_flat(nudged(name, x, "default"))
    diffs = {k: int(np.sum(np.asarray(a[k]) != np.asarray(b[k]))) for k in a}
    assert diffs["l0.wq"] == 1 and sum(diffs.values()) == 1
