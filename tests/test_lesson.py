"""The lesson: `compare diff` in the terminal and `compare lesson --html` as a page. Lines face
their counterparts, nothing is wider than the terminal, colour obeys NO_COLOR, the checks beside
each topic run and can fail, and the page holds every line of the live source and no URL."""

import base64
import html
import inspect
import re
import sys

import pytest

import flax_port.model
from common.cli import run_cli
from compare import lesson, page
from conftest import run_module

PAIR = lesson.DEFAULT_PAIR


@pytest.fixture
def fresh_outcomes():
    """For a test that patches the code: the checks run afresh, and what it saw is forgotten."""
    saved = dict(lesson.OUTCOMES)
    lesson.OUTCOMES.clear()
    yield
    lesson.OUTCOMES.clear()
    lesson.OUTCOMES.update(saved)


@pytest.fixture(scope="module")
def built_page(tmp_path_factory):
    """The page, built once through the command (running every check, which `--check` then
    reuses), without the side-by-side run (--steps 0)."""
    target = tmp_path_factory.mktemp("lesson") / "lesson.html"
    code = run_cli(lesson.lesson_main, ["--html", str(target), "--steps", "0", "--no-cache"])
    return code, target.read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    found = re.findall(r'<section id="topic-(\w+)">(.*?)</section>', text, re.S)
    return dict(found)


def code_cells(section: str) -> set[str]:
    cells = re.findall(r'<td class="src[^"]*"[^>]*>(.*?)</td>', section, re.S)
    return {html.unescape(re.sub(r"<[^>]+>", "", c)) for c in cells}


def refs_of(topic: str, impl: str | None) -> list[str]:
    specs = lesson.TOPICS[topic].pieces[impl] if impl else lesson.TOPICS[topic].shared
    return [ref for spec in specs for ref in spec.split(" + ")]


# ----------------------------------------------------------------------------- topics


def test_every_topic_names_each_implementation_with_pieces_that_face_each_other():
    for name, topic in lesson.TOPICS.items():
        assert set(topic.pieces) == set(lesson.IMPLS), name
        assert len({len(specs) for specs in topic.pieces.values()}) == 1, name
        for impl in PAIR:
            for ref in refs_of(name, impl):
                assert inspect.getsource(lesson.resolve(ref, impl)), (name, ref)


def test_every_note_points_at_a_line_of_code_that_is_shown():
    for name in lesson.TOPICS:
        v = lesson.view(name, PAIR)
        expected = lesson.TOPICS[name].notes.get("flax_port", ())
        assert len(v.notes) == len(expected)
        for note, spec in zip(v.notes, expected):
            assert note.at is not None and spec.at in note.at.text, (name, spec.at)
            assert len(note.inside) == len(spec.inside) and len(note.faces) == len(spec.faces), (name, spec.at)


# ----------------------------------------------------------------------------- alignment


def rows_of(topic: str) -> list[lesson.Row]:
    return [r for p in lesson.view(topic, PAIR).pieces if not p.shared for r in p.rows]


def facing(rows, left_text: str) -> str | None:
    """The first line of what faces the left line that holds `left_text` (None: a gap)."""
    row = next(r for r in rows if r.left and left_text in r.left.key)
    return row.right.key if row.right else None


def test_attention_aligns_q_with_q_the_mask_with_the_mask_and_leaves_the_scaling_facing_a_gap():
    rows = rows_of("attention")
    assert facing(rows, 'q = tap(taps, f"l{layer}.q", dense(x,').startswith('q = tap(self, "q", dense(cfg.n_embd')
    assert facing(rows, 'v = tap(taps, f"l{layer}.v", dense(x,').startswith('v = tap(self, "v", dense(cfg.n_embd')
    assert facing(rows, "causal = jnp.tril(").startswith("causal = nn.make_causal_mask(")
    # linen's attention is the weights call, then the einsum written out (so that the weights are a tap)
    assert facing(rows, "weights = tap(taps, f\"l{layer}.attn_weights\", jax.nn.softmax(").startswith(
        'weights = tap(self, "attn_weights", nn.dot_product_attention_weights(')
    assert facing(rows, "out = jnp.einsum(").startswith("out = jnp.einsum(")
    assert facing(rows, "q = q / jnp.sqrt(hd)") is None
    kinds = {r.left.key if r.left else r.right.key: r.kind for r in rows}
    assert kinds['"""Causal multi-head self-attention."""'] == "same"
    assert kinds["T, H, hd = x.shape[0], cfg.n_head, cfg.head_dim"] == "same"


def test_the_residual_faces_the_residual_and_forward_shows_flax_apply():
    rows = rows_of("forward")
    assert facing(rows, "x = x + attention(").startswith("x = x + Attention(")
    assert facing(rows, "x = x + mlp(").startswith("x = x + MLP(")
    right = [r.right.key for r in rows if r.right]
    assert 'return GPT(cfg).apply({"params": params}, tokens)' in right


QKV_LINES_AT_80 = 9  # pure's q, k, v lines, each wrapped in three at 80 columns (the tap name before dense)


@pytest.mark.parametrize("width", [80, 160])
def test_diff_attention_at_80_and_160_columns_puts_counterparts_together(width, capsys):
    assert lesson.main(["attention", "--width", str(width)]) == 0
    out = capsys.readouterr().out.splitlines()

    def at(text, mark=None):
        return next(i for i, ln in enumerate(out) if text in ln and (mark is None or ln.startswith(mark)))

    if width == 160:  # two columns: the counterparts on one row, the row marked as differing
        for pure_text, flax_text in [('q = tap(taps, f"l{layer}.q"', 'q = tap(self, "q"'),
                                     ("causal = jnp.tril(", "causal = nn.make_causal_mask(")]:
            row = out[at(pure_text)]
            assert flax_text in row and row.startswith("~ ") and row.index(" │ ") < row.index(flax_text)
        assert out[at("q = q / jnp.sqrt(hd)")].startswith("< ")
        assert out[at("q = q / jnp.sqrt(hd)")].rstrip().endswith("│")
    else:  # one above the other, block by block: pure's q, k, v, then flax's q, k, v
        assert at('q = tap(self, "q"', ">") - at('q = tap(taps, f"l{layer}.q"', "<") == QKV_LINES_AT_80
        between = out[at("causal = jnp.tril(", "<") + 1: at("causal = nn.make_causal_mask(", ">")]
        assert all(ln.startswith(">") for ln in between) and len(between) <= 2  # at most flax's comment
    assert max(len(ln) for ln in out) <= width


@pytest.mark.parametrize("width", [40, 80, 100, 120, 160])
def test_no_line_is_wider_than_the_width(width, capsys):
    assert lesson.main(["--width", str(width)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert max(len(ln) for ln in out) <= width
    assert "━━ names " in "\n".join(out) and "l0/attn/wq/kernel" in "\n".join(out)


def test_diff_prints_every_topic_from_the_live_source(capsys):
    assert lesson.main(["--width", "200"]) == 0
    out = capsys.readouterr().out
    for topic in lesson.TOPICS:
        assert f"━━ {topic} " in out
    assert "def adam_update(params, grads, opt_state, cfg: Config):" in out  # pure's real source
    assert "optax.adam(" in out and "class Attention(nn.Module):" in out
    assert out.count("common/sampling.py:") == 1  # the shared loop, once


# ----------------------------------------------------------------------------- colour


class FakeTerminal:
    def __init__(self, tty: bool):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")  # TERM=dumb has none either (tests/test_safety.py)
    assert lesson.use_colour(FakeTerminal(True)) is True
    assert lesson.use_colour(FakeTerminal(False)) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert lesson.use_colour(FakeTerminal(True)) is False
    v = lesson.view("attention", PAIR)
    assert any("\033[" in ln for ln in lesson.render_topic(v, 160, True, None))
    assert not any("\033[" in ln for ln in lesson.render_topic(v, 160, False, None))


def test_no_escape_codes_when_the_output_is_not_a_terminal():
    r = run_module("compare", "diff", "loss", "--width", "120", env={"NO_COLOR": ""})
    assert r.returncode == 0 and "\033[" not in r.stdout and "━━ loss " in r.stdout


# ----------------------------------------------------------------------------- errors


def one_line_error(capsys, argv, main=lesson.main) -> str:
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_an_unknown_implementation_or_a_pair_of_one(capsys):
    assert "unknown implementation 'jaxlib'" in one_line_error(capsys, ["--pair", "pure,jaxlib"])
    assert "two different implementations" in one_line_error(capsys, ["--pair", "pure,pure"])
    assert "two different implementations" in one_line_error(capsys, ["--pair", "pure"])


def test_a_pair_with_an_implementation_that_is_not_importable(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "nnx_port", None)  # what a checkout without nnx_port/ sees
    assert "nnx_port is not importable" in one_line_error(capsys, ["--pair", "pure,nnx_port"])
    assert "nnx_port is not importable" in one_line_error(
        capsys, ["--html", "/tmp/never-written.html", "--pair", "nnx_port,flax_port"], lesson.lesson_main)


def test_unknown_topic_and_too_narrow_width(capsys):
    assert "unknown topic 'nonsense'" in one_line_error(capsys, ["nonsense"])
    assert "--width 10 is too narrow" in one_line_error(capsys, ["--width", "10"])
    assert "--width -5 is too narrow" in one_line_error(capsys, ["--width", "-5"])
    assert "--width 0 is too narrow" in one_line_error(capsys, ["--width", "0"])  # one rule, 0 included


def test_lesson_refuses_a_page_it_cannot_write_and_writes_nothing(capsys, tmp_path):
    assert "does not exist" in one_line_error(capsys, ["--html", "/nonexistent-dir/x.html"], lesson.lesson_main)
    assert "--steps -1" in one_line_error(capsys, ["--html", str(tmp_path / "x.html"), "--steps", "-1"],
                                          lesson.lesson_main)
    assert list(tmp_path.iterdir()) == []


def test_lesson_replaces_only_a_page_it_wrote(capsys, tmp_path, built_page):
    from common import checkpoint

    mine = tmp_path / "notes.html"
    mine.write_text("<html><body>my own notes</body></html>")
    message = one_line_error(capsys, ["--html", str(mine), "--steps", "0"], lesson.lesson_main)
    assert "exists without this project's mark (a lesson page it wrote carries its generator tag)" in message
    assert mine.read_text() == "<html><body>my own notes</body></html>"
    ours = tmp_path / "lesson.html"
    ours.write_text(built_page[1], encoding="utf-8")
    assert checkpoint.is_lesson_page(str(ours)) and not checkpoint.is_lesson_page(str(mine))


# ----------------------------------------------------------------------------- the proof


def test_check_prints_one_outcome_per_check(built_page, capsys):
    assert lesson.main(["attention", "loss", "--check", "--width", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    outcomes = [ln for ln in out if ln.startswith(("  PASS  ", "  FAIL  "))]
    assert outcomes == [
        "  PASS  logits, bitwise, 2 names [jit]", "  PASS  logits, bitwise, 2 names [no jit]",
        "  PASS  loss and gradients, bitwise, 2 names [jit]", "  PASS  loss and gradients, bitwise, 2 names [no jit]",
        "  PASS  loss and gradients, bitwise, 2 names [jit]", "  PASS  loss and gradients, bitwise, 2 names [no jit]",
    ]


def test_check_fails_when_the_flax_mask_is_gone(fresh_outcomes, capsys, monkeypatch):
    import jax.numpy as jnp

    T = lesson.check_inputs()["cfg"].block_size
    monkeypatch.setattr(flax_port.model.nn, "make_causal_mask", lambda x: jnp.ones((1, T, T), bool))
    assert lesson.main(["forward", "--check", "--width", "100"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [ln[:6] for ln in out if ln.startswith(("  PASS  ", "  FAIL  "))] == ["  FAIL", "  FAIL"]
    failed = "        logits, pure vs flax_port: expected bitwise equal, got different: "
    assert any(ln.startswith(failed) for ln in out)


def test_the_names_table_comes_from_the_converters():
    rows = lesson.names_rows(PAIR)
    assert len(rows) == 9
    assert ("l0.wq", "16x16", "l0.wq", "l0/attn/wq/kernel") in rows
    assert ("lm_head", "27x16", "lm_head", "lm_head/embedding") in rows


# ----------------------------------------------------------------------------- the page


def test_the_page_holds_every_topic_both_columns_and_every_source_line(built_page):
    code, text = built_page
    assert code == 0
    found = sections(text)
    assert list(found) == list(lesson.TOPICS)
    for name, section in found.items():
        cells = code_cells(section)
        pieces = len(lesson.TOPICS[name].pieces["pure"])
        assert section.count('<th colspan="2"') == 2 * pieces, name
        for impl in (*PAIR, None):
            for ref in refs_of(name, impl):
                for line in inspect.getsource(lesson.resolve(ref, impl)).splitlines():
                    assert line.rstrip() in cells, (name, ref, line)


def test_the_page_asks_the_network_for_nothing(built_page):
    _, text = built_page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "url(" not in text and "@import" not in text


def test_the_page_shows_the_checks_the_notes_and_the_marks(built_page):
    _, text = built_page
    total = sum(len(lesson.topic_checks(name, PAIR)) for name in lesson.TOPICS)
    assert text.count("✓ PASS") == total and "✗ FAIL" not in text
    attention = sections(text)["attention"]
    assert 'class="badge" href="#note-attention-2"' in attention
    assert "flax/linen/attention.py:130" in attention
    src = (lesson.ROOT / "pure" / "model.py").read_text().splitlines()
    n = next(i for i, ln in enumerate(src, 1) if ln.strip().startswith("q = q / jnp.sqrt"))  # the scaling pure does
    assert f'instead of: <span class="where"><a href="#attention-pure-{n}">pure/model.py:{n}</a>' in attention
    assert f'id="attention-pure-{n}"' in attention
    assert '<tr class="left"' in attention and '<tr class="differ"' in attention
    assert "No run was asked for (--steps 0)" in text and "<img" not in text


def test_the_page_embeds_the_loss_curves_and_a_failed_check():
    views = [lesson.view("loss", PAIR)]
    png = b"\x89PNG\r\n\x1a\n not really"
    text = page.render(views, {"loss": [("a check", "FAIL: numbers differ")]}, [], (png, ["verdict: bitwise equal"]),
                       PAIR, 300)
    assert "✗ FAIL" in text and "numbers differ" in text and 'class="proof failed"' in text
    code = page.prose('pure\'s `x @ params["lm_head"].T`')
    assert code.startswith('pure&#x27;s <code class="hl">') and "&amp;" not in code and "&quot;" in code
    assert text.count("<img ") == 1 and f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in text
    assert "verdict: bitwise equal" in text


# ----------------------------------------------------------------------------- what a learner watches


def test_the_trainer_log_line_adds_the_mean_since_the_last_line():
    """run_training hands each log line the mean loss since the previous line (a stand-in
    implementation whose loss at step i is i, so every mean is known exactly)."""
    import jax
    import jax.numpy as jnp

    from common.config import Config
    from common.data import Batch
    from common.impl import Impl
    from common.runner import format_step, run_training

    def train_steps(state, batches, cfg):
        return jax.lax.scan(lambda s, b: (s + 1, (s + 1).astype(jnp.float32)), state, batches.inputs)

    impl = Impl("counting", None, None, train_steps, lambda s: {}, None, None, None, dict, dict, None, None)
    cfg = Config(num_steps=20)
    batches = Batch(*(jnp.zeros((20, cfg.block_size), jnp.int32) for _ in Batch._fields))
    logged = []
    run_training(impl, jnp.zeros((), jnp.int32), cfg, batches, log_every=10, on_log=lambda *a: logged.append(a))
    assert logged == [(1, 1.0, 1.0, 1), (10, 10.0, 6.0, 2), (20, 20.0, 15.5, 11)]  # mean of 2..10, of 11..20
    assert format_step(10, 20, 10.0, 6.0, 2) == "step   10 /   20 | loss 10.0000 | mean 6.0000 (steps 2-10)"
    assert format_step(1, 20, 3.3, 3.3, 1) == "step    1 /   20 | loss 3.3000 | mean 3.3000 (step 1)"
