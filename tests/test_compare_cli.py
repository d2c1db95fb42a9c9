"""`python -m compare`: the side-by-side run, its verdict (and that the verdict can say no),
the plot, the benchmark. The lesson (`compare diff`, `compare lesson`) is tests/test_lesson.py."""

import json
import os
import re

import pytest

import flax_port.optim
from common import outputs
from common.cli import run_cli
from compare import equivalence, run
from conftest import SHORT_RUN


def test_side_by_side_run_agrees_and_draws_the_plot(tmp_path, capsys):
    """The README's first command, through its entry point in this process (the same run as the
    checkpoint test below: one compile each, shared; tests/test_shell.py runs it as a process)."""
    png = tmp_path / "curves.png"
    code = run_cli(run.main, [*SHORT_RUN, "--plot", str(png)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out.splitlines()
    rows = [ln for ln in out if ln.startswith("step ") and " / " in ln]
    assert [ln[:16] for ln in rows] == ["step    1 /   30", "step   10 /   30", "step   20 /   30", "step   30 /   30"]
    assert all(ln.endswith("| 0 (all bitwise equal)") for ln in rows)
    assert sum(ln.startswith("sample ") for ln in out) == 20
    assert out[-1].startswith("verdict: bitwise equal")
    assert out[-1].endswith("sampled names identical")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and outputs.is_plot(str(png))  # marked: a rerun replaces it


@pytest.mark.full
@pytest.mark.parametrize("flags", [equivalence.shape_flags(shape) for shape in equivalence.SHAPES]
                         + [["--batch-size", str(equivalence.BATCH)]], ids=[*equivalence.SHAPES, "batch8"])
def test_1000_lockstep_steps_are_bitwise_for_every_pair_at_every_shape(flags, capsys):
    """The long runs: `python -m compare` as the README shows it, all three from one initialisation,
    at every shape of the grid and with batches of 8 names: bitwise after every one of 1000 steps.
    The README's verdict lines are this run's, at the default shape, on whatever machine runs it."""
    code = run.main(["--steps", "1000", "--num-samples", "8", *flags])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[-1] == ("verdict: bitwise equal: every pair, parameters after every one of 1000 steps; "
                       "sampled names identical"), out[-6:]
    if not flags:
        from conftest import ROOT

        readme = (ROOT / "README.md").read_text()
        verdicts = [ln for ln in out if ln.startswith(("  pure ~ ", "  flax_port ~ ", "verdict: "))]
        assert len(verdicts) == 4 and all(f"\n{ln}\n" in readme for ln in verdicts), verdicts


def test_the_verdict_names_the_first_step_and_parameter_that_differ(monkeypatch, capsys, tmp_path):
    real_adam = flax_port.optim.adam

    def adam_with_wrong_eps(cfg):
        import dataclasses

        return real_adam(dataclasses.replace(cfg, adam_eps=1e-7))

    monkeypatch.setattr(flax_port.optim, "adam", adam_with_wrong_eps)
    verdict_json = tmp_path / "verdict.json"
    code = run.main([*SHORT_RUN, "--impls", "pure,flax_port", "--json", str(verdict_json)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    last = [ln for ln in out if ln.startswith("verdict:")][0]
    assert re.match(r"verdict: different: parameters of every 10-step chunk run from the same state beyond 16 ulps "
                    r"of their scale, first at (wte|wpe|lm_head|l0\.\w+)\[\d+, \d+\] at step 1: ", last), last
    rows = [ln for ln in out if ln.startswith("step ") and " / " in ln]
    assert len(rows) == 4 and all(re.search(r"\| \d\.\d\de-\d\d = [\d.e+]+ ulps \((wte|wpe|lm_head|l0\.\w+), "
                                            r"pure~flax_port\)$", ln) for ln in rows), rows
    payload = json.loads(verdict_json.read_text())
    assert payload["written_by"] == "microgpt-jax compare" and outputs.is_json(str(verdict_json))
    assert payload["level"] == "different" and payload["exit_code"] == 1
    assert payload["pairs"]["pure~flax_port"]["same_state_chunks"]["first_over"]["step"] == 1


def test_a_nudged_weight_ends_different_at_step_0(monkeypatch, capsys):
    """A converter that moves one weight by 1e-4 on its way into nnx_port: caught before any step."""
    import jax.numpy as jnp

    from compare import convert

    real_state = convert.state

    def nudging_state(train_state, src, dst, cfg):
        if dst.name != "nnx_port":
            return real_state(train_state, src, dst, cfg)
        params, opt = src.state_to_flat(train_state)
        params = dict(params, **{"l0.wq": jnp.asarray(params["l0.wq"]).at[0, 0].add(1e-4)})
        return dst.state_from_flat(params, opt, cfg)

    monkeypatch.setattr(convert, "state", nudging_state)
    code = run.main([*SHORT_RUN, "--impls", "pure,nnx_port"])
    last = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("verdict:")][0]
    assert code == 1
    assert last.startswith("verdict: different: parameters of every 10-step chunk run from the same state beyond "
                           "16 ulps of their scale, first at l0.wq[0, 0]: 0.0001 apart"), last


def test_rounding_alone_is_the_middle_level_and_exits_0(monkeypatch, capsys):
    """pure's old embedding lookup (plain indexing: the op found to differ, compare/tolerances.py)
    put back at n_embd 24: the free runs drift apart, each same-state chunk stays within the bound."""
    import jax.numpy as jnp

    import pure.model

    def forward_with_indexing(params, tokens, cfg):
        x = params["wte"][tokens] + params["wpe"][jnp.arange(tokens.shape[0])]
        x = pure.model.rmsnorm(x, cfg)
        for layer in range(cfg.n_layer):
            x = pure.model.block(params, x, cfg, layer)
        return x @ params["lm_head"].T

    monkeypatch.setattr(pure.model, "forward", forward_with_indexing)
    code = run.main(["--n-embd", "24", "--n-head", "3", "--steps", "30", "--log-every", "10", "--num-samples", "2",
                     "--impls", "pure,flax_port"])
    out = capsys.readouterr().out.splitlines()
    last = [ln for ln in out if ln.startswith("verdict:")][0]
    assert code == 0, last
    assert last.startswith("verdict: equal to float32 rounding: parameters of every 10-step chunk run from the same "
                           "state within 16 ulps of each tensor's scale; first ulp in w"), last
    assert "the free runs drifted apart" in last


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "at least 1 step"),
    (["--plot", "/nonexistent-dir/x.png"], "does not exist"),
    (["--n-embd", "15"], "not divisible"),
    (["--impls", "pure"], "name at least two different implementations"),
    (["--impls", "pure,,flax_port"], "has an empty entry"),  # read as two (where refused it: nineteenth pass)
    (["--impls", "pure,torch"], "torch: no module of that name can be imported here"),
    (["--plot", "same.png", "--json", "same.png"], "both name same.png"),
])
def test_compare_bad_input_is_one_line_exit_2(args, message, capsys):
    """Through the entry point in this process (tests/test_shell.py checks the exit codes of real ones)."""
    try:
        code = run_cli(run.main, args)
    except SystemExit as stop:  # argparse's refusal
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.full  # 17 s from empty caches; the quick tier times a port's import through bench (test_ports.py)
def test_bench_prints_every_row_and_writes_json(tmp_path, capsys, monkeypatch):
    """Runs the benchmark tiny, for its output's shape only: no duration is asserted. In-process, with
    two scaling batch sizes and the fresh interpreters (imports, forced devices) left out: they are
    the same code as the rows that run, and each would add seconds of start-up and compiles. Two of
    the three (pure, and nnx_port with its own way of threading state): flax_port's rows are the
    same code as pure's, and each implementation costs six compiles and an eager warm-up here."""
    import json

    from compare import bench

    children = []
    monkeypatch.setattr(bench, "SCALING_BATCHES", (1, 8))
    monkeypatch.setattr(bench, "import_seconds", lambda pkg, repeats: children.append(pkg) or 1.0)
    monkeypatch.setattr(bench, "forced_devices_rows", lambda args: children.append("devices") or [])
    out = tmp_path / "bench.json"
    # more eager steps than names in the run: the eager timing goes round the names again
    code = bench.main(["--steps", "3", "--repeats", "1", "--eager-steps", "4", "--scaling-steps", "3",
                       "--impls", "pure,nnx_port", "--json", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    for _, label, _ in bench.ROWS:
        assert label.format(steps=3) in stdout
    assert "nnx/pure" in stdout
    figures = json.loads(out.read_text())
    assert set(figures["results"]) == {"pure", "nnx_port"}
    assert all(figures["results"][n]["compiles_during_training"] == 1 for n in figures["results"])
    assert [(row["batch_size"], row["devices"]) for row in figures["scaling"]] == [(1, 1), (8, 1)]
    assert sorted(children) == ["devices", "nnx_port", "pure"]


@pytest.mark.parametrize("argv", [["--devices-rows-json", "mine.json"], ["--devices", "4"]])
def test_bench_has_no_hidden_flag_that_writes_a_file(argv, tmp_path, monkeypatch, capsys):
    """bench handed its child the devices rows' file in a hidden flag: any user could give it (a
    checkpoint overwritten, no mark checked), and `--devices 4` reached it by abbreviation and wrote a
    file named 4 (nineteenth hostile pass). Then a variable held the path, honoured in a child of the
    process that set it, and a user's shell is the parent of every command (twentieth): the child
    now prints its rows to its parent's pipe and writes no file, whoever set the variable."""
    from compare import bench

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:  # argparse's refusal
        run_cli(bench.main, argv)
    code, err = stop.value.code, capsys.readouterr().err
    assert code == 2 and "unrecognized arguments" in err and not list(tmp_path.iterdir()), err
    for value, honoured in ((str(os.getppid()), True), (str(os.getpid()), False), ("1", False), ("", False)):
        monkeypatch.setenv(bench.ROWS_CHILD, value)
        assert bench.rows_child() is honoured, value
    import inspect

    source = inspect.getsource(bench)
    assert "atomic_write" not in source and not re.search(r"\bopen\(", source)  # no file of the child's to aim


def test_bench_imports_in_a_fresh_interpreter():
    from compare import bench

    assert bench.import_seconds("nnx_port", repeats=1) > 0  # it ran, and its figure parsed


def test_compare_save_writes_a_checkpoint_both_trainers_sample_from(tmp_path, capsys):
    from common import checkpoint
    from conftest import cli

    target = tmp_path / "both.npz"
    assert run.main([*SHORT_RUN, "--save", str(target)]) == 0
    flat, fields, chars = checkpoint.load(str(target))
    assert fields["num_steps"] == 30 and chars == "abcdefghijklmnopqrstuvwxyz" and len(flat) == 9
    a = cli("pure", "sample", "--load", str(target))
    b = cli("flax_port", "sample", "--load", str(target))
    assert a[0] == b[0] == 0 and a[1] == b[1] and a[1].count("sample ") == 20


def test_a_save_failing_after_the_plot_was_written_names_the_plot(tmp_path, capsys, monkeypatch):
    """A disk that fills up at the checkpoint, after the plot was written whole: one line that names
    both (the checkpoint not written, the plot already saved), exit 2, no temporary. Its twin: a run
    with no earlier output says nothing was saved."""
    import errno
    import os

    import numpy as np

    def savez_disk_full(f, **arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez_disk_full)
    png, target = tmp_path / "curves.png", tmp_path / "w.npz"
    assert run_cli(run.main, [*SHORT_RUN, "--plot", str(png), "--save", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"compare: error: cannot save to {target} (No space left on device): nothing was written there; "
                   f"already saved: {png}"), err
    assert outputs.is_plot(str(png)) and sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]
    assert run_cli(run.main, [*SHORT_RUN, "--save", str(target)]) == 2
    assert capsys.readouterr().err.strip().endswith("nothing was written there")


def test_compare_stops_on_divergence_naming_the_step_and_saves_nothing(tmp_path, capsys):
    from common.cli import run_cli

    target = tmp_path / "w.npz"
    code = run_cli(run.main, ["--lr", "1e30", "--steps", "8", "--log-every", "4", "--num-samples", "1", "--impls",
                              "pure,flax_port", "--save", str(target)])  # test_ports.py's divergence: pure's programs
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pure: training diverged at step 2: its update made " in err and "lower --lr" in err
    assert not target.exists()


@pytest.mark.parametrize("module, args, message", [
    ("bench", ["--repeats", "5000"], "--repeats 5000: give between 1 and 1,000"),
    ("bench", ["--steps", "0"], "--steps 0: give between 1 and 1,000,000"),
    ("bench", ["--eager-steps", "99999999999"], "--eager-steps 99999999999: give between 1 and 10,000"),
    ("bench", ["--scaling-steps", "2000000"], "--scaling-steps 2000000: give between 1 and 1,000,000"),
    ("nnx_styles", ["99999999999999999999"], "repeats 99999999999999999999: time at most 1,000"),
    ("nnx_styles", ["0"], "repeats 0: time at least 1 repeat"),
])
def test_every_count_has_an_upper_bound(module, args, message, capsys):
    """A mistyped count is refused before any work, in one line, rather than run until killed; the
    bounds' failing twin is each command's default run (the smoke test above, docs/speed.md)."""
    import importlib

    main = importlib.import_module(f"compare.{module}").main
    try:
        code = run_cli(main, args)
    except SystemExit as stop:  # argparse's refusal
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_against_is_read_when_abbreviated_and_refused_when_given_twice():
    """`--agains float64` was "unrecognized arguments" while `--step 2` was read as --steps: the
    entry point routes every prefix argparse would take (from `--a`) to --against; and a flag given
    twice with two values is refused there as everywhere (the last one won, silently)."""
    from compare import against

    assert [w for w in ("--against", "--agains", "--ag=eager", "--a", "--impls", "--against-x", "-a", "--")
            if against.flag(w)] == ["--against", "--agains", "--ag=eager", "--a"]
    assert against.parser().parse_args(["--agains", "float64"]).against == "float64"
    with pytest.raises(SystemExit) as stop:
        against.parser().parse_args(["--against", "float64", "--against", "eager"])
    assert stop.value.code == 2
