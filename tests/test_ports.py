"""Implementations named by module path: every command that takes an implementation takes a port
it does not know by name, and every way a module can fail to be one is one line and exit 2.

The modules are written under tmp_path and put on sys.path, as a user's own package would be;
`compare check` on a port with a planted difference (pure with a wrong RMSNorm epsilon) exits 1."""

import contextlib
import io
import itertools
import json
import textwrap

import pytest

from common.cli import run_cli
from compare import against, bench, check, impls, lesson, run
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
    code = run_cli(run.main, ["--steps", "10", "--num-samples", "2", "--no-cache", "--impls", f"pure,{name}"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"one initialisation converted into pure, {name}" in out
    assert [ln for ln in out.splitlines() if ln.startswith("verdict:")][0].startswith("verdict: different")


def test_check_exits_1_on_a_planted_epsilon(tmp_path, monkeypatch, capsys):
    name = port(tmp_path, monkeypatch, WRONG_EPS)
    verdict = tmp_path / "check.json"
    code = run_cli(check.main, [name, "--shapes", "default", "--json", str(verdict)])
    out = capsys.readouterr().out
    assert code == 1, out
    rows = {ln.split()[0] + " " + ln.split()[2]: ln for ln in out.splitlines() if ln.startswith(("logits", "grads"))}
    assert "different" in rows["logits jit"] and "different" in rows["grads no_jit"], out
    assert "first failure: logits-default-jit" in out
    payload = json.loads(verdict.read_text())
    assert payload["exit_code"] == 1 and payload["first_failure"]["case"] == "logits-default-jit"
    # every check of numbers sees the epsilon; eight sampled names need not (a 1e-6 change in the
    # logits rarely moves a draw)
    assert {c["level"] for c in payload["checks"] if c["kind"] != "samples"} == {"different"}


def test_the_pytest_helper_fails_on_a_planted_epsilon(tmp_path, monkeypatch):
    name = port(tmp_path, monkeypatch, WRONG_EPS)
    with pytest.raises(AssertionError, match="logits-default-jit: .* different: .* ulps of scale in logits"):
        check.assert_case(name, check.Case("logits"))


def test_check_refuses_bad_flags_in_one_line():
    assert_user_error(call(check.main, "examples.equinox_port", "--shapes", "tiny"), "--shapes 'tiny'")
    assert_user_error(call(check.main, "pure"), "name another implementation")
