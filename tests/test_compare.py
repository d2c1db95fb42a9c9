"""The implementations compute the same thing: every check of the grid (compare/equivalence.py) for
every pair, with jit and without, each with a failing twin proving that the check fails on a real
difference.

The grid's cases come from conftest.py (`case`, `jit_group`): the quick tier by default, the whole
grid with --full. Each implementation's outputs come from compare/programs.py, one compiled program
per group of cases (shape, mode, batch), shared by every pair, seed, scale, nudged weight and name
of this file, and by `compare check` and the lesson in the same process.
"""

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flax_port.model
from common.compiles import count_compiles
from common.config import Config
from common.data import Tokenizer
from compare import convert, equivalence, impls, programs
from compare.equivalence import Case, Group
from compare.tolerances import JIT_VS_EAGER, JIT_VS_EAGER_10X
from compare.verdict import BITWISE, DIFFERENT, ROUNDING, Verdict, assert_level

TOK = Tokenizer(programs.ALPHABET)
LONG = programs.LONG  # longer than every block_size of the grid: truncated
NAMES = impls.available()
MODES = list(equivalence.MODES)
PAIRS = impls.pairs(NAMES)
PURE, FLAX = "pure", "flax_port"
CFG = Group().config()


def impl(name: str):
    return impls.resolve(name)


@pytest.fixture(scope="module")
def runner(grid_tier):
    """name -> its Runner on this run's tier."""
    return lambda name: programs.runner(impl(name), grid_tier)


def pair_id(pair):
    return "~".join(pair)


def inputs(kind: str, name: str, shape: str = "default"):
    """(x, data) of one kind at one group, one name a step: params or state, and the grid's data."""
    group = Group(shape)
    state = programs.state(impl(name), shape)
    x = state if kind in equivalence.STATE_KINDS else impl(name).params_of(state)
    return x, programs.data(kind, group)


# ----------------------------------------------------------------------------- the grid

@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_equal_on_the_grid(case, pair, runner):
    a, b = (runner(name).output(case) for name in pair)
    equivalence.assert_same(case.kind, a, b, equivalence.expected_level(case.kind, case.jit), str(case))


def nudged(name: str, state, shape: str, param: str = "l0.wq", by: float = 1e-4, at=(0, 0)):
    """A training state of implementation `name`, one weight (or the row `at`) moved by `by` (through
    the flat layout), Adam's state kept, in the state's own tree structure (the compiled program's)."""
    it = impl(name)
    flat, opt = it.state_to_flat(state)
    moved = it.state_from_flat(dict(flat, **{param: jnp.asarray(flat[param]).at[at].add(by)}), opt,
                               Group(shape).config())
    return jax.tree.unflatten(jax.tree.structure(state), jax.tree.leaves(moved))


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_the_grid_catches_one_weight_nudged_by_1e_4(jit_group, pair, runner):
    """The same compiled programs, one weight of the second implementation moved: every kind of the
    group that reads the weight catches it (in the logits that is only ~10 ulps: the checks demand
    every bit where the arithmetic is the same). Sampled names are left out: a 1e-4 nudge need not
    change a drawn token. A group that only samples (the quick tier's block32) moves more, as
    test_sample_check_catches_different_weights does: one output row of lm_head by -2."""
    a = runner(pair[0]).grid_outputs(jit_group)
    other = runner(pair[1])
    state = other.state(jit_group.shape)
    kinds = [k for k in a if k != "samples"]
    if kinds:
        b = other.run(jit_group, nudged(pair[1], state, jit_group.shape))
    else:
        kinds = ["samples"]
        b = other.run(jit_group, nudged(pair[1], state, jit_group.shape, "lm_head", by=-2.0, at=0))
    for kind in kinds:
        with pytest.raises(AssertionError, match="expected bitwise equal"):
            equivalence.assert_same(kind, a[kind], b[kind], BITWISE, f"{kind} at {jit_group}")


def test_nudged_helper_really_changes_one_weight():
    for name in NAMES:
        state = programs.state(impl(name), "default")
        a, b = (impl(name).to_flat(impl(name).params_of(s)) for s in (state, nudged(name, state, "default")))
        diffs = {k: int(np.sum(np.asarray(a[k]) != np.asarray(b[k]))) for k in a}
        assert diffs["l0.wq"] == 1 and sum(diffs.values()) == 1, name


# ----------------------------------------------------------------------------- seeds, scales, names

@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@pytest.mark.parametrize("seed, scale, word", [(1, 1.0, "a"), (2, 10.0, LONG), (1, 10.0, "a"), (2, 1.0, LONG)])
def test_equal_at_other_seeds_scales_and_name_lengths(jit_group, seed, scale, word, pair, runner):
    """Every program of the grid, under jit: weights at init scale and at 10x, names of 1 letter and
    longer than block_size, other names, keys and batches; the same compiled program, fed other inputs."""
    out = [runner(name).run(jit_group, runner(name).state(jit_group.shape, seed, scale), word=word, seed=seed)
           for name in pair]
    for kind in out[0]:
        equivalence.assert_same(kind, out[0][kind], out[1][kind], BITWISE, f"{kind} at {jit_group}, seed {seed}, "
                                f"scale {scale}")


# ----------------------------------------------------------------------------- what the programs are

@pytest.mark.parametrize("name", NAMES)
def test_the_grids_program_computes_what_each_function_computes_alone(name, grid_tier):
    """The grid's program traces several functions together; XLA could fuse them otherwise than it
    fuses one alone, the way a user jits it. It does not: each kind's outputs are bitwise those of
    its function jitted on its own. Quick: logits and one update (the jitted train step) at the
    default shape; --full: every kind at every shape."""
    shapes = list(equivalence.SHAPES) if grid_tier == "full" else ["default"]
    kinds = equivalence.KINDS if grid_tier == "full" else ("logits", "update")
    for shape in shapes:
        group = Group(shape)
        run = programs.runner(impl(name), grid_tier)
        together = run.run(group)
        for kind in kinds:
            x, data = inputs(kind, name, shape)
            alone = equivalence.compute(kind, impl(name), x, data, group.config(), jax.jit,
                                        temperature=group.temperature)
            equivalence.assert_same(kind, together[kind], alone, BITWISE, f"{kind} at {shape}, together and alone")


# ----------------------------------------------------------------------------- failing twins (configs, masks)

PORTS = [name for name in NAMES if name != PURE]  # each port against pure


def catches(port: str, kind: str, mode: str, cfg_b: Config | None = None) -> None:
    """Real differences of another kind than a nudged weight, in a port against pure: `kind` must
    come out different, in `mode` (compare/equivalence.py: VARIANTS). `cfg_b`: the port built or
    stepped with another config (NNX builds its norms from it)."""
    x_a, data = inputs(kind, PURE)
    x_b, _ = inputs(kind, port)
    if cfg_b is not None:
        flat, opt = impl(PURE).state_to_flat(programs.state(impl(PURE), "default"))
        x_b = (impl(port).state_from_flat(flat, opt, cfg_b) if kind in equivalence.STATE_KINDS
               else impl(port).from_flat(flat, cfg_b))
    with pytest.raises(AssertionError, match=DIFFERENT):
        equivalence.check_pair(kind, impl(PURE), impl(port), x_a, x_b, data, CFG, cfg_b,
                               variant=equivalence.VARIANTS[mode])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("port", PORTS)
def test_logits_check_catches_a_wrong_rmsnorm_epsilon(port, mode):
    catches(port, "logits", mode, dataclasses.replace(CFG, norm_eps=1e-6))  # flax's own default


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("port", PORTS)
def test_logits_check_catches_a_missing_causal_mask(port, mode):
    T = CFG.block_size
    with pytest.MonkeyPatch.context() as mp:
        no_mask = lambda x: jnp.ones((1, T, T), bool)  # noqa: E731
        mp.setattr(flax_port.model.nn, "make_causal_mask", no_mask)
        if port == "nnx_port":
            import nnx_port.model

            mp.setattr(nnx_port.model.nnx, "make_causal_mask", no_mask)
        catches(port, "logits", mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("port", PORTS)
def test_update_check_catches_a_different_adam_beta(port, mode):
    catches(port, "update", mode, dataclasses.replace(CFG, beta1=0.9))  # optax's default


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("port", PORTS)
def test_update_check_catches_a_different_adam_epsilon(port, mode):
    catches(port, "update", mode, dataclasses.replace(CFG, adam_eps=1.1e-8))


@pytest.mark.parametrize("port", PORTS)
def test_updates_check_catches_a_different_adam_epsilon(port):
    catches(port, "updates", "jit", dataclasses.replace(CFG, adam_eps=1.1e-8))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("port", PORTS)
def test_sample_check_catches_different_weights(port, mode):
    x_a, data = inputs("samples", PURE)
    flat = dict(impl(PURE).to_flat(x_a))
    flat["lm_head"] = flat["lm_head"].at[0].add(-2.0)  # 'a' much less likely
    x_b = impl(port).from_flat(flat, CFG)
    with pytest.raises(AssertionError, match=DIFFERENT):
        equivalence.check_pair("samples", impl(PURE), impl(port), x_a, x_b, data, CFG,
                               variant=equivalence.VARIANTS[mode])


# ----------------------------------------------------------------------------- without an outer jit

@pytest.mark.parametrize("port", PORTS)
def test_one_update_called_without_an_outer_jit_is_within_rounding(port):
    """Neither mode of the grid: train_step called as it is, library jits on (chex's without_jit).
    optax's bias correction is itself jax.jit-wrapped, so its division runs compiled while pure's
    runs as one eager op: parameters 1 ulp of scale apart (compare/tolerances.py, "One Adam update
    called without an outer jit"); the moments and step bitwise. Under jax.disable_jit() (the grid's
    no_jit) the same update is bitwise."""
    a, b = (equivalence.compute("update", impl(name), *inputs("update", name), CFG) for name in (PURE, port))
    verdict = assert_level(a, b, ROUNDING, f"update of {port} without an outer jit")
    assert not verdict.first or verdict.first.name.startswith("params/"), verdict.line()


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

@functools.cache
def jit_and_eager(which: str, scale: float):
    """(params, batch, jitted {kind: outputs}, eager (logits, (loss, grads))) of one implementation,
    seed 1, the 26-letter name: the jit side from the grid's program."""
    run = programs.runner(impl(which))
    state = run.state("default", 1, scale)
    jitted = run.program(Group())(*run.inputs(Group(), state, word=LONG, seed=1))
    params, batch = impl(which).params_of(state), programs.data("grads", Group(), word=LONG)
    eager = (impl(which).forward(params, batch.inputs, CFG), equivalence.raw("grads", impl(which), CFG)(params, batch))
    return params, batch, jitted, eager


@pytest.mark.parametrize("which", [PURE, FLAX])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_jit_and_eager_agree_for_each_implementation(which, scale):
    _, _, jitted, (logits, grads) = jit_and_eager(which, scale)
    tol = JIT_VS_EAGER if scale == 1.0 else JIT_VS_EAGER_10X
    chex.assert_trees_all_close(logits, jitted["logits"], **tol)
    chex.assert_trees_all_close(grads, jitted["grads"], **tol)


@pytest.mark.parametrize("scale, by", [(1.0, 1e-3), (10.0, 1e-2)])
def test_jit_vs_eager_check_catches_a_nudged_weight(scale, by):
    params, batch, _, _ = jit_and_eager(PURE, scale)
    changed = dict(params, wte=params["wte"].at[TOK.bos].add(by))  # BOS starts every name
    eager_logits = impl(PURE).forward(params, batch.inputs, CFG)
    jit_logits = jax.jit(equivalence.raw("logits", impl(PURE), CFG))(changed, batch.inputs)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(eager_logits, jit_logits, **(JIT_VS_EAGER if scale == 1.0 else JIT_VS_EAGER_10X))


# ----------------------------------------------------------------------------- conversion

@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_round_trips_are_bitwise(pair, runner):
    a, b = impl(pair[0]), impl(pair[1])
    run = runner(pair[0])
    stepped = run.program(Group())(*run.inputs(Group()))["update"][0]
    back = convert.state(convert.state(stepped, a, b, CFG), b, a, CFG)
    chex.assert_trees_all_equal(a.state_to_flat(back), a.state_to_flat(stepped))


def test_round_trip_check_catches_a_changed_leaf():
    params, _ = inputs("logits", PURE)
    flat = dict(impl(FLAX).to_flat(impl(FLAX).from_flat(params, CFG)))
    flat["l0.wq"] = flat["l0.wq"].at[0, 0].add(1e-7)
    with pytest.raises(AssertionError):
        chex.assert_trees_all_equal(flat, params)


def test_a_tree_that_does_not_fit_is_refused_naming_each_path():
    from common.errors import UserError

    params, _ = inputs("logits", PURE)
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
    flax_broken = jax.tree.map(lambda x: x, inputs("logits", FLAX)[0])
    flax_broken["l0"]["attn"]["wq"]["bias"] = jnp.zeros(16)
    with pytest.raises(UserError, match="extra l0/attn/wq/bias"):
        convert.flax_to_pure(flax_broken, CFG)


# ----------------------------------------------------------------------------- the compile budget

# The quick tier's budget, in programs the grid compiles per implementation and in the kinds they
# hold (compare/programs.py: one program per group; a kind's cost, a second or so of XLA for a
# train step, grows with what the program holds). A case at a new shape, or a new batch size,
# adds a program; a kind more at a shape the tier has adds to the kinds. Raising these is a
# decision to make the first `uv run pytest` of every clone slower: say so in docs/speed.md.
QUICK_PROGRAMS_PER_IMPL = 7  # the default shape with one name and with 8, and the five other shapes
QUICK_KINDS_PER_IMPL = 14  # 5 at the default, 3 with 8 names, 1 at each other shape and sampling at 2 layers


def within_budget(cases) -> programs.Cost:
    cost = programs.cost(cases)
    assert cost.programs <= QUICK_PROGRAMS_PER_IMPL and cost.kinds <= QUICK_KINDS_PER_IMPL, (
        f"the quick grid compiles {cost.programs} programs holding {cost.kinds} kinds per implementation, over its "
        f"budget of {QUICK_PROGRAMS_PER_IMPL} and {QUICK_KINDS_PER_IMPL} (tests/test_compare.py): move the new cases "
        "behind --full, or raise the budget and say why in docs/speed.md")
    return cost


def test_the_quick_grid_compiles_within_its_budget():
    """What the quick tier asks of the grid, counted from its design, and what the programs compiled
    in this process really cost: one XLA compile each, never a second for the same group."""
    cost = within_budget(equivalence.grid("quick", devices=False))
    assert cost == programs.Cost(QUICK_PROGRAMS_PER_IMPL, QUICK_KINDS_PER_IMPL), cost
    run = programs.Runner(impl(PURE))  # a fresh runner: its programs are compiled (or read back) now
    run.inputs(Group("block8"))  # the state and the names, made before counting
    with count_compiles() as seen:
        run.program(Group("block8"))
        run.program(Group("block8"))
    assert len(seen) == 1


def test_the_budget_catches_a_new_shape_in_the_quick_grid():
    """The budget's failing twin: a new group in the quick grid (batches of 32 names) is a program more
    per implementation; one kind more at a shape it has, a kind more to compile."""
    more = [*equivalence.grid("quick", devices=False), Case("grads", "default", batch=32)]
    with pytest.raises(AssertionError, match="over its budget"):
        within_budget(more)
    with pytest.raises(AssertionError, match="over its budget"):
        within_budget([*equivalence.grid("quick", devices=False), Case("logits", "n_embd32")])
