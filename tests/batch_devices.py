"""The checks that need several devices. Not collected by a plain `pytest` (the name does not
start with test_): tests/test_batch.py runs this file in a fresh interpreter with
XLA_FLAGS=--xla_force_host_platform_device_count=4, which XLA reads only when JAX starts.
By hand: XLA_FLAGS=--xla_force_host_platform_device_count=4 uv run pytest tests/batch_devices.py"""

import functools

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
from common.devices import data_mesh, place_batches, place_state
from compare import batch_checks, check, convert, equivalence, impls, programs
from compare.tolerances import DEVICES_ULPS
from compare.verdict import BITWISE
from conftest import assert_user_error, cli

TOK = Tokenizer("abcdefghijklmnopqrstuvwxyz")
CFG = Config(vocab_size=TOK.vocab_size)
NAMES = ["emma", "a", "abcdefghijklmnopqrstuvwxyz", "olivia", "bo", "kaelyn", "zoe", "ava", "mia", "x", "noah", "li"]
MODELS = {"pure": pure.model, "flax_port": flax_port.model}


def test_four_devices_are_there():
    assert jax.device_count() == 4, "run with XLA_FLAGS=--xla_force_host_platform_device_count=4"


@functools.cache
def states(seed: int = 0, scale: float = 1.0):
    return equivalence.pure_and_flax_states(CFG, key=jax.random.PRNGKey(seed), scale=scale)


@functools.cache
def mesh(n: int):
    return data_mesh(n)


def steps_of(batch_size: int, num_steps: int = 3, seed: int = 0) -> Batch:
    return training_batches(NAMES, TOK, CFG.block_size, num_steps, seed, batch_size=batch_size)


def first(batches: Batch) -> Batch:
    return Batch(*(col[0] for col in batches))


def psum_twice(model, params, batch: Batch, cfg: Config, mesh, variant=batch_checks.identity, psum_grads=True):
    """Data parallel written by hand with jax.shard_map, each device's share of the token mean.
    Under shard_map's default check_vma=True the gradient of the replicated parameters is already
    summed over devices; `psum_grads` adds the lax.psum a pmap-era step would write: N times too large."""
    from jax.sharding import PartitionSpec

    params = place_state(params, mesh)
    batch = first(place_batches(Batch(*(np.asarray(c)[None] for c in batch)), mesh))

    def local(p, b):
        share = jnp.sum(b.mask) / jax.lax.psum(jnp.sum(b.mask), "data")  # this device's fraction of the tokens
        loss, grads = jax.value_and_grad(lambda p: model.batch_loss_fn(p, b, cfg) * share)(p)
        if psum_grads:
            grads = jax.lax.psum(grads, "data")
        return jax.lax.psum(loss, "data"), grads

    step = jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec("data")),
                         out_specs=(PartitionSpec(), PartitionSpec()))
    return variant(step)(params, batch)


class DevicesTest(chex.TestCase):

    # Every pair's equality under the same sharding: test_every_pair_under_the_same_sharding_of_4_devices below.

    @chex.variants(with_jit=True)
    def test_sharded_check_catches_one_weight_nudged_by_1e_4(self):
        pure_state, flax_state = states(0)
        flat = dict(convert.flax_to_pure(flax_state.params))
        flat["l0.wq"] = flat["l0.wq"].at[0, 0].add(1e-4)
        flax_state = flax_state.replace(params=convert.pure_to_flax(flat))
        with pytest.raises(AssertionError):
            batch_checks.assert_sharded_pure_flax_equal(pure_state, flax_state, steps_of(8, 2), CFG, mesh(4),
                                                        variant=self.variant)

    @chex.variants(with_jit=True)
    @parameterized.parameters(("pure", 4, 10.0))
    def test_n_devices_match_one_within_the_bound(self, which, n, scale):
        self.check_devices_match_one(which, n, scale)


    @chex.variants(with_jit=True)
    @parameterized.parameters(("flax_port", 2, 1.0))
    @pytest.mark.full  # pure's check above, at 2 devices: flax_port's arithmetic is pure's, bit for bit
    def test_n_devices_match_one_within_the_bound_jit(self, which, n, scale):
        self.check_devices_match_one(which, n, scale)

    def check_devices_match_one(self, which, n, scale):
        pure_state, flax_state = states(1, scale)
        params = pure_state[0] if which == "pure" else flax_state.params
        batch_checks.assert_devices_match_one(MODELS[which], params, first(steps_of(32)), CFG, mesh(n),
                                              DEVICES_ULPS, variant=self.variant)

    @chex.variants(with_jit=True)
    @pytest.mark.full  # what shard_map does, shown (no check of the project's code hangs on it): 3.6 s cold
    def test_shard_map_without_a_psum_already_sums_the_gradients(self):
        (params, _), _ = states(1)
        grads_fn = functools.partial(psum_twice, psum_grads=False)
        batch_checks.assert_devices_match_one(pure.model, params, first(steps_of(32)), CFG, mesh(4), DEVICES_ULPS,
                                              variant=self.variant, grads_fn=grads_fn)
        # and with the psum on top, 4 times the one-device gradients
        batch = first(steps_of(32))
        _, grads_one = batch_checks.sharded_value_and_grad(pure.model, params, batch, CFG, mesh(1), self.variant)
        _, grads_twice = psum_twice(pure.model, params, batch, CFG, mesh(4), self.variant)
        np.testing.assert_allclose(grads_twice["wte"], 4 * np.asarray(grads_one["wte"]), rtol=1e-5, atol=1e-7)

    @chex.variants(with_jit=True)
    @parameterized.parameters((4,))
    def test_the_devices_check_catches_gradients_summed_twice(self, n):
        (params, _), _ = states(1)
        with pytest.raises(AssertionError, match="ulps apart"):
            batch_checks.assert_devices_match_one(pure.model, params, first(steps_of(32)), CFG, mesh(n),
                                                  DEVICES_ULPS, variant=self.variant, grads_fn=psum_twice)


@pytest.mark.full
def test_n_devices_match_one_within_the_bound_without_jit():
    """Without jit every operation on 4 devices compiles on its own, 200 of them: seconds for a check the
    quick tier makes under jit (DevicesTest) and, without jit, bitwise between every pair (below)."""
    pure_state, _ = states(1, 10.0)
    batch_checks.assert_devices_match_one(MODELS["pure"], pure_state[0], first(steps_of(32)), CFG, mesh(4),
                                          DEVICES_ULPS, variant=equivalence.op_by_op)


def pair_id(pair):
    return "~".join(pair)


@pytest.mark.parametrize("pair", impls.pairs(impls.available()), ids=pair_id)
def test_every_pair_under_the_same_sharding_of_4_devices(device_case, pair, grid_tier):
    """8 names a step split over 4 devices, state replicated: every pair as on one device, bitwise
    with jit and op by op, nnx_port included. Each implementation's outputs come from the grid's
    program on 4 devices (compare/programs.py), made once."""
    out = [programs.runner(impls.resolve(name), grid_tier).output(device_case) for name in pair]
    equivalence.assert_same(device_case.kind, *out, equivalence.expected_level(device_case.kind, device_case.jit),
                            str(device_case))


def test_a_run_on_4_devices_compiles_once_and_prints_its_layout():
    code, out, err = cli("flax_port", "--steps", "4", "--log-every", "2", "--batch-size", "8", "--devices", "4",
                         "--num-samples", "2")
    assert code == 0, err
    assert "8 names a step on 4 devices" in out and "step    4 /    4" in out


def test_a_batch_that_does_not_split_over_the_devices_is_refused():
    assert_user_error(cli("pure", "--steps", "2", "--batch-size", "6", "--devices", "4"),
                      "batch-size=6 does not split over devices=4")


# ----------------------------------------------------------------------------- compare check's own 4-device rows

def test_compare_check_runs_its_4_device_rows_on_a_port_named_by_path(device_case):
    """The rows `compare check` adds when JAX sees 4 devices (place_state, place_batches inside its
    programs), on the Equinox port reached by module path: as equal as the twins are there."""
    assert check.device_count() == 4
    result = check.judge("examples.equinox_port", device_case)
    assert not result.missing and result.level == result.expected == BITWISE, result.describe()


def test_compare_check_catches_a_planted_adam_epsilon_on_4_devices(tmp_path, monkeypatch):
    """The failing twin of the rows above: pure with Adam's epsilon 1e-6 (tests/planted.py), one
    update of 8 names split over 4 devices."""
    (tmp_path / "planted_eps_port.py").write_text("import planted\n\n\ndef impl():\n"
                                                  "    return planted.PLANTED['adam_eps'][0]()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    case = check.Case("update", batch=check.BATCH, devices=check.DEVICES)
    with pytest.raises(AssertionError, match="update-default-b8-4dev-jit: planted_eps_port against pure: different"):
        check.assert_case("planted_eps_port", case)
