"""The Equinox port (examples/equinox_port), reached only by its module path: the equivalence grid
through compare.check's pytest helper (as a user's own tests would call it), `compare check` on
the command line, its taps, and the port alone.

The grid here is conftest.py's `port_case`: the quick tier's cases at the default shape, every case with --full. The
check's compiled programs and pure's outputs are shared by every test of this file, and with
tests/test_compare.py when it runs in the same process."""

import dataclasses
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.cli import run_cli
from common.data import Tokenizer, encode_name, training_batches
from common.taps import tap_names, tap_shapes
from compare import check, impls, programs
from compare.verdict import ROUNDING, assert_level

PORT = "examples.equinox_port"
LEVELS = check.LEVELS

# ----------------------------------------------------------------------------- the grid, as a user's pytest runs it

def test_equinox_port_matches_pure(port_case):  # the failing twin: tests/test_ports.py, a planted epsilon
    """As equal as the twins: bitwise on every check, with jit and without (op by op). Called without an
    outer jit, a mode the grid does not use, its gradients round where the twins' do not: its `Dense`
    is `x @ weight`, jnp.matmul, which jax wraps in a jit of its own (docs/porting.md). The quick tier
    takes the default shape's cases (every kind, both modes, 8 names a step), --full every shape."""
    result = check.assert_case(PORT, port_case)  # fails on "different"
    assert LEVELS.index(result.level) <= LEVELS.index(result.expected), result.describe()


@pytest.mark.parametrize("processes", [1, pytest.param(2, marks=pytest.mark.full)])
def test_compare_check_on_the_command_line(tmp_path, capsys, processes):
    """The quick grid at the default shape; under --full also the rows over 2 processes (`--processes
    2`: python -m compare on the pair in local processes, and the port over them against one device;
    tests/test_hosts.py runs the same command on the twins in the quick tier)."""
    out_json = tmp_path / "check.json"
    code = run_cli(check.main, [PORT, "--shapes", "default", "--json", str(out_json), "--processes", str(processes)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith(f"compare check {PORT} against pure: ")
    assert "part of the quick grid: the shapes --shapes names" in out.splitlines()[0]  # not "every shape"
    assert ("4-device checks skipped: JAX sees 1 device" in out) == (jax.device_count() < 4)
    verdict = [ln for ln in out.splitlines() if ln.startswith("verdict:")][0]
    payload = json.loads(out_json.read_text())
    assert payload["exit_code"] == 0 and payload["level"] in verdict and payload["tier"] == "quick"
    assert len(payload["checks"]) == len(check.cases(shapes=["default"]))
    assert payload["first_failure"] is None
    rows = payload["processes"]
    if processes == 1:
        assert rows == [] and f"{len(payload['checks']) + len(payload['init'])} checks" in verdict
        return
    assert [r["label"].split()[-1] for r in rows] == ["processes", "device"], rows
    assert rows[0]["level"] == "bitwise equal" and rows[1]["level"] in ("bitwise equal", "equal to float32 rounding")
    assert f"{len(payload['checks']) + len(payload['init']) + 2} checks" in verdict
    # the command that reproduces a row, written as `localize:` is (it lacked `uv run`)
    assert rows[0]["command"].startswith("uv run python -m compare --impls examples.equinox_port,pure "), rows


# ----------------------------------------------------------------------------- taps

TOK = Tokenizer("abcdefghijklmnopqrstuvwxyz")
CFG = check.Case("logits").config()


def zeros_for(cfg, T, batch=()):
    return {name: jnp.zeros(batch + shape, jnp.float32) for name, shape in tap_shapes(cfg, T).items()}


def params(name: str):
    it = impls.resolve(name)
    return it, it.params_of(programs.state(it, "default"))


@pytest.fixture(scope="module")
def taps_of():
    """name -> (loss, taps, gradients with respect to the taps) of one name and of a batch of 8, jitted."""
    one = encode_name("kaelyn", TOK, CFG.block_size)
    batch = jax.tree.map(lambda c: c[0], training_batches(programs.BATCH_WORDS, TOK, CFG.block_size, 1, 0,
                                                          batch_size=8))

    def run(name):
        impl, p = params(name)
        if impl.tapped_loss is None:
            return None

        def grads(p, data, z):
            return jax.value_and_grad(lambda z: impl.tapped_loss(p, data, CFG, z), has_aux=True)(z)

        fn = jax.jit(grads)
        return {"one": fn(p, one, zeros_for(CFG, CFG.block_size)),
                "batch": fn(p, batch, zeros_for(CFG, CFG.block_size, (8,))), "params": p, "impl": impl,
                "data": (one, batch), "fn": fn}

    return {name: run(name) for name in ("pure", PORT)}


def test_equinox_taps_are_the_named_intermediates(taps_of):
    got = taps_of[PORT]
    impl, p, (one, batch) = got["impl"], got["params"], got["data"]
    ((loss, taps), tap_grads) = got["one"]
    assert sorted(taps) == sorted(tap_names(CFG))  # a dict out of jit comes back with its keys sorted
    assert {n: t.shape for n, t in taps.items()} == tap_shapes(CFG, CFG.block_size)
    assert {n: t.shape[1:] for n, t in got["batch"][0][1].items()} == tap_shapes(CFG, CFG.block_size)
    # The tapped loss against loss_fn: bit for bit op by op (test_where checks the twins so), where
    # adding the zero perturbations is exact; under jit two programs that XLA fuses each its own way,
    # measured 1 ulp apart (3.374715 against 3.374714, 2026-12-06, AMD EPYC, jax 0.10.2): rounding.
    with jax.disable_jit():
        zeros = zeros_for(CFG, CFG.block_size)
        assert np.asarray(impl.tapped_loss(p, one, CFG, zeros)[0]).tobytes() == \
            np.asarray(impl.loss_fn(p, one, CFG)).tobytes()
    assert_level({"loss": loss}, {"loss": jax.jit(lambda p, b: impl.loss_fn(p, b, CFG))(p, one)}, ROUNDING, "loss")
    assert_level({"loss": got["batch"][0][0]}, {"loss": jax.jit(lambda p, b: impl.batch_loss_fn(p, b, CFG))(p, batch)},
                 ROUNDING, "the batch's loss")
    # The logits tap against forward jitted alone: two XLA programs (the tapped one also computes the
    # taps' gradients) fused differently; measured 1.19e-7 apart at most (1 ulp at |logit| 0.5-1): rounding.
    assert_level({"logits": taps["logits"]}, {"logits": jax.jit(lambda p, t: impl.forward(p, t, CFG))(p, one.inputs)},
                 ROUNDING, "the logits tap")
    flat = impl.to_flat(p)
    embed = flat["wte"][one.inputs] + flat["wpe"][: CFG.block_size]
    np.testing.assert_array_equal(taps["embed"], embed)
    np.testing.assert_allclose(taps["l0.attn_weights"].sum(-1), 1.0, rtol=1e-6)  # each row a softmax
    # the gradient with respect to the logits tap is the loss's gradient with respect to the logits
    logits_grad = jax.grad(lambda z: jnp.sum(
        jax.nn.log_softmax(z) * -jax.nn.one_hot(one.targets, CFG.vocab_size), -1) @ one.mask / one.mask.sum())(
        taps["logits"])
    np.testing.assert_allclose(tap_grads["logits"], logits_grad, atol=1e-7)
    assert np.abs(tap_grads["embed"]).sum() > 0


def test_a_perturbed_tap_changes_the_loss(taps_of):
    """The taps' failing twin: a perturbation of one tap does enter the rest of the pass."""
    got = taps_of[PORT]
    z = zeros_for(CFG, CFG.block_size)
    z["l0.mlp_hidden"] = z["l0.mlp_hidden"].at[2, 5].add(1e-3)
    (loss, _), _ = got["fn"](got["params"], got["data"][0], z)
    assert loss != got["one"][0][0]


def test_equinox_taps_equal_pures(taps_of):
    """Values and gradients of every tap, one name and a batch of 8, under jit: bitwise."""
    if taps_of["pure"] is None:
        pytest.skip("pure's tapped_loss arrives with the taps of issue 18 (branch issue-18a)")
    for which in ("one", "batch"):
        chex.assert_trees_all_equal(taps_of["pure"][which], taps_of[PORT][which])


def test_the_taps_comparison_catches_a_wrong_epsilon(taps_of):
    """The comparison's failing twin: the port's taps with RMSNorm epsilon 1e-6 are not pure's."""
    got = taps_of[PORT]
    wrong = dataclasses.replace(CFG, norm_eps=1e-6)
    p = got["impl"].from_flat(got["impl"].to_flat(got["params"]), wrong)
    (_, taps), _ = jax.jit(lambda p, d, z: jax.value_and_grad(
        lambda z: got["impl"].tapped_loss(p, d, wrong, z), has_aux=True)(z))(p, got["data"][0],
                                                                           zeros_for(CFG, CFG.block_size))
    reference = (taps_of["pure"] or got)["one"][0][1]
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(reference["norm_in"], taps["norm_in"])


# ----------------------------------------------------------------------------- the port alone

def test_equinox_port_has_microgpts_parameters_and_no_library_defaults():
    import equinox as eqx

    impl, p = params(PORT)
    assert sum(np.size(w) for w in jax.tree.leaves(p)) == 4192
    assert p.lm_head.bias is None and p.norm_in.weight is None and p.norm_in.bias is None
    assert p.norm_in.eps == CFG.norm_eps and isinstance(p.lm_head, eqx.nn.Linear)
    state = impl.init_state(CFG, key=jax.random.PRNGKey(3))  # its own initialisation: N(0, init_std)
    flat = impl.to_flat(impl.params_of(state))
    assert abs(float(np.std(flat["l0.fc1"])) - CFG.init_std) < 0.01
    back = impl.state_to_flat(impl.state_from_flat(*impl.state_to_flat(state), CFG))
    chex.assert_trees_all_equal(back, impl.state_to_flat(state))


def test_compare_reaches_the_port_only_by_its_path():
    import pathlib

    assert PORT not in impls.NAMES
    for path in pathlib.Path(check.__file__).parent.glob("*.py"):
        assert "examples" not in "\n".join(ln for ln in path.read_text().splitlines() if "import" in ln), path
