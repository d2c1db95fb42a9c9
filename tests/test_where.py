"""Taps and `compare where`: the three twins' taps and their gradients are bitwise equal, taps cost
the trainers' step nothing, and every planted difference (tests/planted.py) is named at its tap."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import planted
import pytest

from compare import equivalence, programs, where
from compare.verdict import BITWISE, DIFFERENT, ROUNDING

OTHER = dict(n_embd=24, n_head=3, n_layer=2, block_size=8)  # the other shape: two layers, 3 heads of 8


def impls():
    import flax_port
    import nnx_port
    import pure

    return {"pure": pure.impl(), "flax_port": flax_port.impl(), "nnx_port": nnx_port.impl()}


@pytest.fixture(scope="module")
def default(cfg):
    """One start and one name at the default shape, and pure's outputs (compiled once)."""
    batch = where.one_batch(cfg, seed=0)
    start = programs.start(cfg, 0)
    return cfg, start, batch, where.outputs(impls()["pure"], start, batch, cfg)


@pytest.mark.parametrize("name", ["flax_port", "nnx_port"])
def test_twins_taps_gradients_and_update_bitwise_at_the_default_shape(default, name):
    cfg, start, batch, ref = default
    report = where.report(ref, where.outputs(impls()[name], start, batch, cfg), cfg)
    assert [r.tap for r in report.rows[:3]] == ["embed", "norm_in", "l0.norm_attn"]  # forward order
    assert report.level == BITWISE and report.first is None, report.lines("")
    assert report.summary() == ["first differs at: none: no row beyond float32 rounding",
                                "first rounds at: none: every row bitwise equal"]
    assert report.exit_code == 0


@pytest.mark.full  # the quick tier: every twin at the default shape above, another shape through the command below
def test_twins_bitwise_at_another_shape_with_a_batch(cfg):
    """Two layers, 3 heads, 3 names (B, T): each tap gains a leading B. Bitwise equality is
    transitive, so pure ~ flax_port and pure ~ nnx_port cover the third pair."""
    other = dataclasses.replace(cfg, **OTHER)
    batch = where.one_batch(other, batch_size=3, seed=1)
    start = programs.start(other, 1)
    ref = where.outputs(impls()["pure"], start, batch, other)
    assert ref["tap/l1.attn_weights"].shape == (3, 3, 8, 8)
    for name in ("flax_port", "nnx_port"):
        report = where.report(ref, where.outputs(impls()[name], start, batch, other), other)
        assert report.level == BITWISE, "\n".join(report.lines(name))


def test_tap_gradient_is_the_loss_gradient(default):
    """d loss / d logits, from the perturbation, equals softmax - one-hot over the real positions
    (computed here in float64; 1e-6 absolute: float32 gradients near 0.05, measured 4e-9 apart)."""
    cfg, _, batch, ref = default
    logits = ref["tap/logits"].astype(np.float64)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[np.arange(len(p)), np.asarray(batch.targets)] -= 1
    expected = p * np.asarray(batch.mask)[:, None] / np.asarray(batch.mask).sum()
    np.testing.assert_allclose(ref["tap_grad/logits"], expected, rtol=0, atol=1e-6)
    assert np.abs(ref["tap_grad/logits"]).max() > 1e-3  # not trivially 0


@pytest.mark.parametrize("name", ["pure", "flax_port", "nnx_port"])
def test_tapped_loss_is_loss_fn_bitwise_op_by_op(cfg, name):
    """Adding zero perturbations is exact: run op by op, the tapped loss is the loss's bits. (Under
    jit XLA may fuse the added zeros differently: measured, a batch's logits 1 ulp apart.)"""
    from common.taps import zero_perturbations

    impl = impls()[name]
    params = impl.params_of(impl.state_from_flat(*programs.start(cfg, 0), cfg))
    batch = where.one_batch(cfg, seed=0)
    with jax.disable_jit():
        loss, taps = impl.tapped_loss(params, batch, cfg, zero_perturbations(cfg, batch.inputs.shape))
        assert np.asarray(loss).tobytes() == np.asarray(impl.loss_fn(params, batch, cfg)).tobytes()
        assert set(taps) == set(zero_perturbations(cfg, (1,)))


# ----------------------------------------------------------------------------- planted differences

@pytest.fixture(scope="module")
def eager(default):
    """pure's outputs op by op: the planted ports (pure with one change) run op by op too, which
    reuses the compiled ops across ports where compiling each port whole would not."""
    cfg, start, batch, _ = default
    return cfg, start, batch, where.outputs(impls()["pure"], start, batch, cfg, jit=False)


@pytest.mark.parametrize("plant", sorted(planted.PLANTED))
def test_where_names_each_planted_difference(eager, plant):
    cfg, start, batch, ref = eager
    build, tap, phase = planted.PLANTED[plant]
    report = where.report(ref, where.outputs(build(), start, batch, cfg, jit=False), cfg, start=start)
    assert (report.differs.tap, report.differs.phase) == (tap, phase), "\n".join(report.lines(plant))
    assert report.first_line().startswith(f"first differs at: {tap} ({phase}): different, ")
    assert report.summary()[1].startswith(f"first rounds at: {tap} ({phase}): different, ")  # nothing rounded before
    assert report.level == DIFFERENT and report.exit_code == 1
    first = next(r for r in report.rows if r.level != BITWISE)
    assert first.tap == tap and all(r.level == BITWISE for r in report.rows[:report.rows.index(first)])
    if plant == "transposed_to_flat":
        assert "transpose" in report.first.why
    else:
        assert "a different computation" in report.first.why, report.first.why


@pytest.mark.parametrize("start_step", [0, 3])
def test_adam_rounded_another_way_is_rounding_and_a_weight_decay_is_not(eager, start_step):
    """A weight decay of 5e-5 is 4 to 16 ulps of a weight's scale a step: within rounding of the other
    side after one step, so `where` called it rounding while `check`'s ten updates called it
    different (the sixth session). Each side's step against microgpt's Adam in float64 on its own
    inputs tells it apart from the same Adam written as PyTorch writes it, which only rounds
    (the failing twin); from step 0 and from step 3 with trained-size moments (op by op: the
    programs the planted ports share)."""
    cfg, start, batch, ref = eager
    if start_step:
        cfg = dataclasses.replace(cfg, **equivalence.OFF_DEFAULT)
        start = programs.start(cfg, 0, start_step)
        ref = where.outputs(impls()["pure"], start, batch, cfg, jit=False)
    decayed = where.report(ref, where.outputs(planted.weight_decay(), start, batch, cfg, jit=False), cfg, start=start)
    assert decayed.level == DIFFERENT and decayed.differs.phase == "update", "\n".join(decayed.lines(""))
    assert "within rounding of each other after one step" in decayed.differs.why
    assert "weight decay 5" in decayed.differs.why or "weight decay 4" in decayed.differs.why, decayed.differs.why
    torch = where.report(ref, where.outputs(planted.adam_as_pytorch_writes_it(), start, batch, cfg, jit=False), cfg,
                         start=start)
    assert torch.level == ROUNDING and torch.differs is None and torch.exit_code == 0, "\n".join(torch.lines(""))

@pytest.mark.parametrize("adam_eps", [1e-8, 1.1e-8])
def test_an_update_adam_amplified_from_a_gradients_rounding_is_judged_on_its_own_inputs(default, adam_eps):
    """A port whose l0.wk gradient is pure's but for 8 ulps of its scale in its smallest entry (float32
    rounding), stepped by Adam in float32 NumPy: where that entry nearly cancels, Adam's first step
    m̂/(√v̂ + eps) ≈ g/(|g| + eps) makes the new weight differ beyond rounding. Judged on each side's
    own inputs the row is float32 rounding, the entry named; with eps 1.1e-8 (the failing twin) it
    stays different."""
    cfg, start, _, ref = default
    f32 = np.float32
    g = ref["grad/l0.wk"].copy()
    i = int(np.argmin(np.where(g != 0, np.abs(g), np.inf)))
    g.flat[i] += 8 * np.spacing(np.abs(g).max())
    m, v = f32(1 - cfg.beta1) * g, f32(1 - cfg.beta2) * (g * g)
    step = (m / (f32(1) - f32(cfg.beta1))) / (np.sqrt(v / (f32(1) - f32(cfg.beta2))) + f32(adam_eps))
    port = ref | {"grad/l0.wk": g, "m/l0.wk": m, "v/l0.wk": v,
                  "params/l0.wk": np.asarray(start[0]["l0.wk"]) - f32(cfg.learning_rate) * step}
    plain = next(r for r in where.report(ref, port, cfg).rows if r.tap == "params/l0.wk")
    assert plain.level == DIFFERENT and plain.ulps > 16  # the case: against each other, beyond rounding
    report = where.report(ref, port, cfg, start=start)
    row = next(r for r in report.rows if r.tap == "params/l0.wk")
    lines = "\n".join(report.lines(""))
    assert report.summary()[1].startswith("first rounds at: l0.wk (gradient): equal to float32 rounding"), lines
    if adam_eps == cfg.adam_eps:
        assert report.level == row.level == ROUNDING and row.ulps == plain.ulps, "\n".join(report.lines(""))
        entry = f"l0.wk{[int(k) for k in np.unravel_index(i, g.shape)]}"
        assert f"where √v̂ is near 0: entries {entry} (" in row.own and row.own.endswith("float32 rounding")
        assert f"  params/l0.wk (update): {row.own}" in report.lines(""), "\n".join(report.lines(""))
    else:
        assert report.level == row.level == DIFFERENT and row.own.endswith("a different computation"), row.own
        assert "b's beyond 16: Adam's step" in row.own, row.own


# ----------------------------------------------------------------------------- taps cost nothing

def lowered_step(impl, cfg, batch):
    jax.clear_caches()  # jit keeps a trace per function: without this a patched `tap` would not be traced
    state = impl.state_from_flat(*programs.start(cfg, 0), cfg)
    return jax.jit(impl.train_step, static_argnums=2).lower(state, batch, cfg).as_text()


def test_taps_leave_the_trainers_step_the_same_program(default, monkeypatch):
    """The train step lowers to the same text whether each twin's tap mechanism is there or
    replaced by the identity; and a tap that always added its zeros (as NNX's perturb does outside
    nnx.capture) would change it: the check can fail."""
    import flax_port.model
    import nnx_port.model
    import pure.model

    cfg, _, batch, _ = default
    modules = {"pure": pure.model, "flax_port": flax_port.model, "nnx_port": nnx_port.model}
    with_taps = {name: lowered_step(impl, cfg, batch) for name, impl in impls().items()}
    for module in modules.values():
        monkeypatch.setattr(module, "tap", lambda owner, name, x: x)
    for name, impl in impls().items():
        assert lowered_step(impl, cfg, batch) == with_taps[name], name
    monkeypatch.setattr(pure.model, "tap", lambda owner, name, x: x + jnp.zeros_like(x))
    assert lowered_step(impls()["pure"], cfg, batch) != with_taps["pure"]


# ----------------------------------------------------------------------------- the command

def test_where_command_bitwise_other_shape_and_bad_impls(capsys):
    from common.cli import run_cli

    code = run_cli(where.main, ["--impls", "pure,nnx_port", "--n-embd", "8", "--n-head", "2", "--block-size", "8"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "where: bitwise equal; 0 of " in out and "first differs at: none" in out
    assert "forward   l0.attn_weights        2x8x8" in out
    code = run_cli(where.main, ["--impls", "pure,flax_port"])  # the table docs/where.md shows (test_docs: its count)
    out = capsys.readouterr().out
    from common.config import Config

    assert code == 0 and f"where: bitwise equal; 0 of {len(where.entry_order(Config(vocab_size=27)))} entries " in out
    for impls in ("pure", "pure,pure", "pure, pure", "pure,flax_port,nnx_port"):  # one named twice: as compare refuses
        code = run_cli(where.main, ["--impls", impls])
        err = capsys.readouterr().err
        assert code == 2 and "name exactly two different" in err and "Traceback" not in err, (impls, err)
        assert len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- what a port gets wrong, localized

def port_module(tmp_path, monkeypatch, builder: str, name: str) -> str:
    """A module outside the repo holding a planted port (tests/planted.py), importable by its path."""
    (tmp_path / f"{name}.py").write_text(f"import planted\n\n\ndef impl():\n    return planted.{builder}()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def where_says(*argv: str) -> tuple[int, list[str]]:
    """`compare where argv` through its entry point: (exit code, printed lines)."""
    import contextlib
    import io

    from common.cli import run_cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_cli(where.main, list(argv))
    return code, out.getvalue().splitlines()


@pytest.mark.parametrize("mistake", sorted(planted.LOCALIZED))
def test_where_names_what_a_port_gets_wrong_on_its_first_differs_line(mistake, tmp_path, monkeypatch):
    """Each mistake in a port outside the repo, named by `first differs at:` (the step, the state entry,
    the sampling position and tap), with its why, and the first row that rounds on a line of its own.
    Op by op (--no-jit): the ports share the compiled operations."""
    build, how, place, why = planted.LOCALIZED[mistake]
    name = port_module(tmp_path, monkeypatch, build.__name__, f"port_{mistake}")
    extra = {"step": [], "steps": ["--steps", "3"], "sample": ["--sample"]}[how]
    code, lines = where_says("--impls", f"pure,{name}", "--no-jit", *extra)
    differs = next(ln for ln in lines if ln.startswith("first differs at: "))
    assert code == 1 and differs.startswith(f"first differs at: {place}"), "\n".join(lines)
    assert any(ln.startswith("first rounds at: ") for ln in lines)
    assert why in next(ln for ln in lines if ln.startswith("why: ")), "\n".join(lines)
    if mistake == "rounds_and_wrong_eps":  # rounding first, before the update, on its own line
        # Where the division first rounds differently from rsqrt-times depends on the CPU: in the
        # forward pass natively and under AVX2 here, only in the backward pass under SSE4_2 (no FMA),
        # 2026-12-07. What holds on any CPU: a row before the update rounds, and the update differs.
        rounds = next(ln for ln in lines if ln.startswith("first rounds at: "))
        assert "equal to float32 rounding" in rounds and "(update" not in rounds, "\n".join(lines)
        assert any(f"({phase})" in rounds for phase in ("forward", "backward", "gradient")), "\n".join(lines)



def test_a_sample_tokens_unlike_its_tapped_sample_is_where_the_samples_row_parts(tmp_path, monkeypatch):
    """check's samples row runs sample_tokens; where ran tapped_sample only, and a port whose own
    sampler dropped the prompt was "bitwise equal; every token the same" there (fourteenth hostile
    pass). Each side's sample_tokens is a row too, and the why names whose."""
    name = port_module(tmp_path, monkeypatch, "sampler_drops_the_prompt", "port_sampler_drops_the_prompt")
    code, lines = where_says("--impls", f"pure,{name}", "--case", "samples-default-jit")
    assert code == 1 and any(ln.startswith("first differs at: sample_tokens() (sampling): different")
                             for ln in lines), "\n".join(lines)
    why = next(ln for ln in lines if ln.startswith("why: "))
    assert "the tapped samplers' tokens and taps were bitwise equal" in why and "b's sample_tokens itself" in why

@pytest.mark.parametrize("how", [[], ["--steps", "3"], ["--sample"]], ids=["step", "steps", "sample"])
def test_the_unchanged_twin_never_parts(how, tmp_path, monkeypatch):
    """The failing twins' twin: pure as a port outside the repo, under jit, never parts."""
    name = port_module(tmp_path, monkeypatch, "unchanged", "port_unchanged")
    code, lines = where_says("--impls", f"pure,{name}", *how)
    assert code == 0 and "first differs at: none: no row beyond float32 rounding" in lines, "\n".join(lines)
    assert "first rounds at: none: every row bitwise equal" in lines


def test_a_port_that_raises_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    (tmp_path / "port_raising.py").write_text(
        "import dataclasses\nimport pure\n\n\ndef impl():\n    base = pure.impl()\n\n"
        "    def boom(*args, **kwargs):\n        raise ValueError('my sampler is not done')\n\n"
        "    return dataclasses.replace(base, sample_tokens=boom, tapped_sample=None)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, lines = where_says("--impls", "pure,port_raising", "--sample")
    # named by the path it was given (port_raising), not by its Impl's name, which it copied from pure
    assert code == 1 and lines == [
        "where: different: port_raising's sample_tokens raised ValueError: my sampler is not done"]


def test_a_case_of_check_is_reproduced_and_bad_cases_are_one_line(capsys):
    from common.cli import run_cli

    case = where.case_of("update-default-b8-no_jit")
    assert (case.kind, case.shape, case.batch, case.devices, case.mode) == ("update", "default", 8, 1, "no_jit")
    assert str(case) == "update-default-b8-no_jit"
    assert where.case_of("grads-n_embd24_3heads-no_jit").shape == "n_embd24_3heads"
    assert where.command_for(where.case_of("grads-default-b8-4dev-jit"), "my.port", "pure") == (
        "XLA_FLAGS=--xla_force_host_platform_device_count=4 uv run python -m compare where --impls pure,my.port "
        "--case grads-default-b8-4dev-jit")
    # ids check never prints (a batch of 0, 1 device written out, a kind the batch rows do not take,
    # a batch size of its own) are refused, not run as something else
    for bad in ("grads", "grads-tiny-jit", "grads-default-x8-jit", "loss-default-jit", "grads-default-b0-jit",
                "grads-default-b8-1dev-jit", "samples-default-b8-jit", "grads-2layers-b4-jit",
                "grads-default-b99999999-jit"):
        assert run_cli(where.main, ["--case", bad]) == 2
        err = capsys.readouterr().err
        assert f"--case {bad!r}" in err and len(err.strip().splitlines()) == 1, err
    # a flag beside --case would be ignored: refused, each named (the case's own flags are the check's)
    assert run_cli(where.main, ["--case", "update-default-b8-jit", "--steps", "3", "--n-embd", "32", "--sample"]) == 2
    err = capsys.readouterr().err
    assert "from the check: drop --steps, --sample, --n-embd" in err and len(err.strip().splitlines()) == 1, err
    assert run_cli(where.main, ["--case", "update-default-b8-jit", "--batch-size=1"]) == 2  # its default, still given
    assert "drop --batch-size" in capsys.readouterr().err
    # --sample walks no step, and --num-samples is --sample's: ignored, until the seventh hostile pass
    for argv, says in ((["--sample", "--steps", "5", "--batch-size", "4"], "no step: drop --steps, --batch-size"),
                       (["--num-samples", "3"], "--num-samples belongs to --sample"),
                       (["--temperature", "0.8"], "--temperature belongs to --sample"),
                       (["--temp", "0.8"], "--temperature belongs to --sample"),  # abbreviated: got past it
                       (["--sample", "--temperature", "0"], "temperature=0.0: use a temperature from"),
                       # where's own bound, not the trainers' 10,000 (which it then refused: twelfth pass)
                       (["--sample", "--num-samples", "0"], "--num-samples 0: sample between 1 and 1000 names")):
        assert run_cli(where.main, argv) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err
    # without --case, --batch-size has the trainers' bound (it ran for minutes at 10^8)
    assert run_cli(where.main, ["--batch-size", "100000000"]) == 2
    assert "positions, all held in memory" in capsys.readouterr().err
