"""Batches of B names, and the data-parallel run over devices: pure ≡ flax_port bitwise at every
batch size, the batched loss ≈ one name at a time (within the ulp bounds of compare/tolerances.py),
each check under jit and without and with a failing twin. The checks that need several devices
live in tests/batch_devices.py; the last test here runs them with 4 forced host devices."""

import dataclasses
import functools
import re
import subprocess

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import flax_port.model
import pure.model
from common.config import Config
from common.data import Batch, Tokenizer, training_batches
from common.devices import data_mesh
from common.runner import run_training
from compare import batch_checks, convert, equivalence
from compare.tolerances import BATCH_OF_ONE_ULPS, BATCH_VS_NAMES_ULPS
from conftest import assert_user_error, cli

TOK = Tokenizer("abcdefghijklmnopqrstuvwxyz")
CFG = Config(vocab_size=TOK.vocab_size)
NAMES = ["emma", "a", "abcdefghijklmnopqrstuvwxyz", "olivia", "bo", "kaelyn", "zoe", "ava", "mia", "x", "noah", "li"]
MODELS = {"pure": pure.model, "flax_port": flax_port.model}


@functools.cache
def states(seed: int = 0, scale: float = 1.0):
    return equivalence.pure_and_flax_states(CFG, key=jax.random.PRNGKey(seed), scale=scale)


def params_for(which: str, seed: int = 0, scale: float = 1.0):
    pure_state, flax_state = states(seed, scale)
    return pure_state[0] if which == "pure" else flax_state.params


def steps_of(batch_size: int, num_steps: int = 3, seed: int = 0) -> Batch:
    """(num_steps, B, T): B names a step (B = 1 too: the batched path, not one name a step)."""
    batches = training_batches(NAMES, TOK, CFG.block_size, num_steps, seed, batch_size=batch_size)
    return Batch(*(col[:, None] for col in batches)) if batch_size == 1 else batches


def first(batches: Batch) -> Batch:
    return Batch(*(col[0] for col in batches))


def nudged(flax_params, by=1e-4):
    flat = dict(convert.flax_to_pure(flax_params))
    flat["l0.wq"] = flat["l0.wq"].at[0, 0].add(by)
    return convert.pure_to_flax(flat)


# The wrong batched losses the checks must catch.

def loss_counting_padding(params, batch, cfg, model):
    """Every position of the (B, T) block, padding included."""
    logits = batch_checks.batched_forward(model, params, batch.inputs, cfg)
    target = jnp.take_along_axis(logits, batch.targets[..., None], axis=-1)[..., 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - target)


def loss_mean_over_names(params, batch, cfg, model):
    """Each name's own mean, then the mean of those: a short name's tokens weigh more."""
    return jnp.mean(jax.vmap(model.loss_fn, in_axes=(None, 0, None))(params, batch, cfg))


WRONG_LOSSES = {"counts_padding": loss_counting_padding, "mean_over_names": loss_mean_over_names}


# ----------------------------------------------------------------------------- data

# First in this file: under pytest-xdist the worker that takes this file waits here on the child
# (tests/batch_devices.py in a fresh interpreter) while the other worker uses the second core.
def test_device_checks_pass_on_4_forced_host_devices(device_checks):
    """tests/batch_devices.py in a fresh interpreter, started when the suite was collected, or by this
    test under pytest-xdist (conftest.py)."""
    code, stdout, stderr = device_checks
    out = subprocess.CompletedProcess([], code, stdout, stderr)
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-2000:]
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 10 and "skipped" not in summary and "failed" not in summary, summary


def test_batch_size_1_keeps_the_arrays_of_one_name_a_step(docs, tok):
    a = training_batches(docs, tok, 16, 20, seed=3)
    b = training_batches(docs, tok, 16, 20, seed=3, batch_size=1)
    assert a.inputs.shape == (20, 16)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_b_names_a_step_are_the_same_names_in_the_same_order(docs, tok):
    one = training_batches(docs, tok, 16, 4 * 6, seed=3)
    four = training_batches(docs, tok, 16, 6, seed=3, batch_size=4)
    assert four.inputs.shape == four.targets.shape == four.mask.shape == (6, 4, 16)
    for x, y in zip(one, four):
        np.testing.assert_array_equal(x, y.reshape(24, 16))


# ----------------------------------------------------------------------------- pure ≡ flax_port, batched

class BatchedEqualTest(chex.TestCase):
    """The batched equalities of every pair run in tests/test_compare.py (the grid's cases with 8 names,
    with jit and without); here, that the batch checks of compare/batch_checks.py fail on a real difference."""

    @chex.variants(with_jit=True)
    def test_gradient_check_catches_one_weight_nudged_by_1e_4(self):
        (params, _), flax_state = states(0)
        with pytest.raises(AssertionError):
            batch_checks.assert_batched_grads_equal(params, nudged(flax_state.params), first(steps_of(8)), CFG,
                                                    variant=self.variant)

    @chex.variants(with_jit=True)
    def test_update_check_catches_a_different_adam_beta(self):
        pure_state, _ = states(1)
        wrong = dataclasses.replace(CFG, beta1=0.9)
        flax_state = convert.state_pure_to_flax(pure_state, wrong)
        with pytest.raises(AssertionError):
            batch_checks.assert_batched_updates_equal(pure_state, flax_state, steps_of(4, 3), CFG,
                                                      variant=self.variant)


# ----------------------------------------------------------------------------- batched ≈ one name at a time

@pytest.mark.parametrize("mode", equivalence.MODES)
@pytest.mark.parametrize("which, scale, name", [("pure", 1.0, "emma"), ("flax_port", 10.0, NAMES[2])])
def test_a_batch_of_one_is_the_name_within_the_bound(which, scale, name, mode):
    batch = first(training_batches([name], TOK, CFG.block_size, 1, 0))
    batch_checks.assert_batch_of_one_matches_one_name(
        MODELS[which], params_for(which, 0, scale), batch, CFG, BATCH_OF_ONE_ULPS,
        variant=equivalence.VARIANTS[mode])


@pytest.mark.parametrize("mode", equivalence.MODES)
@pytest.mark.parametrize("which", MODELS)
def test_b_names_are_the_token_weighted_mean_of_each_name(which, mode):
    batch_size = 8 if mode == "jit" else 4  # without jit every operation compiles on its own: fewer shapes
    batch_checks.assert_batch_loss_is_token_mean(
        MODELS[which], params_for(which, 1), first(steps_of(batch_size)), CFG, BATCH_VS_NAMES_ULPS,
        variant=equivalence.VARIANTS[mode])


class BatchedVsOneNameTest(chex.TestCase):
    @chex.variants(with_jit=True)
    @parameterized.parameters(("pure", "counts_padding"), ("flax_port", "mean_over_names"))
    def test_the_token_mean_check_catches_a_wrong_loss(self, which, bug):
        model = MODELS[which]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(model, "batch_loss_fn", functools.partial(WRONG_LOSSES[bug], model=model))
            with pytest.raises(AssertionError, match="ulps apart"):
                batch_checks.assert_batch_loss_is_token_mean(
                    model, params_for(which, 1), first(steps_of(4)), CFG, BATCH_VS_NAMES_ULPS, variant=self.variant)

    @chex.variants(with_jit=True)
    def test_the_batch_of_one_check_catches_a_loss_counting_padding(self):
        batch = first(training_batches(["emma"], TOK, CFG.block_size, 1, 0))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(pure.model, "batch_loss_fn", functools.partial(loss_counting_padding, model=pure.model))
            with pytest.raises(AssertionError, match="ulps apart"):
                batch_checks.assert_batch_of_one_matches_one_name(
                    pure.model, params_for("pure"), batch, CFG, BATCH_OF_ONE_ULPS, variant=self.variant)


def test_ulps_apart_counts_in_ulps_of_the_largest_value():
    a = {"w": np.array([1.0, 1e-6], np.float32)}
    one_ulp = {"w": np.array([np.nextafter(np.float32(1), np.float32(2)), 1e-6], np.float32)}
    assert batch_checks.ulps_apart(a, a) == 0.0
    assert batch_checks.ulps_apart(a, one_ulp) == 1.0
    assert batch_checks.ulps_apart(a, {"w": np.array([1.0, 0.0], np.float32)}) == pytest.approx(1e-6 / 2**-23)
    assert batch_checks.ulps_apart(a, {"w": np.array([1.0, np.nan], np.float32)}) == float("inf")


# ----------------------------------------------------------------------------- the run and the command line

@pytest.fixture(scope="module")
def runs(cfg=dataclasses.replace(CFG, num_steps=6)):
    """Six steps of pure: today's path (no mesh), the same through a one-device mesh, and B = 4."""
    import pure as pure_pkg

    impl = pure_pkg.impl()
    state = impl.init_state(cfg, key=jax.random.PRNGKey(0))
    one = training_batches(NAMES, TOK, cfg.block_size, cfg.num_steps, 0)
    four = training_batches(NAMES, TOK, cfg.block_size, cfg.num_steps, 0, batch_size=4)
    return {
        "plain": run_training(impl, state, cfg, one, log_every=3),
        "mesh1": run_training(impl, state, cfg, one, log_every=3, mesh=data_mesh(1)),
        "b4": run_training(impl, state, cfg, four, log_every=3, mesh=data_mesh(1)),
    }


def test_one_device_mesh_leaves_one_name_a_step_bitwise_as_it_was(runs):
    chex.assert_trees_all_equal(runs["plain"][:2], runs["mesh1"][:2])


def test_a_batched_run_compiles_once_and_learns(runs):
    state, losses, timings = runs["b4"]
    assert timings.compiles == 1 and losses.shape == (6,) and np.isfinite(losses).all()
    assert not np.array_equal(losses, runs["plain"][1])


@pytest.mark.parametrize("flags, fragments", [
    (["--batch-size", "0"], ["batch-size=0"]),
    (["--devices", "0"], ["devices=0"]),
    (["--batch-size", "6", "--devices", "4"], ["batch-size=6 does not split over devices=4"]),
    (["--batch-size", "64", "--devices", "64"], ["devices=64 but JAX sees", "xla_force_host_platform_device_count=64"]),
    (["--steps", "1000000", "--batch-size", "64"], ["positions, all held in memory"]),
])
def test_bad_batch_flags_are_one_line_errors(flags, fragments):
    if "64" in flags and "--devices" in flags and jax.device_count() >= 64:
        pytest.skip("this host has 64 devices")
    steps = [] if "--steps" in flags else ["--steps", "2"]  # a flag given twice is refused
    assert_user_error(cli("pure", *steps, "--num-samples", "1", *flags), *fragments)


# ----------------------------------------------------------------------------- several devices
