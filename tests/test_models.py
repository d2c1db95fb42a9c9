"""Both implementations on their own: sizes, names, causality, padding, compiles, Adam, determinism."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

import flax_port.model
import pure.model
from common.compiles import count_compiles, cpu_fingerprint
from common.config import Config
from common.data import Batch, encode_name, training_batches
from common.runner import chunk_size, run_training, sample_names
from compare import impls
from compare.tolerances import ADAM_VS_FLOAT64, LEARNING_RATE, PADDED_VS_UNPADDED
from conftest import first_quick

MODELS = {"pure": pure.model, "flax_port": flax_port.model}


@pytest.fixture(params=sorted(MODELS))
def model(request):
    return MODELS[request.param]


def flat(params):
    """Either implementation's tree as {seed name: array} (flax's via compare/'s one mapping)."""
    from compare.convert import flax_to_pure

    return dict(params) if "wte" in params and not isinstance(params["wte"], dict) else flax_to_pure(params)


# ----------------------------------------------------------------------------- sizes and names

def test_parameter_count_is_4192_for_27_characters(model, cfg):
    params = model.init_params(cfg, key=jax.random.PRNGKey(0))
    assert sum(x.size for x in jax.tree.leaves(params)) == 4192


def test_logits_have_one_row_per_position(model, cfg):
    params = model.init_params(cfg, key=jax.random.PRNGKey(0))
    tokens = jnp.zeros(cfg.block_size, jnp.int32)
    assert model.forward(params, tokens, cfg).shape == (cfg.block_size, cfg.vocab_size)


def test_init_is_normal_with_std_0_08(model):
    # a statistical bound, not a tolerance: 4k..262k draws per tensor put the sample std within
    # 0.003 of 0.08 and the mean within 0.003 of 0; 0.01 is far outside chance
    cfg = Config(n_embd=64, n_head=4)
    params = flat(model.init_params(cfg, key=jax.random.PRNGKey(0)))
    for name, w in params.items():
        assert abs(float(jnp.std(w)) - 0.08) < 0.01, name
        assert abs(float(jnp.mean(w))) < 0.01, name


def test_flax_variable_paths_are_exactly_these(cfg):
    params = flax_port.model.init_params(cfg, key=jax.random.PRNGKey(0))
    paths = {"/".join(p): v.shape for p, v in flatten_dict(params).items()}
    assert paths == {
        "wte/embedding": (27, 16), "wpe/embedding": (16, 16), "lm_head/embedding": (27, 16),
        "l0/attn/wq/kernel": (16, 16), "l0/attn/wk/kernel": (16, 16),
        "l0/attn/wv/kernel": (16, 16), "l0/attn/wo/kernel": (16, 16),
        "l0/mlp/fc1/kernel": (16, 64), "l0/mlp/fc2/kernel": (64, 16),
    }


def library_defaults_in(params) -> list[str]:
    """Paths of parameters microgpt does not have: biases, norm scales, auto-generated names."""
    bad = []
    for path in flatten_dict(params):
        if path[-1] not in ("embedding", "kernel") or any("_" in p and p[-1].isdigit() for p in path):
            bad.append("/".join(path))
    return bad


def test_no_library_default_slipped_into_the_flax_model(cfg):
    assert library_defaults_in(flax_port.model.init_params(cfg, key=jax.random.PRNGKey(0))) == []


def test_the_default_check_catches_a_bias_a_norm_scale_and_an_auto_name():
    import flax.linen as nn

    x = jnp.ones((2, 4))
    dense = nn.Dense(3).init(jax.random.PRNGKey(0), x)["params"]  # flax's default adds a bias
    norm = nn.RMSNorm().init(jax.random.PRNGKey(0), x)["params"]  # and a learnable scale

    class Auto(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3, use_bias=False)(x)  # no name=: flax calls it Dense_0

    auto = Auto().init(jax.random.PRNGKey(0), x)["params"]
    assert library_defaults_in(dense) == ["bias"]
    assert library_defaults_in(norm) == ["scale"]
    assert library_defaults_in(auto) == ["Dense_0/kernel"]


# ----------------------------------------------------------------------------- causality

def causality_violations(model, cfg, tok) -> list[tuple[int, int]]:
    """(t, s) pairs where the loss at position t has a gradient on the position embedding s > t."""
    params = model.init_params(cfg, key=jax.random.PRNGKey(1))
    full = encode_name("abcdefghijklmnopq", tok, cfg.block_size)  # fills every position
    found = []
    for t in range(cfg.block_size - 1):
        only_t = Batch(full.inputs, full.targets, (np.arange(cfg.block_size) == t).astype(np.float32))
        grads = flat(jax.grad(model.loss_fn)(params, only_t, cfg))
        wpe = np.asarray(grads["wpe"])
        assert np.any(wpe[t] != 0)  # the check looks at live gradients
        found += [(t, s) for s in range(t + 1, cfg.block_size) if np.any(wpe[s] != 0)]
    return found


def test_loss_at_t_has_no_gradient_on_later_positions(model, cfg, tok):
    assert causality_violations(model, cfg, tok) == []


def test_causality_check_catches_a_missing_mask(model, cfg, tok, monkeypatch):
    T = cfg.block_size
    monkeypatch.setattr(pure.model.jnp, "tril", lambda m: jnp.ones_like(m))
    monkeypatch.setattr(flax_port.model.nn, "make_causal_mask", lambda x: jnp.ones((1, T, T), bool))
    assert len(causality_violations(model, cfg, tok)) > 0


# ----------------------------------------------------------------------------- padding

@pytest.mark.parametrize("name", ["a", "emma", "abcdefghijklmnopqrstuvwxyz"])
def test_padded_and_unpadded_loss_and_gradients_agree(model, cfg, tok, name):
    assert_padded_matches_unpadded(model, cfg, encode_name(name, tok, cfg.block_size))


def assert_padded_matches_unpadded(model, cfg, padded: Batch, n: int | None = None):
    params = model.init_params(cfg, key=jax.random.PRNGKey(2))
    n = n or int(padded.mask.sum())
    unpadded = Batch(padded.inputs[:n], padded.targets[:n], np.ones(n, np.float32))
    loss_p, grads_p = jax.value_and_grad(model.loss_fn)(params, padded, cfg)
    loss_u, grads_u = jax.value_and_grad(model.loss_fn)(params, unpadded, cfg)
    chex.assert_trees_all_close(loss_p, loss_u, **PADDED_VS_UNPADDED)
    chex.assert_trees_all_close(grads_p, grads_u, **PADDED_VS_UNPADDED)


def test_padding_check_catches_a_mask_that_lets_one_pad_position_in(model, cfg, tok):
    padded = encode_name("emma", tok, cfg.block_size)
    leaky = Batch(padded.inputs, padded.targets, padded.mask.copy())
    leaky.mask[5] = 1.0  # the first padding position now counts in the loss
    with pytest.raises(AssertionError):
        assert_padded_matches_unpadded(model, cfg, leaky, n=5)


# ----------------------------------------------------------------------------- compiles

def test_a_whole_run_compiles_the_train_step_once(impl, tok):
    """Names of every length 1..20 (some longer than block_size) and 60 steps: one compile.

    The runner calls an executable compiled ahead of time, which would raise on a new shape rather
    than recompile; so this also proves that padding gives every chunk the same shapes, and the
    count catches any other compilation the loop triggers (an eager op on the state, say)."""
    cfg = Config(vocab_size=tok.vocab_size, num_steps=60)
    docs = ["abcdefghijklmnopqrstuvwxyz"[:n] for n in range(1, 21)]
    batches = training_batches(docs, tok, cfg.block_size, cfg.num_steps, seed=0)
    state = impl.init_state(cfg, key=jax.random.PRNGKey(0))
    _, losses, timings = run_training(impl, state, cfg, batches, log_every=7)
    assert chunk_size(60, 7) == 6 and losses.shape == (60,)
    # a signal waits for the call in progress: however rarely a run logs, a call is at most 1000 names
    assert chunk_size(300_000, 300_000) == 1000 and chunk_size(1000, 1000, batch_size=32) == 25
    assert timings.compiles == 1


def test_the_compile_counter_sees_a_recompile():
    f = jax.jit(lambda x: x * 2)
    three, four = np.ones(3, np.float32), np.ones(4, np.float32)  # numpy: making them compiles nothing
    with count_compiles() as seen:
        f(three)
        f(four)  # a new shape: compiled again
        f(four)
    assert len(seen) == 2


def test_a_program_read_from_the_persistent_cache_counts_as_one_compile():
    """The session shares a persistent compilation cache (conftest.py), so a program another test or
    process compiled is read back, not compiled: still one executable obtained, counted once."""
    f, five = jax.jit(lambda x: x * 3.0 + 1.0), np.ones(5, np.float32)
    reads = []
    listener = lambda event, **kwargs: reads.append(event)  # noqa: E731
    with count_compiles() as first:
        f(five)
    jax.clear_caches()  # forget the executable in memory; the persistent cache still holds it
    jax.monitoring.register_event_listener(listener)
    try:
        with count_compiles() as again:
            f(five)
            f(five)
    finally:
        jax.monitoring.unregister_event_listener(listener)
    assert len(first) == 1 and len(again) == 1
    assert "/jax/compilation_cache/cache_hits" in reads  # read back, not compiled


def test_the_tests_compile_through_pytests_cache_folder(request):
    """What a second run reads back (docs/speed.md): the pytest processes' programs and those of the
    commands every test file runs, in one folder under .pytest_cache/d/microgpt-compiles/cpu-<this
    CPU>/commands/shared."""
    import os
    import secrets
    import tempfile

    import conftest

    folder = os.environ[conftest.SHARED]
    if getattr(request.config, "cache", None) is not None and not folder.startswith(tempfile.gettempdir()):
        # (a temporary folder: -p no:cacheprovider, or another run held this checkout's)
        assert folder == str(request.config.cache.mkdir("microgpt-compiles") / f"cpu-{cpu_fingerprint()}")

    unique = np.float32(secrets.randbits(24))  # a constant in the program: no earlier run compiled it

    def probe_of_the_tests_cache(x):  # JAX names the entry after the function (the other worker writes too)
        return x * unique + 1

    def probes():
        return {f for f in os.listdir(conftest.programs_folder())
                if f.startswith("jit_probe_of_the_tests_cache-")}

    before = probes()
    jax.jit(probe_of_the_tests_cache)(np.zeros(3, np.float32))
    assert len(probes() - before) == 1
    assert os.environ["MICROGPT_CACHE"] == os.path.join(folder, "commands", "shared")


def test_a_stopped_runs_entries_go_and_two_runs_never_share_a_folder(tmp_path):
    """A run stopped midway may have left an entry half-written (JAX writes in place and never
    rewrites one): the next run removes what the stopped one wrote, and keeps the rest. While a run
    holds the folder, another gets none (and compiles in a temporary one)."""
    import os
    import types

    import conftest

    first, second = types.SimpleNamespace(), types.SimpleNamespace()
    assert conftest.hold(first, tmp_path)
    os.utime(tmp_path / conftest.UNFINISHED, (100, 100))  # the run started at time 100 and was stopped
    (tmp_path / "in-process").mkdir()
    for name, t in [("before", 50), ("during", 150)]:
        (tmp_path / "in-process" / name).write_bytes(b"entry")
        os.utime(tmp_path / "in-process" / name, (t, t))
    assert not conftest.hold(second, tmp_path)  # the stopped run's process still holds it
    first.compiles_lock.close()  # its process ended
    assert conftest.hold(second, tmp_path)
    assert sorted(os.listdir(tmp_path / "in-process")) == ["before"]
    second.compiles_lock.close()


def test_the_tests_caches_keep_the_entries_used_last(tmp_path, monkeypatch):
    import os

    import conftest

    monkeypatch.setattr(conftest, "KEEP_MB", 3)
    monkeypatch.setattr(conftest, "PRUNE_TO_MB", 2)
    (tmp_path / "in-process").mkdir()
    for i in range(4):  # 1 MiB each, used at times 10, 20, 30, 40 (entry 0 the least recently)
        entry = tmp_path / "in-process" / f"e{i}"
        entry.write_bytes(bytes(1 << 20))
        os.utime(entry, (10 * (i + 1), 10 * (i + 1)))
    conftest.prune(tmp_path)
    assert sorted(p.name for p in (tmp_path / "in-process").iterdir()) == ["e2", "e3"]
    conftest.prune(tmp_path)  # under the bound: nothing goes
    assert len(list((tmp_path / "in-process").iterdir())) == 2


# ----------------------------------------------------------------------------- Adam

def adam_by_the_formula(p, g, m, v, step, cfg):
    """The seed's update for one tensor, written out in float64 numpy."""
    lr_t = cfg.learning_rate * (1 - step / cfg.num_steps)
    m = cfg.beta1 * m + (1 - cfg.beta1) * g
    v = cfg.beta2 * v + (1 - cfg.beta2) * g**2
    m_hat = m / (1 - cfg.beta1 ** (step + 1))
    v_hat = v / (1 - cfg.beta2 ** (step + 1))
    return p - lr_t * m_hat / (v_hat**0.5 + cfg.adam_eps), m, v


def adam_against_the_formula(cfg, formula_cfg) -> None:
    """Three steps of pure's Adam (with `cfg`) against the formula in float64 (with `formula_cfg`)."""
    from pure import optim

    params = pure.model.init_params(cfg, key=jax.random.PRNGKey(0))
    state = optim.adam_init(params)
    ref = {k: (np.float64(v), np.zeros(v.shape), np.zeros(v.shape)) for k, v in params.items()}
    for step in range(3):
        grads = pure.model.init_params(cfg, key=jax.random.PRNGKey(10 + step))
        params, state = optim.adam_update(params, grads, state, cfg)
        ref = {k: adam_by_the_formula(ref[k][0], np.float64(grads[k]), *ref[k][1:], step, formula_cfg) for k in ref}
        assert int(state["step"]) == step + 1
        for k in params:
            np.testing.assert_allclose(params[k], ref[k][0], **ADAM_VS_FLOAT64["params"])
            np.testing.assert_allclose(state["m"][k], ref[k][1], **ADAM_VS_FLOAT64["m"])
            np.testing.assert_allclose(state["v"][k], ref[k][2], **ADAM_VS_FLOAT64["v"])


def test_pure_adam_matches_the_formula_written_out(cfg):
    adam_against_the_formula(cfg, cfg)


@pytest.mark.parametrize("change", [dict(adam_eps=1e-6), dict(beta2=0.999), dict(learning_rate=0.0101)])
def test_the_formula_check_catches_a_wrong_hyperparameter(cfg, change):
    import dataclasses

    with pytest.raises(AssertionError):
        adam_against_the_formula(cfg, dataclasses.replace(cfg, **change))


def test_learning_rate_decays_linearly_to_zero(cfg):
    from pure import optim

    lrs = [float(optim.learning_rate(jnp.int32(s), cfg)) for s in (0, 500, 999)]
    assert lrs == pytest.approx([0.01, 0.005, 0.00001], **LEARNING_RATE)


# ----------------------------------------------------------------------------- whole runs

def short_run(impl, docs, tok, seed, steps=500):  # 500 as below: the programs are the same
    cfg = Config(vocab_size=tok.vocab_size, num_steps=steps)
    init_key, sample_key = jax.random.split(jax.random.PRNGKey(seed))
    batches = training_batches(docs, tok, cfg.block_size, cfg.num_steps, seed)
    state, losses, _ = run_training(impl, impl.init_state(cfg, key=init_key), cfg, batches)
    names, _, _ = sample_names(impl, impl.params_of(state), tok, cfg, key=sample_key, num_samples=20, temperature=0.5)
    return losses, names, impl.to_flat(impl.params_of(state))


@pytest.mark.parametrize("name", first_quick(["pure", "flax_port", "nnx_port"],
                                             "the twins' runs are bitwise pure's: tests/test_compare_cli.py"))
def test_same_seed_same_run_bitwise_and_another_seed_differs(name, docs, tok):
    impl = impls.get(name)
    losses_a, names_a, params_a = short_run(impl, docs, tok, seed=3)
    losses_b, names_b, params_b = short_run(impl, docs, tok, seed=3)
    losses_c, names_c, _ = short_run(impl, docs, tok, seed=4)
    np.testing.assert_array_equal(losses_a, losses_b)
    chex.assert_trees_all_equal(params_a, params_b)
    assert names_a == names_b
    assert not np.array_equal(losses_a, losses_c) and names_a != names_c


def test_loss_falls_on_the_default_names(impl, docs, tok):
    losses, names, _ = short_run(impl, docs, tok, seed=0, steps=500)
    assert losses[:20].mean() > 3.0  # starts near ln(27) = 3.30
    assert losses[-100:].mean() < 2.6  # measured: about 2.4 after 500 steps
    assert len(names) == 20 and all(set(n) <= set(tok.chars) for n in names)
