"""`python -m compare --against float64|eager`: the float32 side is today's run bit for bit, the
report names the first step past each threshold, and the cause analysis finds a ReLU unit put on
its kink on purpose (and says nothing when there is none)."""

import contextlib
import io
import re

import jax
import numpy as np
import pytest

from common import outputs
from common.config import Config
from common.data import Tokenizer, encode_name
from compare import against
from compare.tolerances import NEAR_ZERO_SECOND_MOMENT, SPLIT_THRESHOLDS
from conftest import assert_user_error, run_module

STEPS = 30
F32, F64 = against.sides_for("float64", jit=True)


def run_command(*argv):
    """`compare --against ...` in-process: (outcome, printed lines)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        outcome = against.run(against.parser().parse_args(list(argv)))
    return outcome, out.getvalue().splitlines()


@pytest.fixture(scope="module")
def float64_run(tmp_path_factory):
    png = tmp_path_factory.mktemp("plot") / "apart.png"
    outcome, lines = run_command("--against", "float64", "--steps", str(STEPS), "--log-every", "10",
                                 "--plot", str(png))
    return outcome, lines, png


def test_the_float32_side_is_the_trainers_run_bit_for_bit(float64_run, tmp_path):
    """The float64 side ran in this process too (x64 on, inside its context): the float32 side still
    ends on the very weights `python -m pure` saves in a fresh process, where x64 was never on."""
    from common import checkpoint

    outcome, _, _ = float64_run
    target = tmp_path / "pure.npz"
    r = run_module("pure", "--steps", str(STEPS), "--num-samples", "1", "--save", str(target))
    assert r.returncode == 0, r.stderr
    saved, _, _ = checkpoint.load(str(target))
    float32, float64 = outcome.final_flat
    assert all(float32[n].dtype == np.float32 and float64[n].dtype == np.float64 for n in saved)
    for n in saved:
        np.testing.assert_array_equal(float32[n], saved[n], err_msg=n)
    # the failing twin: the float64 run, rounded to float32, is not that run
    assert any(not np.array_equal(float64[n].astype(np.float32), saved[n]) for n in saved)


def test_the_report_has_a_row_every_log_every_steps_and_a_line_per_threshold(float64_run):
    outcome, lines, png = float64_run
    rows = [ln for ln in lines if re.match(r"step +\d+ / ", ln)]
    assert [ln[:16] for ln in rows] == [f"step {s:4d} /   30" for s in (1, 10, 20, 30)]
    assert all(ln.count("|") == 3 and ln.endswith("])") for ln in rows)
    assert "max |w| of that parameter in the float64 run" in lines[1]
    assert len(outcome.difference) == STEPS and len(outcome.losses[0]) == len(outcome.losses[1]) == STEPS
    for t in SPLIT_THRESHOLDS:
        past = [ln for ln in lines if ln.startswith("past ") and f"{t:g}" in ln.split(" of scale")[0]]
        assert len(past) == 1, (t, lines)
    assert sum(ln.startswith(("split: ", "no split within 30 steps")) for ln in lines) == 1
    assert lines[-2] == f"plot written to {png}" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_crossing_is_the_first_step_past_its_threshold(float64_run):
    outcome, lines, _ = float64_run
    diff = outcome.difference
    for t in SPLIT_THRESHOLDS:
        over = np.nonzero(diff > t)[0]
        crossing = [c for c in outcome.crossings if c.threshold == t]
        if len(over) == 0:
            assert not crossing and f"past {t:g} of scale: never within 30 steps" in lines
        else:
            assert crossing[0].step == over[0] + 1 and crossing[0].where == outcome.where[over[0]]
            assert crossing[0].causes and crossing[0].causes[0].startswith("ReLU: ")


def test_the_difference_is_relative_to_the_largest_weight_of_the_reference_run():
    a = {"w": np.array([[[1.0, 2.0], [3.0, -4.0]]], np.float32), "u": np.array([[0.5, 0.5]], np.float32)}
    b = {"w": np.array([[[1.0, 2.0], [3.0, -4.1]]]), "u": np.array([[0.5, 0.25]])}
    rel, names, index = against.step_differences(a, b)
    assert names == ["u"] and index[0] == 1 and rel[0] == pytest.approx(0.25 / 0.5)
    b["u"] = a["u"].astype(np.float64)
    rel, names, index = against.step_differences(a, b)
    assert names == ["w"] and against.element("w", (2, 2), index[0]) == "w[1, 1]"
    assert rel[0] == pytest.approx(0.1 / 4.1, rel=1e-6)


# ----------------------------------------------------------------------------- a unit put on its kink

@pytest.fixture(scope="module")
def on_the_kink():
    """Weights whose l0.fc1 unit U sits on its kink at position P of the name: the unit's column
    holds h[j] at i and -h[i] at j (h: float32's input to fc1 at P), so the two products cancel and
    float32 leaves at most the rounding of one product (FMA); float64, whose h differs in the last
    bits, lands on the other side of 0. Every other real position keeps the unit well below 0 in
    both runs, so the two runs treat it differently there and only there."""
    from common.data import default_names
    from pure import model

    tok = Tokenizer.from_names(default_names())
    cfg = Config(vocab_size=tok.vocab_size, num_steps=2)
    batch = encode_name("ava", tok, cfg.block_size)
    params = {n: np.asarray(w) for n, w in model.init_params(cfg, key=jax.random.PRNGKey(7)).items()}
    D, P, U = cfg.n_embd, 2, 37

    def pre(fc1):
        flat = dict(params, **{"l0.fc1": fc1})
        return (against.preactivations(F32, flat, batch.inputs, cfg)[0],
                against.preactivations(F64, {n: w.astype(np.float64) for n, w in flat.items()}, batch.inputs, cfg)[0])

    h32 = pre(np.eye(D, 4 * D, dtype=np.float32))[0][:, :D]  # fc1's inputs come out as they are
    pairs = [(i, j) for i in range(D) for j in range(i + 1, D)]
    columns = np.zeros((len(pairs), D), np.float32)
    for c, (i, j) in enumerate(pairs):
        columns[c, i], columns[c, j] = h32[P, j], -h32[P, i]
    tried = [pre(np.pad(columns[k:k + 4 * D].T, ((0, 0), (0, 4 * D - len(columns[k:k + 4 * D])))))
             for k in range(0, len(pairs), 4 * D)]
    pre32 = np.concatenate([t[0] for t in tried], axis=1)  # (T, candidates)
    pre64 = np.concatenate([t[1] for t in tried], axis=1)
    others = [p for p in range(cfg.block_size) if batch.mask[p] and p != P]
    for c in range(len(pairs)):
        sign = 1 if pre64[P, c] > 0 else -1
        if sign * pre32[P, c] <= 0 < sign * pre64[P, c] and all(sign * pre32[p, c] < -1e-3 for p in others):
            fc1 = params["l0.fc1"].copy()
            fc1[:, U] = sign * columns[c]
            i, j = pairs[c]
            products = float(abs(h32[P, i] * h32[P, j]))  # the two products that cancel, each of this size
            return cfg, batch, dict(params, **{"l0.fc1": fc1}), P, U, products
    raise AssertionError("no pair of inputs puts the unit on its kink here")


def test_the_cause_analysis_names_the_unit_on_its_kink(on_the_kink):
    cfg, batch, params, P, U, products = on_the_kink
    flat64 = {n: w.astype(np.float64) for n, w in params.items()}
    pre32 = against.preactivations(F32, params, batch.inputs, cfg)
    pre64 = against.preactivations(F64, flat64, batch.inputs, cfg)
    # On the kink: the two runs put the unit on opposite sides of 0, and float32's pre-activation is
    # what is left of two products that cancel, the rounding of one: at most half an ulp of their
    # size in theory, 4 allowed. Which pair the fixture finds, and the value, are the CPU's: measured
    # 2026-12-06 on an AMD EPYC, -4.4e-10 natively and under AVX2 (products 0.0084, ulp 9.3e-10),
    # -1.7e-9 under SSE4_2 and -3.4e-9 on jax 0.10.2 (products 0.106, ulp 7.5e-9); -3.2e-8 on an
    # Intel Xeon (issue 26). Never a constant.
    assert pre32[0, P, U] <= 0 < pre64[0, P, U]
    assert abs(pre32[0, P, U]) <= 4 * np.spacing(np.float32(products)), (pre32[0, P, U], products)
    lines, found = against.relu_flips(pre32, pre64, batch.mask, (F32, F64))
    assert found == [f"l0.fc1 unit {U} on its kink at position {P}"]
    assert lines[0].startswith(f"ReLU: l0.fc1 unit {U} at position {P} is on its kink: pre-activation ")
    # the failing twin: the unit's column set to 0, so its pre-activation is exactly 0 in both runs:
    # on the kink, but on the same side of it in both
    params = dict(params, **{"l0.fc1": params["l0.fc1"].copy()})
    params["l0.fc1"][:, U] = 0
    pre32 = against.preactivations(F32, params, batch.inputs, cfg)
    pre64 = against.preactivations(F64, {n: w.astype(np.float64) for n, w in params.items()}, batch.inputs, cfg)
    lines, found = against.relu_flips(pre32, pre64, batch.mask, (F32, F64))
    assert found == [] and lines[0].startswith("ReLU: no unit has opposite signs in the two runs")


def test_a_run_from_the_kink_parts_at_step_1_and_the_report_says_why(on_the_kink):
    """One step from those weights: float64 passes a gradient through the unit and float32 does not,
    and Adam makes that a full-size step of the unit's weights."""
    from pure import optim

    cfg, batch, params, P, U, _ = on_the_kink
    batches = type(batch)(*(np.stack([col, col]) for col in batch))
    state = ({n: jax.numpy.asarray(w) for n, w in params.items()}, optim.adam_init(params))
    outcome = against.run_lockstep("pure", cfg, batches, state, (F32, F64), log_every=1)
    first = outcome.crossings[0]
    assert first.step == 1 and [c.threshold for c in outcome.crossings if c.step == 1] == list(SPLIT_THRESHOLDS)
    assert first.found[0] == f"l0.fc1 unit {U} on its kink at position {P}"
    # float32 passed no gradient to the unit's column, float64 did, and Adam stepped it by about lr
    float32, float64 = outcome.final_flat
    assert np.abs(float32["l0.fc1"][:, U] - float64["l0.fc1"][:, U]).max() > cfg.learning_rate / 2
    summary = against.summary_lines(outcome, (F32, F64), cfg.num_steps)
    assert f"split: the float32 and float64 runs part at step 1 ({first.where}" in summary[-2]
    assert f"last cause seen before: step 1, l0.fc1 unit {U} on its kink at position {P}" in summary[-2]


def test_adam_entries_with_a_second_moment_near_zero_are_named():
    v = {"w": np.full((4, 4), 1e-4), "u": np.full(3, 1e-4)}
    v["w"][2, 3] = (NEAR_ZERO_SECOND_MOMENT / 10) ** 2 * 1e-4  # sqrt(v) 1/10 of the limit below the median
    flat_a = {"w": np.zeros((4, 4)), "u": np.ones(3)}
    flat_b = {"w": np.zeros((4, 4)), "u": np.ones(3)}
    flat_b["w"][2, 3] = 0.5
    lines, found = against.near_zero_moments(v, v, flat_a, flat_b, "w", 11, (F32, F64))
    assert found == ["Adam's second moment near zero at w[2, 3]"]
    assert lines[-1].startswith("Adam: 1 entries have sqrt(v) below") and "differs most is w[2, 3]" in lines[-1]
    # the failing twin: the same entry at the median's size
    v["w"][2, 3] = 1e-4
    lines, found = against.near_zero_moments(v, v, flat_a, flat_b, "w", 11, (F32, F64))
    assert found == [] and "not near zero" in lines[0]


# ----------------------------------------------------------------------------- eager, and bad input

def test_jit_against_eager_reports_the_same_way(tmp_path):
    png = tmp_path / "eager.pdf"  # the format follows the extension
    outcome, lines = run_command("--against", "eager", "--steps", "3", "--plot", str(png))
    assert lines[0].startswith("compare --against eager: pure, ") and "jit and eager runs" in lines[0]
    assert [ln[:16] for ln in lines if re.match(r"step +\d+ / ", ln)] == ["step    1 /    3", "step    3 /    3"]
    assert len(outcome.difference) == 3 and png.read_bytes()[:5] == b"%PDF-" and outputs.is_plot(str(png))
    assert all(w.dtype == np.float32 for side in outcome.final_flat for w in side.values())


@pytest.mark.parametrize("args, message", [
    (["--against", "float64", "--impl", "jax"], "jax has no impl() function"),  # a module that is no port
    (["--against", "eager", "--no-jit"], "--no-jit with --against eager"),
    (["--against", "float64", "--save", "w.npz"], "unrecognized arguments: --save w.npz"),
    (["--against", "float64", "--plot", "/nonexistent-dir/x.png"], "does not exist"),
    # flags the command would ignore are refused, and --help does not show them: it samples nothing,
    # keeps neither run and trains on one device
    (["--against", "float64", "--num-samples", "3"], "unrecognized arguments: --num-samples 3"),
    (["--against", "float64", "--temperature", "1"], "unrecognized arguments: --temperature 1"),
    (["--against", "float64", "--devices", "2"], "unrecognized arguments: --devices 2"),
    (["--against", "float64", "--plot", "apart.jpg"], "end the name in .png, .svg or .pdf"),
])
def test_bad_input_is_one_line_exit_2(args, message, capsys):
    from common.cli import run_cli

    try:
        code = run_cli(against.main, args)
    except SystemExit as exit_:  # argparse's own errors exit from the parser
        code = exit_.code
    assert_user_error((code, "", capsys.readouterr().err), message)


def test_help_shows_only_the_flags_the_command_takes(capsys):
    with pytest.raises(SystemExit):
        against.main(["--help"])
    text = capsys.readouterr().out
    assert "--against" in text and "--plot" in text
    assert not any(flag in text for flag in ("--save", "--devices", "--num-samples", "--temperature")), text


def test_an_unknown_against_is_one_line_exit_2_through_the_command():
    r = run_module("compare", "--against", "foo")
    assert_user_error((r.returncode, r.stdout, r.stderr), "argument --against: invalid choice: 'foo'")


def test_a_port_whose_state_comes_back_in_other_types_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """--against float64 runs every float of a state in float64; a port's train_step that gives its
    floats back as float32 ended in a 30-line TypeError from lax.scan (twelfth hostile pass): one line
    naming the port and train_step, exit 1. (The twins keep each leaf's dtype: the tests above.)"""
    from common.cli import run_cli

    (tmp_path / "f32_port.py").write_text(
        "import dataclasses\nimport jax\nimport jax.numpy as jnp\nimport pure\n\n\ndef impl():\n"
        "    base = pure.impl()\n\n    def train_step(state, batch, cfg):\n"
        "        state, loss = base.train_step(state, batch, cfg)\n"
        "        return jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x,"
        " state), loss\n    return dataclasses.replace(base, train_step=train_step)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = run_cli(against.main, ["--against", "float64", "--impl", "f32_port", "--steps", "3"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    # the guard every port's train_step runs in names the leaf (compare/impls.py: check_same_state)
    assert "f32_port's train_step raised ValueError: its state's [0]['l0.fc1'] came back as float32[16, 64], " \
           "handed in as float64[16, 64]" in err, err


def test_a_batch_of_names_a_step_is_analysed_name_by_name(capsys):
    """--batch-size 2: the cause analysis at a crossing gave one name's pass both names' tokens and
    ended in a broadcasting traceback (thirteenth hostile pass); each name's units are looked at."""
    from common.cli import run_cli

    code = run_cli(against.main, ["--against", "float64", "--seed", "3", "--steps", "200", "--batch-size", "2",
                                  "--log-every", "200"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    assert "past 1e-06 of scale: first at step" in out and "ReLU (name " in out, out
