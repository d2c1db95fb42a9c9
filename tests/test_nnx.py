"""nnx_port/ on its own and against pure/: sizes, exact variable paths, no library default,
causality, the state threaded through jit, checkpoint round trips, the command line, and
bitwise equality with pure under jit (logits, loss and gradients, one update, ten updates,
sampled tokens), each check with a failing twin."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import flax_port
import nnx_port
import pure
from common.config import Config
from common.data import Batch, Tokenizer, encode_name, training_batches
from common.errors import UserError
from common.runner import prompt_tokens
from compare import convert, impls, programs
from compare.equivalence import Group
from conftest import cli, run_module
from nnx_port import checkpoint, model, train

TOK = Tokenizer("abcdefghijklmnopqrstuvwxyz")
CFG = Config(vocab_size=TOK.vocab_size)
PURE, NNX = pure.impl(), nnx_port.impl()


@pytest.fixture(scope="module")
def gpt():
    return model.init_params(CFG, key=jax.random.PRNGKey(0))


def variable_paths(module) -> dict[str, tuple[str, tuple]]:
    """Every nnx.Variable of a module, of any type: 'path/to/it' -> (type name, shape)."""
    return {"/".join(map(str, p)): (type(v).__name__, v.shape) for p, v in nnx.to_flat_state(nnx.state(module))}


# ----------------------------------------------------------------------------- sizes and names

def test_parameter_count_is_4192_for_27_characters(gpt):
    assert sum(x.size for x in jax.tree.leaves(nnx.state(gpt, nnx.Param))) == 4192
    assert sum(x.size for x in jax.tree.leaves(gpt)) == 4192  # and nothing else is in the module


def test_nnx_variable_paths_are_exactly_these(gpt):
    D = ("Param", (16, 16))
    assert variable_paths(gpt) == {
        "wte/embedding": ("Param", (27, 16)), "wpe/embedding": D, "lm_head/embedding": ("Param", (27, 16)),
        "blocks/0/attn/wq/kernel": D, "blocks/0/attn/wk/kernel": D,
        "blocks/0/attn/wv/kernel": D, "blocks/0/attn/wo/kernel": D,
        "blocks/0/mlp/fc1/kernel": ("Param", (16, 64)), "blocks/0/mlp/fc2/kernel": ("Param", (64, 16)),
    }


def library_defaults_in(module) -> list[str]:
    """Variables microgpt does not have: biases, norm scales, anything not a Param table or kernel."""
    return [p for p, (kind, _) in variable_paths(module).items()
            if kind != "Param" or p.rsplit("/", 1)[-1] not in ("embedding", "kernel")]


def test_no_library_default_slipped_into_the_nnx_model(gpt):
    assert library_defaults_in(gpt) == []
    norms = [gpt.norm_in, gpt.blocks[0].norm_attn, gpt.blocks[0].norm_mlp]
    assert all(n.scale is None and n.epsilon == 1e-5 for n in norms)


def test_the_default_check_catches_a_bias_and_a_norm_scale():
    rngs = nnx.Rngs(0)
    assert library_defaults_in(nnx.Linear(4, 3, rngs=rngs)) == ["bias"]  # NNX's default adds a bias
    assert library_defaults_in(nnx.RMSNorm(4, rngs=rngs)) == ["scale"]  # and a learnable scale
    assert nnx.RMSNorm(4, rngs=rngs).epsilon == 1e-6  # and another epsilon


# ----------------------------------------------------------------------------- causality

def causality_violations(gpt) -> list[tuple[int, int]]:
    """(t, s) pairs where the loss at position t has a gradient on the position embedding s > t."""
    full = encode_name("abcdefghijklmnopq", TOK, CFG.block_size)  # fills every position
    grad = jax.jit(lambda g, b: nnx.grad(model.loss_fn)(g, b, CFG))
    found = []
    for t in range(CFG.block_size - 1):
        only_t = Batch(full.inputs, full.targets, (np.arange(CFG.block_size) == t).astype(np.float32))
        wpe = np.asarray(checkpoint.to_flat(grad(gpt, only_t))["wpe"])
        assert np.any(wpe[t] != 0)  # the check looks at live gradients
        found += [(t, s) for s in range(t + 1, CFG.block_size) if np.any(wpe[s] != 0)]
    return found


def test_loss_at_t_has_no_gradient_on_later_positions(gpt):
    assert causality_violations(gpt) == []


def test_causality_check_catches_a_missing_mask(gpt, monkeypatch):
    T = CFG.block_size
    monkeypatch.setattr(model.nnx, "make_causal_mask", lambda x: jnp.ones((1, T, T), bool))
    assert len(causality_violations(gpt)) > 0


# ----------------------------------------------------------------------------- the state

def test_the_state_is_a_pytree_of_arrays_and_a_static_graphdef():
    graphdef, variables = train.init_state(CFG, key=jax.random.PRNGKey(0))
    leaves = jax.tree.leaves((graphdef, variables))
    assert all(isinstance(x, jax.Array) for x in leaves)
    assert sum(x.size for x in leaves) == 3 * 4192 + 3  # weights, two moments, three counts
    assert jax.tree.leaves(graphdef) == []


@pytest.fixture(scope="module")
def small():
    """A small model's state and gradients, computed under jit; the tests below then update it
    eagerly (every op compiles on its own there, so few shapes keep them quick)."""
    cfg = Config(vocab_size=4, n_embd=4, n_head=1, block_size=4)
    state = jax.jit(train.init_state, static_argnums=0)(cfg, key=jax.random.PRNGKey(0))
    batch = Batch(np.array([3, 0, 1, 2]), np.array([0, 1, 2, 3]), np.ones(4, np.float32))
    _, grads = jax.jit(lambda s, b: train.compute_grads(s, b, cfg))(state, batch)
    return cfg, state, grads


def test_an_eager_update_leaves_its_input_state_as_it_was(small):
    cfg, state, grads = small
    before = jax.tree.map(np.array, state[1])
    new = train.apply_grads(state, grads, cfg)  # no jit: the modules really change in place
    chex.assert_trees_all_equal(jax.tree.map(np.array, state[1]), before)
    assert int(new[1][1]["step"][...]) == 1


def test_the_unchanged_state_check_catches_an_in_place_update(small):
    """What apply_grads' `nnx.merge(..., copy=True)` avoids: merged without a copy, the modules
    share the state's Variables and `optimizer.update` changes the caller's state."""
    cfg, state, grads = small
    state = jax.tree.map(jnp.array, state)  # a copy of its own, as the update below changes it
    before = jax.tree.map(np.array, state[1])
    gpt, optimizer = nnx.merge(*state)
    optimizer.update(gpt, grads)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(jax.tree.map(np.array, state[1]), before)


# ----------------------------------------------------------------------------- checkpoint round trips

@pytest.fixture(scope="module")
def stepped():
    """pure's state after 3 updates (step 3, moments not zero), and the same converted to nnx."""
    pure_state = PURE.init_state(CFG, key=jax.random.PRNGKey(0))
    batches = training_batches(["emma", "olivia", "ava"], TOK, CFG.block_size, 3, seed=0)
    pure_state, _ = jax.jit(lambda s, b: PURE.train_steps(s, b, CFG))(pure_state, batches)
    return pure_state, convert.state(pure_state, PURE, NNX, CFG)


def test_round_trips_are_bitwise(stepped):
    pure_state, nnx_state = stepped
    chex.assert_trees_all_equal(NNX.state_to_flat(nnx_state), PURE.state_to_flat(pure_state))
    back = convert.state(nnx_state, NNX, PURE, CFG)
    chex.assert_trees_all_equal(back, pure_state)
    gpt = NNX.params_of(nnx_state)
    chex.assert_trees_all_equal(nnx.state(NNX.from_flat(NNX.to_flat(gpt), CFG)), nnx.state(gpt))
    gd, variables = nnx_state
    assert variables[1]["step"][...].dtype == jnp.uint32 and int(variables[1]["step"][...]) == 3
    assert NNX.state_to_flat(nnx_state)[1]["step"].dtype == jnp.int32


def test_round_trip_check_catches_a_changed_leaf(stepped):
    pure_state, nnx_state = stepped
    flat = NNX.to_flat(NNX.params_of(nnx_state))
    flat["l0.wv"] = flat["l0.wv"].at[3, 4].add(1e-7)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(NNX.to_flat(NNX.from_flat(flat, CFG)), pure_state[0])


def test_flax_and_nnx_states_convert_into_each_other(stepped):
    pure_state, nnx_state = stepped
    flax_state = convert.state(nnx_state, NNX, flax_port.impl(), CFG)
    chex.assert_trees_all_equal(convert.state_flax_to_pure(flax_state, CFG), pure_state)


def test_a_tree_that_does_not_fit_is_refused_naming_each_path(stepped):
    pure_state, nnx_state = stepped
    broken = dict(pure_state[0])
    del broken["l0.wk"]
    broken["l0.extra"] = jnp.zeros(3)
    broken["wpe"] = jnp.zeros((8, 16))
    with pytest.raises(UserError) as err:
        NNX.from_flat(broken, CFG)
    assert "missing l0.wk (expected (16, 16))" in str(err.value)
    assert "extra l0.extra (3,)" in str(err.value)
    assert "wpe has shape (8, 16), expected (16, 16)" in str(err.value)
    with pytest.raises(UserError, match="extra blocks/0/attn/wq/bias"):
        checkpoint.to_flat(with_bias(NNX.params_of(nnx_state)), CFG)


def with_bias(gpt):
    """The module with wq given a bias Param, as nnx.Linear's default would have."""
    gpt.blocks[0].attn.wq.bias = nnx.Param(jnp.zeros(16))
    return gpt


def test_inconsistent_counts_are_refused(stepped):
    _, nnx_state = stepped
    gpt, optimizer = nnx.merge(*nnx_state, copy=True)
    optimizer.step[...] = jnp.uint32(7)
    with pytest.raises(UserError, match="step, adam count, schedule count = \\[7, 3, 3\\]"):
        checkpoint.state_to_flat(nnx.split((gpt, optimizer)))


# ----------------------------------------------------------------------------- the command line

def samples(stdout):
    return [ln.split(": ", 1)[1] for ln in stdout.splitlines() if ln.startswith("sample ")]


def test_python_m_nnx_port_trains_samples_and_saves(tmp_path):
    """The real entry point, as a user runs it. (Checkpoints loading across all three
    implementations: tests/test_checkpoint.py.)"""
    path = str(tmp_path / "nnx.npz")
    r = run_module("nnx_port", "--steps", "50", "--log-every", "25", "--save", path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("nnx_port: ") and "vocab 27, 4192 parameters, seed 42" in lines[0]
    assert [ln[:16] for ln in lines[1:4]] == ["step    1 /   50", "step   25 /   50", "step   50 /   50"]
    assert len(samples(r.stdout)) == 20 and f"saved {path}" in lines
    assert lines[-1].startswith("nnx_port [jit]: compile ")
    with np.load(path) as z:
        assert set(z.files) == {"wte", "wpe", "lm_head", "l0.wq", "l0.wk", "l0.wv", "l0.wo", "l0.fc1", "l0.fc2",
                                "__config__", "__chars__", "__microgpt__"}
    code, out, err = cli("pure", "sample", "--load", path)
    assert code == 0 and len(samples(out)) == 20, err


# ----------------------------------------------------------------------------- bitwise equal to pure, under jit

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"]
BATCH = encode_name("emma", TOK, CFG.block_size)
PROMPT = prompt_tokens(TOK, "", CFG)
FEED = {"logits": BATCH.inputs, "grads": BATCH, "update": BATCH,  # this file's names, prompt and key
        "updates": training_batches(NAMES, TOK, CFG.block_size, 10, seed=0),
        "samples": (*PROMPT, jax.random.PRNGKey(7))}


def outputs(name: str, state) -> dict:
    """{kind: flat outputs} of every kind at the default shape, under jit: the grid's compiled program
    (compare/programs.py, shared with tests/test_compare.py), fed this file's names."""
    run = programs.runner(impls.resolve(name))
    return run.run(Group(), state, feed=FEED)


@pytest.fixture(scope="module")
def twins():
    """One initialisation, as pure's state and as nnx's, plus nnx's with one weight nudged by 1e-4
    (the same tree structure, so the compiled program is reused)."""
    pure_state = programs.state(impls.resolve("pure"), "default")
    nnx_state = programs.state(impls.resolve("nnx_port"), "default")
    flat_params, flat_opt = NNX.state_to_flat(nnx_state)
    flat_params["l0.wq"] = flat_params["l0.wq"].at[0, 0].add(1e-4)
    nudged = (nnx_state[0], NNX.state_from_flat(flat_params, flat_opt, CFG)[1])
    return pure_state, nnx_state, nudged


def equal(kind: str):
    """The check of one kind: pure's outputs and nnx_port's, bitwise."""
    def check(pure_state, nnx_state):
        chex.assert_trees_all_equal(outputs("pure", pure_state)[kind], outputs("nnx_port", nnx_state)[kind])

    check.__name__ = f"assert_{kind}_equal"
    return check


CHECKS = [equal(kind) for kind in ("logits", "grads", "update", "updates", "samples")]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_bitwise_equal_to_pure_under_jit(twins, check):
    pure_state, nnx_state, _ = twins
    check(pure_state, nnx_state)


@pytest.mark.parametrize("check", CHECKS[:4], ids=lambda c: c.__name__)
def test_the_check_catches_one_weight_nudged_by_1e_4(twins, check):
    pure_state, _, nudged = twins
    with pytest.raises(AssertionError):
        check(pure_state, nudged)


def test_the_sample_check_catches_other_weights(twins):
    pure_state, _, _ = twins
    other = convert.state(PURE.init_state(CFG, key=jax.random.PRNGKey(1)), PURE, NNX, CFG)
    other = jax.tree.unflatten(jax.tree.structure(twins[1]), jax.tree.leaves(other))  # the program's tree structure
    with pytest.raises(AssertionError):
        CHECKS[-1](pure_state, other)
