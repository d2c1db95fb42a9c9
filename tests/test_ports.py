"""Implementations named by module path: every command that takes an implementation takes a port
it does not know by name, and every way a module can fail to be one is one line and exit 2.

The modules are written under tmp_path and put on sys.path, as a user's own package would be;
`compare check` on a port with a planted difference exits 1 and names it."""

import contextlib
import io
import itertools
import json
import re
import sys
import textwrap

import planted
import pytest

from common.cli import run_cli
from compare import against, bench, check, impls, lesson, run, where
from conftest import assert_user_error

COUNTER = itertools.count()


def port(tmp_path, monkeypatch, body: str) -> str:
    """A module holding `body`, importable under a fresh name (nothing cached from another test)."""
    name = f"user_port_{next(COUNTER)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def call(main, *argv: str):
    """(exit code, stdout, stderr) of a command's main run through the CLI's error handling."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(main, list(argv))
    return code, out.getvalue(), err.getvalue()


WRONG_EPS = """
    import dataclasses

    import pure


    def impl():
        base = pure.impl()

        def wrong(cfg):  # flax's default RMSNorm epsilon, where microgpt has 1e-5
            return dataclasses.replace(cfg, norm_eps=1e-6)

        return dataclasses.replace(
            base, name="wrong_eps",
            forward=lambda params, tokens, cfg: base.forward(params, tokens, wrong(cfg)),
            loss_fn=lambda params, batch, cfg: base.loss_fn(params, batch, wrong(cfg)),
            batch_loss_fn=lambda params, batch, cfg: base.batch_loss_fn(params, batch, wrong(cfg)),
            train_step=lambda state, batch, cfg: base.train_step(state, batch, wrong(cfg)),
            train_steps=lambda state, batches, cfg: base.train_steps(state, batches, wrong(cfg)),
            sample_tokens=lambda params, prompt, n, cfg, **kw: base.sample_tokens(params, prompt, n, wrong(cfg), **kw),
            tapped_loss=base.tapped_loss and (lambda p, batch, cfg, z: base.tapped_loss(p, batch, wrong(cfg), z)),
        )
"""

BROKEN = {  # what the module holds -> what the one line must say
    "missing": (None, ["no module of that name can be imported here"]),
    "no_impl": ("x = 1\n", ["has no impl() function", "docs/porting.md"]),
    "raises": ("raise RuntimeError('boom at import')\n", ["importing it raised RuntimeError: boom at import"]),
    "impl_raises": ("def impl():\n    raise KeyError('weights')\n", [".impl() raised KeyError"]),
    "wrong_type": ("def impl():\n    return {'forward': None}\n", [".impl() returned a dict, not a common.impl.Impl"]),
    # a module __getattr__ and an object whose __class__ raise (eighteenth hostile pass: tracebacks)
    "getattr_raises": ("def __getattr__(name):\n    raise RuntimeError('no attributes here')\n",
                       ["reading its impl raised RuntimeError: no attributes here"]),
    "class_raises": ("class Odd:\n    @property\n    def __class__(self):\n        raise RuntimeError('no class')\n\n\n"
                     "def impl():\n    return Odd()\n", [".impl() returned a Odd, not a common.impl.Impl"]),
    "no_forward": ("import dataclasses, pure\ndef impl():\n    return dataclasses.replace(pure.impl(), forward=None)\n",
                   ["gives no function for forward"]),
    "taps_not_callable": ("import dataclasses, pure\ndef impl():\n"
                          "    return dataclasses.replace(pure.impl(), tapped_loss=3)\n",
                          ["gives no function for tapped_loss", "the optional ones may be None"]),
}
ROUTES = {  # every place an implementation is named -> argv with {} for it
    "compare --impls": (run.main, ["--steps", "2", "--impls", "pure,{}"]),
    "compare bench --impls": (bench.main, ["--steps", "2", "--impls", "{}"]),
    "compare --against --impl": (against.main, ["--against", "float64", "--steps", "2", "--impl", "{}"]),
    "compare diff --pair": (lesson.main, ["--pair", "pure,{}"]),
    "compare check": (check.main, ["{}"]),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("broken", BROKEN)
def test_a_module_that_is_no_port_is_one_line_exit_2(broken, route, tmp_path, monkeypatch):
    body, fragments = BROKEN[broken]
    name = "no_such_package_anywhere.port" if body is None else port(tmp_path, monkeypatch, body)
    main, argv = ROUTES[route]
    result = call(main, *(a.format(name) for a in argv))
    assert_user_error(result, name, *fragments)


@pytest.mark.parametrize("text, fragment", [
    ("pure,../x", "'../x' is not a module path"),
    ("pure", "name at least two different implementations"),
    ("pure,pure", "name at least two different implementations"),
    ("pure,flax_port.__main__", "flax_port.__main__ is a program, not a port: give its package (flax_port)"),
])
def test_bad_lists_of_implementations_are_one_line_exit_2(text, fragment):
    assert_user_error(call(run.main, "--steps", "2", "--impls", text), fragment)


def test_a_lesson_only_for_the_pairs_it_is_written_for(tmp_path, monkeypatch):
    name = port(tmp_path, monkeypatch, WRONG_EPS)
    assert_user_error(call(lesson.main, "--pair", f"pure,{name}"), f"no lesson is written for {name}",
                      f"compare check {name}")


def test_labels_of_module_paths_stay_short_and_distinct():
    names = ["pure", "flax_port", "nnx_port", "examples.equinox_port"]
    assert impls.labels(names) == ["pure", "flax_port", "nnx_port", "equinox_port"]
    assert impls.labels(["a.port", "b.port"]) == ["a.port", "b.port"]
    assert impls.labels(["mypkg.my_port", "other.my_model"]) == ["my_port", "my_model"]


# ----------------------------------------------------------------------------- a port by path, a planted difference

def test_a_port_by_path_runs_side_by_side_and_a_planted_epsilon_is_different(tmp_path, monkeypatch, capsys):
    name = port(tmp_path, monkeypatch, WRONG_EPS)
    code = run_cli(run.main, ["--steps", "10", "--num-samples", "2", "--impls", f"pure,{name}"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"one initialisation converted into pure, {name}" in out
    assert [ln for ln in out.splitlines() if ln.startswith("verdict:")][0].startswith("verdict: different")


PLANTED_PORT = """
    import planted  # tests/planted.py: pure with one thing changed


    def impl():
        return planted.PLANTED[{plant!r}][0]()
"""


def test_check_exits_1_on_a_planted_transpose_and_names_it(tmp_path, monkeypatch, capsys):
    """The whole command on a port whose to_flat hands l0.wq over transposed: its programs are
    pure's own (read back from the session's compilation cache), its numbers put in the wrong place.
    With jit only (`--modes jit`): the cases without jit run op by op, 8 of this test's 10 s warm."""
    name = port(tmp_path, monkeypatch, PLANTED_PORT.format(plant="transposed_to_flat"))
    verdict = tmp_path / "check.json"
    code = run_cli(check.main, [name, "--shapes", "default", "--modes", "jit", "--json", str(verdict)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "with jit only" in out.splitlines()[0] and "no_jit" not in out, out
    assert "first failure: grads-default-jit" in out and "first differs at: l0.wq (gradient)" in out, out
    assert "transpose" in out.splitlines()[-3], out  # the why under the first-parts line
    payload = json.loads(verdict.read_text())
    assert payload["exit_code"] == 1 and payload["first_failure"]["case"] == "grads-default-jit"
    assert payload["modes"] == ["jit"] and payload["shapes"] == ["default"]  # a partial run says it is one
    # what reads the flat layout differs, what does not (logits, sampled names) stays bitwise
    levels = {c["kind"]: set() for c in payload["checks"]}
    for c in payload["checks"]:
        levels[c["kind"]].add(c["level"])
    assert levels == {"logits": {"bitwise equal"}, "samples": {"bitwise equal"}, "grads": {"different"},
                      "update": {"different"}, "updates": {"different"}}, levels


@pytest.mark.parametrize("plant", sorted(planted.PLANTED))
def test_check_catches_each_planted_difference(plant, tmp_path, monkeypatch):
    """Every planted difference of `compare where`'s tests is "different" on one update without jit
    (op by op, so the ports share their compiled operations)."""
    name = port(tmp_path, monkeypatch, PLANTED_PORT.format(plant=plant))
    with pytest.raises(AssertionError, match=f"update-default-no_jit: {name} against pure: different"):
        check.assert_case(name, check.Case("update", mode="no_jit"))


def test_the_pytest_helper_fails_on_a_planted_epsilon(tmp_path, monkeypatch):
    name = port(tmp_path, monkeypatch, WRONG_EPS)
    with pytest.raises(AssertionError, match="logits-default-jit: .* different: .* ulps of scale in logits"):
        check.assert_case(name, check.Case("logits"))


def test_a_reference_named_by_module_path_whose_impl_has_another_name(tmp_path, monkeypatch):
    """The reference is found again by the path it was named by, not by its Impl's name ("wrong_eps")."""
    name = port(tmp_path, monkeypatch, WRONG_EPS)
    result = check.judge("pure", check.Case("logits", mode="no_jit"), reference=name)
    assert result.level == "different" and not result.missing, result.describe()


def test_check_refuses_bad_flags_in_one_line():
    assert_user_error(call(check.main, "examples.equinox_port", "--shapes", "tiny"), "--shapes 'tiny'")
    assert_user_error(call(check.main, "examples.equinox_port", "--modes", "eager"), "--modes 'eager'",
                      "choose among jit, no_jit")
    assert_user_error(call(check.main, "examples.equinox_port", "--modes", ","), "--modes ''")
    assert_user_error(call(check.main, "examples.equinox_port", "--kinds", "samples,tokens"),
                      "--kinds 'samples,tokens'", "choose among logits, grads, update, updates, samples, init")
    assert_user_error(call(check.main, "examples.equinox_port", "--kinds", "init", "--shapes", "block8"),
                      "--kinds init at these shapes and modes leaves no check", "init runs at default, 2layers")
    assert_user_error(call(check.main, "examples.equinox_port", "--kinds", "grads", "--shapes", "block8", "--modes",
                           "no_jit"), "leaves no check: the quick grid runs no grads check there (--full runs")
    assert_user_error(call(check.main, "pure"), "name another implementation")


# ----------------------------------------------------------------------------- a port's failure is a row

TWO_FAILURES = """
    import dataclasses

    import numpy as np
    import pure


    def impl():
        base = pure.impl()

        def sample_tokens(params, prompt, prompt_len, cfg, **kw):  # a tracer turned into NumPy: raises under jit
            return np.asarray(base.sample_tokens(params, prompt, prompt_len, cfg, **kw))

        def forward(params, tokens, cfg):  # (vocab, positions): the transpose of what the contract asks
            return base.forward(params, tokens, cfg).T

        return dataclasses.replace(base, name="two_failures", forward=forward, sample_tokens=sample_tokens,
                                   tapped_sample=None)
"""

X64 = """
    import jax

    jax.config.update("jax_enable_x64", True)

    import pure


    def impl():
        return pure.impl()
"""


def check_table(name: str, capsys, *flags: str) -> tuple[int, dict, str]:
    """`compare check name --shapes default`: (exit code, {check id: its row}, all it printed)."""
    code = run_cli(check.main, [name, "--shapes", "default", *flags])
    captured = capsys.readouterr()
    rows = {}
    for line in captured.out.splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[0] in ("logits", "grads", "update", "updates", "samples"):
            mode, batch = parts[2], int(parts[3])
            rows[str(check.Case(parts[0], parts[1], mode, batch))] = line
    return code, rows, captured.out + captured.err


def test_a_port_raising_in_its_sampler_and_of_the_wrong_shape_gets_two_rows_and_the_grid_goes_on(
        tmp_path, monkeypatch, capsys):
    """One port with two failures (one check run, one set of compiles): sample_tokens raising inside
    jit, and a forward returning the transpose. Each is its own row naming the function, what was
    expected and what came back; every other row is judged; the localization names forward()."""
    name = port(tmp_path, monkeypatch, TWO_FAILURES)
    # with jit only: the cases without jit run this port op by op, 7 of this test's 10 s warm; the
    # transpose's row without jit is judged on its own below
    code, rows, out = check_table(name, capsys, "--modes", "jit")
    assert code == 1 and "Traceback" not in out, out
    assert f"error: {name}'s sample_tokens raised TracerArrayConversionError" in rows["samples-default-jit"]
    assert "error: logits has shape (27, 16) where pure gives (16, 27)" in rows["logits-default-jit"]
    without_jit = check.judge(name, check.Case("logits", mode="no_jit"))  # the transpose shows in both modes
    assert "logits has shape (27, 16) where pure gives (16, 27)" in without_jit.error, without_jit.error
    failing = {"samples-default-jit", "logits-default-jit"}
    others = [line for case, line in rows.items() if case not in failing]
    assert len(others) == len(check.cases(["default"], modes=["jit"])) - 2, out
    assert all("bitwise equal" in ln for ln in others), out
    # to paste as it is: with the folder the port was imported from (it said "no module of that name")
    assert (f"localize: PYTHONPATH={tmp_path} uv run python -m compare where --impls pure,{name} "
            "--case samples-default-jit") in out, out
    assert "first differs at: forward() (forward): different, the second gives shape (27, 16)" in out, out


def test_a_port_turning_on_x64_runs_in_float32_with_a_note(tmp_path, monkeypatch, capsys):
    import jax

    name = port(tmp_path, monkeypatch, X64)
    try:
        code, rows, out = check_table(name, capsys, "--modes", "jit")  # the note, and float32: both modes alike
    finally:
        jax.config.update("jax_enable_x64", False)
    assert f"note: importing {name} turned on jax_enable_x64" in out and code == 0, out
    assert not jax.config.read("jax_enable_x64")
    # from impl(), which compare calls more than once: the note once (it was printed twice: nineteenth pass)
    name = port(tmp_path, monkeypatch, "import jax\nimport pure\n\n\ndef impl():\n    jax.config.update("
                                       "'jax_enable_x64', True)\n    return pure.impl()\n")
    try:
        code, _, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    finally:
        jax.config.update("jax_enable_x64", False)
    assert code == 0 and err.count(f"note: {name}'s impl() turned on jax_enable_x64") == 1, err


# ----------------------------------------------------------------------------- a port that misbehaves

RAISING = """
import dataclasses, sys
import pure


def impl():
    def boom(*args, **kwargs):
        {action}
    return dataclasses.replace(pure.impl(), train_step=boom, train_steps=boom)
"""


@pytest.mark.parametrize("action, says", [("raise ValueError('my step is not done')",
                                            "train_step raised ValueError: my step is not done"),
                                           ("sys.exit(0)", "train_step called sys.exit(0): a port's function must "
                                                           "return")])
def test_a_port_that_raises_or_exits_is_one_line_and_exit_1_in_every_command(action, says, tmp_path, monkeypatch):
    """A port's exception, or its sys.exit(0), in the side-by-side run, the benchmark and check: one
    line naming the port by its path and the function, exit 1 (the side-by-side run and the
    benchmark gave a traceback; a port exiting 0 ended check with 0, a pass to a CI gate)."""
    name = port(tmp_path, monkeypatch, RAISING.format(action=action))
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    assert code == 1 and err.strip() == f"compare: error: {name}'s {says}", err
    code, out, err = call(bench.main, "--impls", f"pure,{name}", "--steps", "2", "--repeats", "1", "--eager-steps", "1",
                          "--scaling-steps", "2")
    assert code == 1 and err.strip().splitlines()[-1].startswith(f"compare bench: error: {name}'s train_step"), err
    code, out, err = call(check.main, name, "--shapes", "default", "--modes", "jit")
    assert code == 1 and "verdict: different" in out and "Traceback" not in out + err, out + err




def test_a_sampler_returning_other_than_its_tokens_is_one_line():
    """sample_tokens returning (tokens, taps) or a pair of token arrays, tapped_sample returning the
    tokens alone: tracebacks in compare, bench, check and where (fifteenth hostile pass). The guard
    every port function runs in names what came back; right ones pass (the failing twins)."""
    import numpy as np

    from compare.impls import guarded
    from compare.programs import PortError

    tokens = np.zeros((2, 16), np.int32)
    for function, out, says in [
        ("sample_tokens", (tokens, {}), "its tokens are a tuple of 2: return the token ids, an integer array"),
        ("sample_tokens", (tokens, tokens), "its tokens are a tuple of 2"),
        ("sample_tokens", tokens.astype(np.float32), "its tokens are float32[2, 16]"),
        ("tapped_sample", tokens, "it returned int32[2, 16] alone: return (tokens, taps)"),
        ("tapped_sample", (tokens[0], {}), "its tokens are int32[16]"),
    ]:
        with pytest.raises(PortError, match=re.escape(f"myport's {function} raised ValueError: {says}")):
            guarded("myport", function, lambda *a, **k: out)(None)
    assert guarded("myport", "sample_tokens", lambda *a, **k: tokens)(None) is tokens
    assert guarded("myport", "tapped_sample", lambda *a, **k: (tokens, {"logits": 0}))(None)[0] is tokens

OTHER_STATE = """
import dataclasses

import jax.numpy as jnp
import pure


def impl():
    base = pure.impl()

    def train_step(state, batch, cfg):
        (params, opt), loss = base.train_step(state, batch, cfg)
        {change}
    return dataclasses.replace(base, train_step=train_step)
"""


@pytest.mark.parametrize("change, says", [
    ("return ((params, opt), 0), loss", "it returned a state of another structure than it was handed: "
                                        "(({9 entries}, {3 entries}), int) for ({9 entries}, {3 entries})"),
    ("return (params, dict(opt, step=opt['step'].astype(jnp.float32))), loss",
     "its state's [1]['step'] came back as float32[], handed in as int32[]"),
], ids=["structure", "dtype"])
def test_a_step_returning_another_state_is_one_line_in_every_command(change, says, tmp_path, monkeypatch):
    """A train_step giving back its state in another structure, or Adam's step count as float32: a
    traceback from the lockstep scan of `compare` and from bench, and `check` called the float32
    count bitwise equal (fourteenth hostile pass). One line naming what came back, exit 1."""
    name = port(tmp_path, monkeypatch, OTHER_STATE.format(change=change))
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    assert code == 1 and err.strip().startswith(f"compare: error: {name}'s train_step raised ValueError: {says}"), err
    code, out, err = call(bench.main, "--impls", f"pure,{name}", "--steps", "2", "--repeats", "1", "--eager-steps", "1",
                          "--scaling-steps", "2")
    assert code == 1 and says in err.strip().splitlines()[-1] and "Traceback" not in err, err
    code, out, err = call(check.main, name, "--shapes", "default", "--modes", "jit", "--kinds", "update")
    assert code == 1 and says in out and "verdict: different" in out and "Traceback" not in out + err, out + err



DROPS_THE_LAST_UPDATE = """
import dataclasses

import jax
import pure
from pure import train


def impl():
    def train_steps(state, batches, cfg):  # the last name's loss, but not its update
        kept, losses = jax.lax.scan(lambda s, b: train.train_step(s, b, cfg), state,
                                    jax.tree.map(lambda x: x[:-1], batches))
        _, last = train.train_step(kept, jax.tree.map(lambda x: x[-1], batches), cfg)
        return kept, jax.numpy.concatenate([losses, last[None]])
    return dataclasses.replace(pure.impl(), train_steps=train_steps)
"""


RESTARTS_THE_STEP_COUNT = """
import dataclasses

import pure
from pure import train


def impl():
    def train_steps(state, batches, cfg):  # Adam's step count from 0 at every call, put back after
        params, opt = state
        (params, stepped), losses = train.train_steps((params, dict(opt, step=0 * opt["step"])), batches, cfg)
        return (params, dict(stepped, step=stepped["step"] + opt["step"])), losses
    return dataclasses.replace(pure.impl(), train_steps=train_steps)
"""


@pytest.mark.parametrize("body, steps, what", [
    (DROPS_THE_LAST_UPDATE, "1 to 10", "weights"),
    (RESTARTS_THE_STEP_COUNT, "11 to 20", "weights"),
    ("import planted\n\n\ndef impl():\n    return planted.steps_loss_doubled()\n", "1 to 10", "losses"),
], ids=["drops_the_last_update", "restarts_the_step_count", "loss_doubled"])
def test_a_train_steps_unlike_its_train_step_is_the_ports_failure_in_the_side_by_side_run(body, steps, what, tmp_path,
                                                                                         monkeypatch):
    """The lockstep run steps with train_step and the trainers with train_steps: a port whose
    train_steps dropped each chunk's last update (fifteenth hostile pass), or restarted Adam's step
    count at each call (sixteenth: right from step 0, so the first chunk alone did not see it), was
    bitwise equal there; so was one returning twice each loss (nineteenth). Its train_steps over every
    chunk is held to its train_step's weights and losses."""
    name = port(tmp_path, monkeypatch, body)
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "20", "--num-samples", "1")
    assert code == 1 and err.strip().startswith(f"compare: error: {name}'s train_steps over steps {steps} gives other "
                                                f"{what} than its train_step one step at a time"), err


STEP_LOSS_SUMMED_THROUGHOUT = """
import dataclasses

import jax
import planted


def impl():  # train_steps a scan of that train_step, as common/impl.py asks
    wrong = planted.step_loss_summed()
    def train_steps(state, batches, cfg):
        return jax.lax.scan(lambda s, b: wrong.train_step(s, b, cfg), state, batches)
    return dataclasses.replace(wrong, train_steps=train_steps)
"""


def test_a_train_step_returning_a_wrong_loss_is_different_side_by_side(tmp_path, monkeypatch):
    """The lockstep run judged the parameters only: a train_step returning the loss summed over the
    positions, its update right, printed 3.2984 beside 82 and said "bitwise equal" (nineteenth hostile
    pass). Each step's loss is judged with the parameters."""
    name = port(tmp_path, monkeypatch, STEP_LOSS_SUMMED_THROUGHOUT)
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "10", "--num-samples", "1")
    verdict = [ln for ln in out.splitlines() if ln.startswith("verdict:")]
    assert code == 1 and verdict, out + err
    assert verdict[0].startswith("verdict: different: ") and "loss[] at step 1" in verdict[0], verdict


def test_an_init_state_returning_no_jax_type_is_one_line(tmp_path, monkeypatch):
    """jit's own check of what init_state returns runs outside the port's guard: a string was a
    traceback in check's init row and in compare (sixteenth hostile pass)."""
    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n    return dataclasses."
                                       "replace(pure.impl(), init_state=lambda cfg, *, key: 'state')\n")
    code, out, err = call(check.main, name, "--shapes", "default", "--kinds", "init")
    assert code == 1 and f"error: {name}'s init_state raised TypeError" in out and "Traceback" not in out + err, out
    code, out, err = call(run.main, "--impls", f"{name},pure", "--steps", "2", "--num-samples", "1")
    assert code == 1 and err.strip().startswith(f"compare: error: {name}'s init_state raised TypeError"), err

@pytest.mark.parametrize("builder, says", [
    ("rmsnorm_divides()", None),
    ("weight_decay(5e-5)", ("the candidate's weights drift along the weights themselves",  # 1e-5 at 8 names
                            "times what float32 rounding can move an entry from microgpt's Adam")),  # 5e-5: 4 times
    ("rounds_and_wrong_eps()", ("times what float32 rounding can move an entry from microgpt's Adam",)),
], ids=["right_port", "weight_decay", "wrong_eps"])
def test_an_update_row_beyond_the_bound_is_judged_on_each_sides_own_inputs(builder, says, tmp_path, monkeypatch):
    """A right port whose RMSNorm divides was "different" in check's 8-name update rows (171 and 342
    ulps: Adam amplifies a near-cancelling gradient's rounding; seventeenth hostile pass): such a row
    is judged on each side's own inputs (compare/check.py: on_own_inputs) and is rounding. Its
    failing twins: a weight decay (no budget a step sees it: its drift along the weights does) and
    a wrong Adam epsilon behind the same rounding (the first step, on its own gradients)."""
    name = port(tmp_path, monkeypatch, f"import planted\n\n\ndef impl():\n    return planted.{builder}\n")
    code, out, err = call(check.main, name, "--shapes", "default", "--modes", "jit", "--kinds", "update,updates")
    rows = [ln for ln in out.splitlines() if ln.startswith(("update ", "updates "))]
    assert len(rows) == 4 and "Traceback" not in out + err, out + err
    if says is None:
        assert code == 0, out
        for row in rows:  # beyond the bound on this CPU (under SSE4.2 the division rounds as rsqrt does): judged
            ulps = float(re.search(r" ([0-9.e+-]+) ulps of scale", row).group(1)) if "ulps of scale" in row else 0.0
            assert " different " not in row and (ulps <= 16 or "judged on each side's own inputs" in row), row
    else:
        assert code == 1 and any(" different " in row and any(x in row for x in says) for row in rows), out


@pytest.mark.parametrize("builder, kind", [("step_loss_summed", "update"), ("steps_loss_doubled", "updates")])
def test_a_wrong_loss_beside_a_right_update_is_never_amplified_rounding(builder, kind):
    """The own-input judgement is for what Adam makes: a train_step (or train_steps) returning a wrong
    loss beside right weights was "equal to float32 rounding ... Adam amplified the gradients'
    rounding" (nineteenth hostile pass, 1.4e7 and 6.4e8 ulps in loss[]). Op by op: the ports share
    their operations with the grid's no_jit cases."""
    result = check.judge(getattr(planted, builder)(), check.Case(kind, mode="no_jit"))
    assert result.level == "different" and result.own_level == "different", result.describe()
    assert "from the shared start: the loss and the step count are not Adam's to amplify" in result.own, result.own


def test_the_drift_along_the_weights_tells_a_weight_decay_from_rounding():
    """compare/check.py's last test before an update row is excused: rounding of every weight by up to
    an ulp is no drift (|t| within BIAS_T); a weight decay of 1e-5 at lr 0.01, a tenth of an ulp of
    most weights, is, far beyond it."""
    import numpy as np

    from compare.check import drift_along_weights
    from compare.tolerances import BIAS_T

    rng = np.random.default_rng(0)
    w = (0.08 * rng.standard_normal((4192,))).astype(np.float32)
    ulp = np.spacing(np.abs(w))
    rounded = w + ulp * rng.integers(-1, 2, w.shape)
    decayed = (w.astype(np.float64) * (1 - 0.01 * 1e-5)).astype(np.float32)
    at, against = {"params/w": w}, {"w": w}
    assert abs(drift_along_weights({"params/w": rounded}, against, at, ["w"])) <= BIAS_T
    assert drift_along_weights({"params/w": decayed}, against, at, ["w"]) < -10 * BIAS_T


def test_init_rows_follow_the_shapes_whatever_modes_asks():
    """init_state runs under jit: with --modes no_jit its 2layers row went away (no no_jit case there in
    the quick grid; `--kinds init` alone was then refused as no check) and the header said "under
    jit" unexplained (seventeenth hostile pass). The rows follow --shapes alone."""
    code, out, err = call(check.main, "pure", "--against", "flax_port", "--kinds", "init", "--modes", "no_jit",
                          "--shapes", "2layers")
    assert code == 0 and ", under jit; " in out.splitlines()[0], out + err
    assert [ln.split()[:3] for ln in out.splitlines() if ln.startswith("init ")] == [["init", "2layers", "jit"]], out
    code, out, err = call(check.main, "pure", "--against", "flax_port", "--kinds", "init,update", "--modes", "no_jit",
                          "--shapes", "default,2layers")
    assert code == 0 and "init_state at 2 shapes, under jit whatever --modes says" in out.splitlines()[0], out + err


OWN_INIT = """
import dataclasses

import jax
import jax.numpy as jnp
import pure


def impl():
    base = pure.impl()

    def init_state(cfg, *, key):
        params, opt = base.init_state(cfg, key=key)
        {change}
    return dataclasses.replace(base, init_state=init_state)
"""


@pytest.mark.parametrize("change, says", [
    ("return params, dict(opt, step=jnp.full((), 100, jnp.int32))", "Adam's step count is 100, not 0"),
    ("return jax.tree.map(lambda w: w * 3, params), opt", "its weights have mean"),
    ("keys = jax.random.split(key, len(params))\n        return {k: jax.random.uniform(kk, w.shape, minval=-0.1386, "
     "maxval=0.1386) for (k, w), kk in zip(params.items(), keys)}, opt", "kurtosis 1.7"),
    ("return {k: 0.08 * jax.random.normal(key, w.shape) for k, w in params.items()}, opt",
     "begin with the same numbers: one key drew both"),
    # 5% too wide, and one weight 1.5x: within the bounds before (twentieth hostile pass)
    ("return jax.tree.map(lambda w: w * 1.05, params), opt", "sampling errors off) and kurtosis"),
    ("return dict(params, wpe=params['wpe'] * 1.5), opt", "wpe has std"),
    ("return params, opt", None),
], ids=["step_100", "std_0.24", "uniform", "one_key", "std_0.084", "wpe_1.5x", "pure's"])
def test_a_port_whose_own_init_is_no_fresh_start_is_different(change, says, tmp_path, monkeypatch):
    """Every check starts both sides from one state, and `python -m compare` from the first
    implementation's: a port whose init_state started Adam at step 100 was bitwise equal in both
    while its own trainer diverged (fourteenth hostile pass). check's init rows hold a port's own
    init_state to step 0, zero moments and N(0, init_std) weights, and `compare` refuses to start
    from it; pure's own init, through a port, passes (the failing twin)."""
    name = port(tmp_path, monkeypatch, OWN_INIT.format(change=change))
    code, out, err = call(check.main, name, "--shapes", "default", "--kinds", "init")
    row = next(ln for ln in out.splitlines() if ln.startswith("init "))
    if says is None:
        assert code == 0 and "bitwise equal" in row and "Adam at step 0, zero moments" in row, out + err
        return
    assert code == 1 and "different" in row and says in row, out + err
    assert f"uv run python -m compare check {name} --kinds init --shapes default" in out, out
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    if "step" in says:
        assert code == 1 and err.strip() == f"compare: error: {name}'s init_state gives no fresh start, as its " \
                                            f"state_to_flat hands the state over: {says} " \
                                            "(common/impl.py)", err
    else:  # its weights, held by compare as by check's init rows (a 5% wider draw ran unseen: twentieth pass)
        assert code == 1 and f"{name}'s init_state draws other weights than microgpt's: " in err, err

def test_a_port_that_exits_when_imported_or_hands_over_other_names_is_named(tmp_path, monkeypatch):
    """sys.exit at import: one line, exit 2 (it ended `compare check` with 0 and no output). A to_flat
    with other names than the checkpoint's: named with what is missing (a KeyError traceback)."""
    name = port(tmp_path, monkeypatch, "import sys\nsys.exit(0)\n")
    assert_user_error(call(check.main, name), f"{name}: importing it called sys.exit(0)")
    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n    return "
                                       "dataclasses.replace(pure.impl(), to_flat=lambda p, cfg=None: {'x': 1})\n")
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    assert code == 1 and f"{name}'s to_flat" in err and "missing l0.fc1" in err and "unknown x" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_port_that_copied_a_twins_impl_is_named_by_its_path(tmp_path, monkeypatch):
    """A port built as dataclasses.replace(pure.impl(), ...) keeps the name "pure": where's title said
    "pure vs pure" and its refusal blamed pure. It is named by the path it was given."""
    from compare import where

    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n"
                                       "    return dataclasses.replace(pure.impl(), tapped_loss=None)\n")
    assert impls.get(name).name == name and impls.get("pure").name == "pure"
    assert_user_error(call(where.main, "--impls", f"pure,{name}"), f"{name} has no tapped_loss")


def test_a_port_without_the_optional_functions_is_checked_on_the_rest(tmp_path, monkeypatch, capsys):
    """batch_loss_fn and tapped_loss are optional (common/impl.py): without them the checks of batches
    are skipped with a note (they were rows "different" raising TypeError), and a failure that where
    cannot localize is said so under the table, exit 1 (it was exit 2 with no verdict)."""
    name = port(tmp_path, monkeypatch, """
        import dataclasses
        import jax.numpy as jnp
        import pure


        def impl():
            base = pure.impl()

            def loss_fn(params, batch, cfg):  # planted: the loss a hair too large
                return base.loss_fn(params, batch, cfg) * jnp.float32(1.0001)
            return dataclasses.replace(base, batch_loss_fn=None, tapped_loss=None, loss_fn=loss_fn)
        """)
    code, out, err = call(check.main, name, "--shapes", "default", "--modes", "jit")
    assert code == 1 and err == "", err
    assert f"note: checks of batches skipped: {name} has no batch_loss_fn" in out and " 8 names " not in out, out
    assert f"where: cannot localize it: {name} has no tapped_loss" in out and "verdict: different" in out, out


FOURTH_PASS = {  # a port's module body -> what the one line says (tests/test_ports.py, the fourth hostile pass)
    "no_moments": ("import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n    return dataclasses."
                   "replace(base, state_to_flat=lambda s, cfg=None: (base.state_to_flat(s)[0], {'step': 0}))\n",
                   "state_to_flat raised ValueError: its Adam state lacks m, v"),
    "base_exception": ("import dataclasses\nimport pure\n\n\nclass Weird(BaseException):\n    pass\n\n\n"
                       "def impl():\n    def forward(*args):\n        raise Weird('boom')\n"
                       "    return dataclasses.replace(pure.impl(), forward=forward)\n",
                       "forward raised Weird: boom"),
}


@pytest.mark.parametrize("kind", sorted(FOURTH_PASS))
def test_a_port_with_a_broken_adam_state_or_its_own_base_exception_is_one_line(kind, tmp_path, monkeypatch):
    """A state_to_flat without Adam's moments (a KeyError traceback when where localized it) and a
    forward raising a BaseException subclass (a 66-line traceback): one line naming the port, exit 1."""
    from compare import where

    body, says = FOURTH_PASS[kind]
    name = port(tmp_path, monkeypatch, body)
    code, out, err = call(where.main, "--impls", f"pure,{name}", "--steps", "2")
    assert code == 1 and f"{name}'s {says}" in out and "Traceback" not in out + err, out + err


def test_a_port_that_turns_jit_off_or_shadows_a_twin_or_samples_off_the_vocabulary(tmp_path, monkeypatch):
    """Three ports of the fourth hostile pass: one turning jax_disable_jit on at import (a traceback from
    the compiled run, and a check blaming pure) is noted and jit turned back on; a pure.py in the
    current directory is not taken for the twin (it was, under the twin's name); a sampler giving
    tokens outside the vocabulary is one line, exit 1 (an IndexError traceback)."""
    import jax

    name = port(tmp_path, monkeypatch, "import jax\nimport pure\n\njax.config.update('jax_disable_jit', True)\n\n\n"
                                       "def impl():\n    return pure.impl()\n")
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    assert code == 0 and f"note: importing {name} turned on jax_disable_jit" in err, err
    assert not jax.config.jax_disable_jit
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "flax_port.py").write_text("def impl():\n    raise RuntimeError('not the twin')\n")
    monkeypatch.syspath_prepend(str(shadow))
    real = {k: v for k, v in sys.modules.items() if k == "flax_port" or k.startswith("flax_port.")}
    for k in real:
        del sys.modules[k]
    monkeypatch.setattr(impls, "RESOLVED", {})
    try:
        assert_user_error(call(run.main, "--impls", "pure,flax_port", "--steps", "2"),
                          f"flax_port here is {shadow / 'flax_port.py'}, not this project's flax_port/")
    finally:  # the twin back, for every later test of this process
        sys.modules.pop("flax_port", None)
        sys.modules.update(real)
        monkeypatch.undo()
    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n"
                                       "    return dataclasses.replace(base, sample_tokens=lambda *a, **k: "
                                       "base.sample_tokens(*a, **k) + 100)\n")
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    assert code == 1 and f"{name}'s sample_tokens gave int32 tokens from" in err, err
    assert "token ids are whole numbers from 0 to 26" in err and len(err.strip().splitlines()) == 1, err


def test_bench_times_the_import_of_a_port_of_any_shape(tmp_path, monkeypatch):
    """A single-file port: bench's fresh interpreter imported <port>.train, .sample and .model (a
    refusal after all the timing, advising `uv sync`); it imports the module and calls impl()."""
    name = port(tmp_path, monkeypatch, "import pure\n\n\ndef impl():\n    return pure.impl()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert bench.import_seconds(name, repeats=1) > 0


def test_a_to_flat_handing_a_matrix_over_transposed_is_named_in_the_side_by_side_run(tmp_path, monkeypatch):
    """The mistake docs/porting.md warns about (`.T` in to_flat): check and where named it; the
    side-by-side run ended in a broadcasting traceback. Now one line, exit 1."""
    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n\n"
                                       "    def to_flat(params, cfg=None):\n        flat = dict(base.to_flat(params))\n"
                                       "        flat['lm_head'] = flat['lm_head'].T\n        return flat\n"
                                       "    return dataclasses.replace(base, to_flat=to_flat)\n")
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    assert code == 1 and f"{name}'s to_flat gave lm_head of shape (16, 27, 2) for a chunk of 2 steps" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_forward_giving_nan_is_named_as_nan_without_numpy_warnings(tmp_path, monkeypatch):
    """NaN logits from a port: the row said "integers apart" and NumPy's All-NaN RuntimeWarning
    reached stderr in two more lines. Now the row names the values that are not finite, and stderr
    is empty."""
    from compare import where

    name = port(tmp_path, monkeypatch, "import dataclasses\nimport jax.numpy as jnp\nimport pure\n\n\n"
                                       "def impl():\n    base = pure.impl()\n    return dataclasses.replace(base, "
                                       "forward=lambda p, t, cfg: base.forward(p, t, cfg) * jnp.nan)\n")
    code, out, err = call(where.main, "--impls", f"pure,{name}")
    assert code == 1 and err == "", err
    assert ("first differs at: forward() (forward): different, the second gives 432 values that are not finite "
            "(NaN or inf) where the first's are") in out, out


def test_out_of_memory_inside_a_port_is_the_runs_size_not_the_ports_fault(tmp_path, monkeypatch):
    """The guard leaves XLA's RESOURCE_EXHAUSTED to the commands' out-of-memory line, exit 2, as for
    the twins (XLA ran out for the run's size); Python's MemoryError inside a port is the port's own
    allocation (the twins ran this size: the floor of common/devices.py let it through) and is its
    failure, exit 1 (it got the size advice, sixth hostile pass)."""
    name = port(tmp_path, monkeypatch, RAISING.format(
        action="raise RuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.')"))
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    assert code == 2 and err.strip().startswith("compare: error: out of memory (XLA asked for 16.0 GiB at once)"), err
    name = port(tmp_path, monkeypatch, RAISING.format(action="raise MemoryError('my cache')"))
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "1")
    assert code == 1 and f"{name}'s train_step raised MemoryError: my cache" in err, err
    assert "--batch-size" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("body", ["async def forward(p, t, cfg):\n        return base.forward(p, t, cfg)",
                                  "def forward(p, t, cfg):\n        yield base.forward(p, t, cfg)"])
def test_a_forward_that_is_async_or_a_generator_is_one_line_and_no_warning(tmp_path, monkeypatch, body):
    """An async def (or a yield) returns a coroutine (a generator) instead of the logits: one line naming
    it, exit 1, and no "coroutine was never awaited" RuntimeWarning on stderr (sixth hostile pass)."""
    from compare import where

    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n\n"
                f"    {body}\n    return dataclasses.replace(base, forward=forward)\n")
    code, out, err = call(where.main, "--impls", f"pure,{name}")
    kind = "coroutine" if "async" in body else "generator"
    assert code == 1 and f"different: {name}'s forward raised TypeError: it returned a {kind}" in out, (out, err)
    assert err == "", err  # no "coroutine ... was never awaited" RuntimeWarning


NAN_AFTER_3 = """
import dataclasses

import jax
import jax.numpy as jnp

import pure
from pure import train


def impl():
    def train_step(state, batch, cfg):
        (params, opt), loss = train.train_step(state, batch, cfg)
        poison = jnp.where(opt["step"] >= 3, jnp.nan, 1.0).astype(params["wte"].dtype)
        return (dict(params, wte=params["wte"] * poison), opt), loss

    def train_steps(state, batches, cfg):
        return jax.lax.scan(lambda s, b: train_step(s, b, cfg), state, batches)

    return dataclasses.replace(pure.impl(), train_step=train_step, train_steps=train_steps)
"""


def test_a_port_that_diverges_where_the_reference_does_not_is_the_ports_failure(tmp_path, monkeypatch):
    """The side-by-side run: a port whose step makes wte NaN at step 3 while pure's stays finite is
    a port failure, exit 1, naming the step and the parameter (it said "lower --lr", exit 2, as if
    the learning rate were at fault); the same run with both diverging stays the run's, exit 2."""
    name = port(tmp_path, monkeypatch, NAN_AFTER_3)
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "8", "--log-every", "4",
                          "--num-samples", "1")
    line = err.strip()
    assert code == 1 and len(line.splitlines()) == 1, err
    assert line.startswith(f"compare: error: {name}: training diverged at step 3: its update made wte non-finite, "
                           "where pure did not"), line
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "8", "--log-every", "4",
                          "--num-samples", "1", "--lr", "1e30")
    assert code == 2 and "lower --lr" in err, err


# ----------------------------------------------------------------------------- what a port may not touch

EXITS_IN_FORWARD = """
import dataclasses, os
import pure


def impl():
    def forward(*args, **kwargs):
        os._exit(0)
    return dataclasses.replace(pure.impl(), forward=forward)
"""

AT_IMPORT = """
import os, signal
{body}
import pure


def impl():
    return pure.impl()
"""

CHANGES_X64_IN_FORWARD = """
import dataclasses
import jax
import pure


def impl():
    def forward(params, tokens, cfg):
        jax.config.update("jax_enable_x64", True)
        return pure.impl().forward(params, tokens, cfg)
    return dataclasses.replace(pure.impl(), forward=forward)
"""

ESCAPES_IN_FORWARD = """
import dataclasses
import pure


def impl():
    def forward(*args, **kwargs):
        raise ValueError("\\x1b]0;TITLE\\x07\\x1b[2J\\u202ered")
    return dataclasses.replace(pure.impl(), forward=forward)
"""


def test_a_port_calling_os_exit_is_a_failure_never_a_pass(tmp_path, monkeypatch, capsys):
    """os._exit(0) in a port's function ended `compare check` with exit 0, no verdict, no JSON (a CI
    gate read a pass); at import, the same with no output at all. Now: the row says so, exit 1; at
    import, one line, exit 2 (fifth hostile pass)."""
    import os

    name = port(tmp_path, monkeypatch, EXITS_IN_FORWARD)
    code, rows, out = check_table(name, capsys, "--modes", "jit")
    assert code == 1 and f"{name}'s forward called os._exit(0): a port's function must return" in out, out
    with pytest.raises(impls.PortExited):  # fenced from then on: a thread the port started may call it later
        os._exit(0)
    name = port(tmp_path, monkeypatch, AT_IMPORT.format(body="os._exit(0)"))
    assert_user_error(call(check.main, name), f"{name}: importing it called os._exit(0)")


@pytest.mark.parametrize("body, says", [
    ("class Boom(BaseException):\n    pass\nraise Boom('pytest.importorskip')",
     "importing it raised Boom: pytest.importorskip"),
    ("class E(Exception):\n    def __str__(self):\n        raise RuntimeError\nraise E()",
     "importing it raised E: (its message could not be read)"),
    ("raise ValueError('\\x1b[2J\\u202e')", "importing it raised ValueError: \\x1b[2J\\u202e"),
])
def test_what_a_port_raises_at_import_is_one_line(body, says, tmp_path, monkeypatch):
    """A BaseException of the port's own (pytest's Skipped and Failed are), a message whose str()
    raises, terminal escapes and a right-to-left override: tracebacks, or raw escapes on the
    terminal; now one line, the escapes shown as escapes."""
    name = port(tmp_path, monkeypatch, AT_IMPORT.format(body=body))
    assert_user_error(call(check.main, name), f"{name}: {says}")


def test_a_port_may_not_change_the_process_it_runs_in(tmp_path, monkeypatch, capsys):
    """Signals ignored at import (Ctrl-C and SIGTERM would no longer stop the run): put back, with a
    note. jax_enable_x64 turned on inside forward: the reference's next call failed and the line
    blamed pure; now the port's function fails naming what it changed, and the setting is put back.
    An exception's terminal escapes are shown escaped. (The port's functions called as the commands
    call them, through impls.get's guard; `check` end to end is the os._exit test's.)"""
    import signal

    import jax

    from common.config import Config
    from compare.programs import PortError

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    name = port(tmp_path, monkeypatch, AT_IMPORT.format(body="signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                                               "signal.signal(signal.SIGTERM, signal.SIG_IGN)"))
    impls.get(name)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    err = capsys.readouterr().err
    assert f"note: importing {name} changed the handling of SIGINT; it is set back for the run" in err, err
    cfg = Config(vocab_size=27)
    params = impls.get("pure").init_state(cfg, key=jax.random.PRNGKey(0))[0]
    tokens = jax.numpy.zeros(cfg.block_size, "int32")
    with pytest.raises(PortError) as failed:
        impls.get(port(tmp_path, monkeypatch, CHANGES_X64_IN_FORWARD)).forward(params, tokens, cfg)
    assert not jax.config.read("jax_enable_x64")
    assert "'s forward: it changed jax_enable_x64 (to True) while it ran (set back)" in str(failed.value)
    with pytest.raises(PortError) as failed:
        impls.get(port(tmp_path, monkeypatch, ESCAPES_IN_FORWARD)).forward(params, tokens, cfg)
    assert "\x1b" not in str(failed.value) and "\u202e" not in str(failed.value)
    assert "'s forward raised ValueError: \\x1b]0;TITLE\\x07\\x1b[2J\\u202ered" in str(failed.value), failed.value


def test_a_ports_package_is_fenced_too(tmp_path, monkeypatch):
    """`mypkg.port`: finding the module imports mypkg/__init__.py first, and that import ran outside
    the fence: an os._exit(0) there ended `check` with 0 and no output (review of the fifth pass)."""
    name = port(tmp_path, monkeypatch, "")
    package = tmp_path / f"{name}_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("import os\nos._exit(0)\n")
    (package / "port.py").write_text("import pure\n\n\ndef impl():\n    return pure.impl()\n")
    assert_user_error(call(check.main, f"{name}_pkg.port"), f"{name}_pkg.port: importing it called os._exit(0)")


def test_the_fence_reads_jax_settings_process_wide():
    """`jax.disable_jit()` is a thread's own: a case run op by op in one thread while a port's
    function ran in another made the fence read the first thread's view as the process's, blame the
    second and turn jit off for the whole process (review of the fifth pass)."""
    import threading

    import jax

    ready, done = threading.Event(), threading.Event()

    def op_by_op():
        with jax.disable_jit(), impls.port_code("first", "forward", during=True):
            ready.set()
            done.wait(10)

    thread = threading.Thread(target=op_by_op)
    thread.start()
    ready.wait(10)
    try:
        with impls.port_code("second", "forward", during=True):
            jax.config.update("jax_disable_jit", False)  # what it already is, process-wide
    finally:
        done.set()
        thread.join()
    assert not jax.config._value_holders["jax_disable_jit"].get_global()


HIJACKS_PURE = """
import sys, types
import pure as real

fake = types.ModuleType("pure")
fake.impl, fake.__file__, fake.__spec__ = real.impl, real.__file__, real.__spec__
sys.modules["pure"] = fake


def impl():
    return real.impl()
"""

CHANGES_THE_PROCESS = """
import builtins, dataclasses, os, sys
import pure


def impl():
    def forward(params, tokens, cfg):
        {body}
        return pure.impl().forward(params, tokens, cfg)
    return dataclasses.replace(pure.impl(), forward=forward)
"""


@pytest.mark.parametrize("body, says", [
    ("os.chdir('/')", "the working directory"),
    ("sys.setrecursionlimit(sys.getrecursionlimit() + 7)", "the recursion limit"),  # (a low one fails at once)
    ("builtins.print = lambda *a, **k: None", "print"), ("raise GeneratorExit('x')", "raised GeneratorExit: x"),
])
def test_what_a_ports_function_changes_is_put_back_and_its_failure(body, says, tmp_path, monkeypatch):
    """A port's function that moved the working directory (relative outputs were written to /),
    lowered the recursion limit (pure got the blame), replaced print (no verdict, exit 0), or raised
    GeneratorExit (a traceback): put back, and that function's failure (sixth hostile pass)."""
    import builtins
    import os

    import jax

    from common.config import Config
    from compare.programs import PortError

    before = os.getcwd(), sys.getrecursionlimit(), builtins.print
    cfg = Config(vocab_size=27)
    params = impls.get("pure").init_state(cfg, key=jax.random.PRNGKey(0))[0]
    with pytest.raises(PortError) as failed:
        impls.get(port(tmp_path, monkeypatch, CHANGES_THE_PROCESS.format(body=body))).forward(
            params, jax.numpy.zeros(cfg.block_size, "int32"), cfg)
    assert says in str(failed.value) and (os.getcwd(), sys.getrecursionlimit(), builtins.print) == before


@pytest.mark.parametrize("change, says", [
    ("os.environ['JAX_DISABLE_JIT'] = '1'", "the environment (JAX_DISABLE_JIT)"),
    ("import warnings; warnings.simplefilter('error')", "the warnings filters"),
    ("import logging; logging.basicConfig(level=logging.DEBUG, force=True)", "the logging configuration"),
    ("sys.stdout.reconfigure(encoding='ascii', errors='strict')", "the encoding of sys.stdout"),
    ("import jax; jax.config.update('jax_threefry_partitionable', not jax.config.jax_threefry_partitionable)",
     "jax_threefry_partitionable"),
])
def test_what_a_ports_import_changes_is_put_back_with_a_note(change, says, tmp_path, monkeypatch, capsys):
    """Seventh hostile pass: an environment variable set at a port's import (the next command's check
    blamed the user's shell, exit 2), warnings turned into errors (our own warning became a traceback,
    or pure's failure), DEBUG logging (400 lines of JAX's), a strict ascii stdout (a sampled é raised),
    another PRNG (pure's own names changed, no word): each set back, with a note. Failing twin: the
    state compared before and after is what the fence restores, so a change it missed fails here."""
    import logging
    import os
    import warnings

    import jax

    from compare import impls as impls_mod

    before = (dict(os.environ), list(warnings.filters), logging.getLogger().level, tuple(logging.getLogger().handlers),
              impls_mod.codec_of(sys.stdout), jax.config.jax_threefry_partitionable)
    impls.get(port(tmp_path, monkeypatch, f"import os, sys\nimport pure\n{change}\n\n\ndef impl():\n"
                                          "    return pure.impl()\n"))
    assert says in capsys.readouterr().err
    assert (dict(os.environ), list(warnings.filters), logging.getLogger().level, tuple(logging.getLogger().handlers),
            impls_mod.codec_of(sys.stdout), jax.config.jax_threefry_partitionable) == before


def test_a_port_replacing_a_library_function_is_refused(tmp_path, monkeypatch):
    """jax.nn.softmax replaced at a port's import ran in the reference too: check, where and the
    side-by-side run all said bitwise equal, exit 0 (seventh hostile pass). Refused, and put back;
    the same replacement inside a function is that function's failure."""
    import jax

    from compare.programs import PortError

    softmax = jax.nn.softmax
    name = port(tmp_path, monkeypatch, "import jax\nimport pure\njax.nn.softmax = lambda x, axis=-1: x\n\n\n"
                                       "def impl():\n    return pure.impl()\n")
    assert_user_error(call(check.main, name), f"{name} replaced jax.nn.softmax when imported")
    assert jax.nn.softmax is softmax
    from common.config import Config

    cfg = Config(vocab_size=27)
    params = impls.get("pure").init_state(cfg, key=jax.random.PRNGKey(0))[0]
    with pytest.raises(PortError, match="jax.nn.softmax"):
        impls.get(port(tmp_path, monkeypatch, CHANGES_THE_PROCESS.format(
            body="import jax; jax.nn.softmax = lambda x, axis=-1: x"))).forward(
            params, jax.numpy.zeros(cfg.block_size, "int32"), cfg)
    assert jax.nn.softmax is softmax


def test_a_port_replacing_a_twin_module_is_refused(tmp_path, monkeypatch):
    """sys.modules["pure"] replaced by a port's import: `compare --impls pure,PORT` compared the
    port with itself and said bitwise equal, exit 0 (sixth hostile pass)."""
    import pure

    name = port(tmp_path, monkeypatch, HIJACKS_PURE)
    assert_user_error(call(check.main, name), f"{name} replaced this project's module pure when imported")
    assert sys.modules["pure"] is pure


LOSSES_OF_A_ROW = """
    import dataclasses

    import pure


    def impl():
        base = pure.impl()

        def train_step(state, batch, cfg):  # planted: the loss as a 1-vector
            state, loss = base.train_step(state, batch, cfg)
            return state, loss[None]

        def train_steps(state, batches, cfg):  # planted: the losses as one row, (1, k)
            state, losses = base.train_steps(state, batches, cfg)
            return state, losses[None, :]
        return dataclasses.replace(base, train_step=train_step, train_steps=train_steps)
    """


def test_a_port_giving_losses_of_another_shape_is_named(tmp_path, monkeypatch):
    """Losses of shape (1, k) from train_steps, or a loss of shape (1,) from train_step, were read as
    the right ones (the parameters are the pure twin's) and `check` said bitwise equal (seventh
    hostile pass): each is a row naming the function and the shape asked for, exit 1."""
    name = port(tmp_path, monkeypatch, LOSSES_OF_A_ROW)
    code, out, err = call(check.main, name, "--shapes", "default", "--modes", "jit", "--kinds", "update,updates",
                          "--json", str(tmp_path / "c.json"))
    assert code == 1 and "Traceback" not in out + err, out + err
    # in --json, a row that never compared holds its error and no verdict (it said "bitwise equal", compared 0:
    # twelfth hostile pass)
    row = next(c for c in json.loads((tmp_path / "c.json").read_text())["checks"] if c["case"] == "updates-default-jit")
    assert row["level"] == "different" and row["verdict"] is None and "its loss has shape (1, 10)" in row["error"], row
    assert f"{name}'s train_steps raised ValueError: its loss has shape (1, 10): return one loss per step, " \
           "shape (10,)" in out, out
    assert f"{name}'s train_step raised ValueError: its loss has shape (1,): return a scalar loss, shape ()" in out, out



def test_a_step_returning_a_list_is_its_pair_and_a_keyword_batches_is_read():
    """[state, loss] is the same pair as (state, loss) (it was refused as "no (state, loss) pair"), and
    train_steps called with batches= is held to one loss per step like a positional one (the shape
    check read the second positional argument only): the guard, called as the commands call it."""
    import numpy as np

    from compare.impls import guarded
    from compare.programs import PortError

    step = guarded("myport", "train_step", lambda state, batch, cfg: [state, np.float32(1.0)])
    assert step({"w": 1}, np.zeros(16, np.int32), None) == ({"w": 1}, np.float32(1.0))
    steps = guarded("myport", "train_steps", lambda state, batches, cfg: (state, np.zeros((1, 10), np.float32)))
    with pytest.raises(PortError, match=r"its loss has shape \(1, 10\): return one loss per step, shape \(10,\)"):
        steps({"w": 1}, batches=np.zeros((10, 16), np.int32), cfg=None)
    right = guarded("myport", "train_steps", lambda state, batches, cfg: (state, np.zeros(10, np.float32)))
    assert right({"w": 1}, cfg=None, batches=np.zeros((10, 16), np.int32))[1].shape == (10,)

OTHER_KEY_SAMPLER = """
    import dataclasses

    import jax
    import pure


    def impl():
        base = pure.impl()

        def sample_tokens(params, prompt, prompt_len, cfg, *, key, num_samples, temperature):  # planted: another key
            return base.sample_tokens(params, prompt, prompt_len, cfg, key=jax.random.fold_in(key, 1),
                                      num_samples=num_samples, temperature=temperature)
        return dataclasses.replace(base, sample_tokens=sample_tokens)
    """


def test_names_that_differ_under_bitwise_weights_blame_the_pair_whose_names_differ(tmp_path, monkeypatch):
    """Bitwise-equal weights and one key cannot sample different names. With three implementations the
    verdict blamed the first pair (pure ~ flax_port, whose names were identical); with two, it read
    "verdict: bitwise equal: ..." while the exit code was 1 (eighth hostile pass). The pair whose names
    differ is named, every line says different, the JSON too; the twins beside it stay bitwise (the twin)."""
    name = port(tmp_path, monkeypatch, OTHER_KEY_SAMPLER)
    out_json = tmp_path / "v.json"
    code, out, err = call(run.main, "--impls", f"pure,flax_port,{name}", "--steps", "2", "--num-samples", "2",
                          "--json", str(out_json))
    assert code == 1 and err == "", err
    assert "  pure ~ flax_port: bitwise equal" in out, out
    assert f"  pure ~ {name}: different: sampled names differ although the parameters are bitwise equal" in out, out
    assert f"verdict: different (the least equal pair: pure ~ {name}, whose sampled names differ)" in out, out
    pairs = json.loads(out_json.read_text())["pairs"]
    assert pairs["pure~flax_port"]["level"] == "bitwise equal" and pairs["pure~flax_port"]["sampled_names_identical"]
    assert pairs[f"pure~{name}"]["level"] == "different" and not pairs[f"pure~{name}"]["sampled_names_identical"]
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "2")
    last = out.strip().splitlines()[-1]
    assert code == 1 and last.startswith("verdict: different: sampled names differ although the parameters"), last


HARD_CODED = {  # a port that ignores a setting the user can change -> the quick grid's row that catches it
    "lr": ("train_step=lambda s, b, cfg: base.train_step(s, b, dataclasses.replace(cfg, learning_rate=0.01)), "
           "train_steps=lambda s, b, cfg: base.train_steps(s, b, dataclasses.replace(cfg, learning_rate=0.01))",
           "n_embd24_3heads", "update   n_embd24_3heads"),
    "steps": ("train_steps=lambda s, b, cfg: base.train_steps(s, b, dataclasses.replace(cfg, num_steps=1000))",
              "2layers", "updates  2layers"),
    "temperature": ("sample_tokens=lambda *a, temperature, **k: base.sample_tokens(*a, temperature=0.5, **k)",
                    "block32", "samples  block32"),
    # a sampler that rebuilds the model's config and forgets the layer count (ninth hostile pass)
    "layers": ("sample_tokens=lambda p, t, n, cfg, **k: base.sample_tokens(p, t, n, dataclasses.replace(cfg, "
               "n_layer=1), **k)", "2layers", "samples  2layers"),
    # a sampler with BOS hard-coded as 26 (the vocabulary is the user's --data: tenth pass)
    "vocabulary": ("sample_tokens=lambda p, t, n, cfg, **k: base.sample_tokens(p, t, n, dataclasses.replace(cfg, "
                   "vocab_size=27), **k)", "block32", "samples  block32"),
    # a sampler that ignores its key and draws with PRNGKey(0), the grid's seed (fifteenth pass)
    "key": ("sample_tokens=lambda p, t, n, cfg, *, key, **k: base.sample_tokens(p, t, n, cfg, "
            "key=__import__('jax').random.PRNGKey(0), **k)", "default", "samples  default"),
    # a state_from_flat that drops Adam's step count (every check started at step 0: tenth pass)
    "adam step": ("state_from_flat=lambda flat, opt, cfg: base.state_from_flat(flat, {**opt, 'step': 0 * opt['step']}, "
                  "cfg)", "n_embd24_3heads", "update   n_embd24_3heads"),
}


@pytest.mark.parametrize("setting", sorted(HARD_CODED))
def test_a_port_hard_coding_a_setting_is_different_at_a_quick_row(setting, tmp_path, monkeypatch):
    """A port that ignores cfg.learning_rate, cfg.num_steps or the temperature it is given passed
    every row of `check` (the grid ran at the defaults only: eighth hostile pass); the shapes other
    than the default run at other settings (compare/equivalence.py: OFF_DEFAULT), and the row of the
    quick tier that uses the setting says different. So does a sampler that forgets cfg.n_layer
    (sampling ran at one layer only in the quick tier: ninth pass). Its twin: the unchanged twin at that shape is
    bitwise (tests/test_compare.py's grid)."""
    change, shape, row = HARD_CODED[setting]
    name = port(tmp_path, monkeypatch, f"import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n"
                                       f"    return dataclasses.replace(base, {change})\n")
    # the row's kind alone (--kinds): its program holds that kind only, a fraction of the group's compile
    code, out, err = call(check.main, name, "--shapes", shape, "--modes", "jit", "--kinds", row.split()[0])
    assert code == 1 and "Traceback" not in out + err, out + err
    line = next(ln for ln in out.splitlines() if ln.startswith(row))
    assert " different " in line, out



@pytest.mark.parametrize("builder", ["schedule_stops_decaying()", "schedule_with_a_floor()"])
def test_a_schedule_that_goes_wrong_late_is_different_at_a_quick_row(builder, tmp_path, monkeypatch):
    """A learning rate held from step 500 on passed every row of both tiers, which all ran in the
    schedule's first steps (fourteenth hostile pass), and one with a floor at 10% of lr passed a
    start three quarters through (fifteenth): the ten updates at 2 layers run the last steps of a
    4000-step schedule (compare/equivalence.py: LATE_STEP)."""
    name = port(tmp_path, monkeypatch, f"import planted\n\n\ndef impl():\n    return planted.{builder}\n")
    code, out, err = call(check.main, name, "--shapes", "2layers", "--modes", "jit", "--kinds", "updates")
    assert code == 1 and " different " in next(ln for ln in out.splitlines() if ln.startswith("updates  2layers")), out

def test_an_empty_sampled_name_is_shown_as_one(tmp_path, monkeypatch):
    """A name that ends at once (BOS first) printed nothing, and its row read as if it had one column
    (ninth hostile pass): it is shown as "". The port's first name is empty; pure's is not."""
    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n"
                                       "    return dataclasses.replace(base, sample_tokens=lambda p, t, n, cfg, **k: "
                                       "base.sample_tokens(p, t, n, cfg, **k).at[0].set(cfg.vocab_size - 1))\n")
    code, out, err = call(run.main, "--impls", f"pure,{name}", "--steps", "2", "--num-samples", "2")
    first = next(ln for ln in out.splitlines() if ln.startswith("sample  1: "))
    assert code == 1 and first.split()[3:] == ['""', "<-", "differs"], out


def test_a_row_that_where_finds_within_rounding_stays_different_and_says_why(tmp_path, monkeypatch):
    """A port whose train_steps takes the schedule from the scan's own counter (eleventh hostile pass):
    where walks train_step and finds nothing beyond rounding, and a re-judgement on where's terms
    excused such rows, a weight decay and a summed loss too. The row stays different, and the line
    under it says what where does not look at: where --case now sets the row itself beside its walk
    (it said "equal to float32 rounding", or "bitwise equal" for a train_steps returning shifted losses,
    on the very case check sent the user to: twentieth hostile pass)."""
    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n"
                                       "    return dataclasses.replace(base, train_steps=lambda s, b, cfg: "
                                       "base.train_steps(s, b, dataclasses.replace(cfg, num_steps=1000)))\n")
    code, out, err = call(check.main, name, "--shapes", "2layers", "--modes", "jit")
    assert code == 1 and next(ln for ln in out.splitlines() if ln.startswith("updates  2layers")).split()[5] == \
        "different", out
    assert "first differs at: train_steps() (update, the check's updates-2layers-jit): different" in out, out
    assert "why: the check's row is different (" in out and "while every step walked from a shared state" in out, out
    code, out, err = call(where.main, "--impls", f"pure,{name}", "--case", "updates-2layers-jit")
    assert code == 1 and "where: different" in out and "first differs at: train_steps()" in out, out


@pytest.mark.parametrize("change", [
    # the schedule's denominator off by one: 1e-6 of lr a step, within rounding at every walked step
    "train_step=lambda s, b, cfg: base.train_step(s, b, dataclasses.replace(cfg, num_steps=cfg.num_steps + 1)), "
    "train_steps=lambda s, b, cfg: base.train_steps(s, b, dataclasses.replace(cfg, num_steps=cfg.num_steps + 1))",
    # train_steps' losses shifted by one step: the walk runs train_step alone
    "train_steps=lambda s, b, cfg: (lambda out: (out[0], __import__('jax').numpy.roll(out[1], 1)))("
    "base.train_steps(s, b, cfg))",
], ids=["schedule_off_by_one", "losses_shifted"])
def test_where_on_the_case_check_names_is_different_where_the_row_is(change, tmp_path, monkeypatch):
    """`where --case`, the command check prints under a different row, said "equal to float32 rounding"
    or "bitwise equal" for these two (twentieth hostile pass): its walk steps from a shared state with
    train_step. The check's row is now judged beside the walk, and names what the walk cannot see."""
    name = port(tmp_path, monkeypatch, f"import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n"
                                       f"    return dataclasses.replace(base, {change})\n")
    code, out, err = call(where.main, "--impls", f"pure,{name}", "--case", "updates-default-jit")
    said = "first differs at: train_steps() (update, the check's updates-default-jit): different"
    assert code == 1 and said in out, out + err


MUTATES = """
    import dataclasses

    import pure


    def impl():
        base = pure.impl()

        def state_from_flat(flat, opt, cfg):  # planted: the caller's dict edited in place, then undone on a copy
            flat["lm_head"] = flat["lm_head"].T
            mine = dict(flat, lm_head=flat["lm_head"].T)
            return base.state_from_flat(mine, opt, cfg)
        return dataclasses.replace(base, state_from_flat=state_from_flat)
    """


def test_a_port_editing_what_it_is_handed_harms_no_one(tmp_path, monkeypatch):
    """A state_from_flat that transposes the caller's lm_head in place: as the reference, pure was
    blamed for the damaged start the grid shares, rows changing from run to run (twelfth hostile pass);
    a train_step editing the tuple state's params dict in place would damage the shared state of every
    later case. Each function of a port works on its own copy of the dicts, lists and tuples it is
    handed: both ports compute pure's numbers and are bitwise, either way round, and the start stays whole."""
    name = port(tmp_path, monkeypatch, MUTATES)
    edits_state = port(tmp_path, monkeypatch, """
        import dataclasses

        import pure


        def impl():
            base = pure.impl()

            def train_step(state, batch, cfg):  # an edit in place of what it was handed, then pure's step
                params = state[0]
                params["wte"] = params["wte"] * 1.0
                return base.train_step(state, batch, cfg)
            return dataclasses.replace(base, train_step=train_step)
        """)
    for argv in ([name], ["pure", "--against", name], [edits_state]):
        code, out, err = call(check.main, *argv, "--shapes", "default", "--modes", "jit")
        assert code == 0 and "verdict: bitwise equal" in out, out + err
    code, out, err = call(check.main, "flax_port", "--shapes", "default", "--modes", "jit")  # the start unharmed
    assert code == 0, out


def test_wheres_why_names_the_weight_decay_and_no_variant_microgpts_adam_matches_as_well(tmp_path, monkeypatch,
                                                                                         capsys):
    """A weight decay of a few ulps a step (AdamW's p - lr*wd*p, wd 5e-5): the one-step row is within
    rounding, and its why named "the moments not carried over", which at step 0 is microgpt's Adam
    itself (twelfth hostile pass); later the row was called rounding (the sixth session). Judged on
    its own inputs, entry by entry, it is the weight decay, named, exit 1, and no variant that
    microgpt's Adam matches as well."""
    from common.cli import run_cli
    from compare import where

    name = port(tmp_path, monkeypatch, "import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n\n"
                                       "    def train_step(state, batch, cfg):\n"
                                       "        (p, o), loss = base.train_step(state, batch, cfg)\n"
                                       "        return ({k: v - 5e-7 * v for k, v in p.items()}, o), loss\n"
                                       "    return dataclasses.replace(base, train_step=train_step)\n")
    assert run_cli(where.main, ["--impls", f"pure,{name}"]) == 1
    why = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("why: "))
    assert "microgpt's Adam with weight decay" in why and "carried over" not in why, why
