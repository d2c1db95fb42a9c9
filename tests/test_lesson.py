"""The lesson: `compare diff` in the terminal and `compare lesson --html` as a page. Lines face
their counterparts, nothing is wider than the terminal, colour obeys NO_COLOR, the checks beside
each topic run and can fail, and the page holds every line of the live source and no URL."""

import functools
import html
import inspect
import re
import sys

import pytest

import flax_port.model
from common.cli import run_cli
from compare import lesson
from compare.lesson import page
import browser
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
    assert facing(rows, 'q = (x @ params[f"l{layer}.wq"])').startswith('q = dense(cfg.n_embd, cfg, "wq")')
    assert facing(rows, 'v = (x @ params[f"l{layer}.wv"])').startswith('v = dense(cfg.n_embd, cfg, "wv")')
    assert facing(rows, "causal = jnp.tril(").startswith("causal = nn.make_causal_mask(")
    assert facing(rows, "out = jnp.einsum(").startswith("out = nn.dot_product_attention(")
    assert facing(rows, "q = q / jnp.sqrt(hd)") is None
    assert facing(rows, "weights = jax.nn.softmax(") is None
    kinds = {r.left.key if r.left else r.right.key: r.kind for r in rows}
    assert kinds['"""Causal multi-head self-attention."""'] == "same"
    assert kinds["T, H, hd = x.shape[0], cfg.n_head, cfg.head_dim"] == "same"


def test_the_residual_faces_the_residual_and_forward_shows_flax_apply():
    rows = rows_of("forward")
    assert facing(rows, "x = x + attention(").startswith("x = x + Attention(")
    assert facing(rows, "x = x + mlp(").startswith("x = x + MLP(")
    right = [r.right.key for r in rows if r.right]
    assert 'return GPT(cfg).apply({"params": params}, tokens)' in right


@pytest.mark.parametrize("width", [80, 160])
def test_diff_attention_at_80_and_160_columns_puts_counterparts_together(width, capsys):
    assert lesson.main(["attention", "--width", str(width)]) == 0
    out = capsys.readouterr().out.splitlines()

    def at(text, mark=None):
        return next(i for i, ln in enumerate(out) if text in ln and (mark is None or ln.startswith(mark)))

    if width == 160:  # two columns: the counterparts on one row, the row marked as differing
        for pure_text, flax_text in [('q = (x @ params[f"l{layer}.wq"])', 'q = dense(cfg.n_embd, cfg, "wq")'),
                                     ("causal = jnp.tril(", "causal = nn.make_causal_mask(")]:
            row = out[at(pure_text)]
            assert flax_text in row and row.startswith("~ ") and row.index(" │ ") < row.index(flax_text)
        assert out[at("q = q / jnp.sqrt(hd)")].startswith("< ")
        assert out[at("q = q / jnp.sqrt(hd)")].rstrip().endswith("│")
    else:  # one above the other, block by block: pure's q, k, v, then flax's q, k, v
        assert at('q = dense(cfg.n_embd, cfg, "wq")', ">") - at('q = (x @ params[f"l{layer}.wq"])', "<") == 3
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
    assert "exists and is not a lesson page this program wrote" in message
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


@functools.cache
def curves_svg() -> bytes:
    """A real plot of the side-by-side run (compare/run.py's), of made-up losses: 300 steps."""
    import tempfile

    import numpy as np

    from compare import run

    losses = 3.3 - np.linspace(0, 1, 300) + np.random.default_rng(0).normal(0, 0.3, 300)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/curves.svg"
        run.save_plot(path, {PAIR[0]: losses, PAIR[1]: losses}, np.zeros(300))
        return open(path, "rb").read()


def test_the_page_embeds_the_loss_curves_and_a_failed_check():
    views = [lesson.view("loss", PAIR)]
    svg = curves_svg()
    text = page.render(views, {"loss": [("a check", "FAIL: numbers differ")]}, [], (svg, ["verdict: bitwise equal"]),
                       PAIR, 300)
    assert "✗ FAIL" in text and "numbers differ" in text and 'class="proof failed"' in text
    code = page.prose('pure\'s `x @ params["lm_head"].T`')
    assert code.startswith('pure&#x27;s <code class="hl">') and "&amp;" not in code and "&quot;" in code
    assert svg.startswith(b"<?xml") and text.count("<svg ") == 1 and "<?xml" not in text and "<img" not in text
    assert text.count("<text ") == svg.count(b"<text ") > 10  # the plot's words are text, not paths
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)  # the plot fetches nothing
    assert "anywhere" not in text  # no overflow-wrap that cuts a name to fit a line
    assert "verdict: bitwise equal" in text


# ----------------------------------------------------------------------------- the page in a browser


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    def luminance(colour):
        rgb = [int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_text_colour_is_4_5_to_1_on_every_background_it_sits_on():
    for colours in (page.LIGHT, page.DARK):
        style = page.palette_css(colours)
        for text, backgrounds in page.TEXT_ON.items():
            for bg in backgrounds:
                assert f"--{text}: {colours[text]};" in style and f"--{bg}: {colours[bg]};" in style
                assert contrast(colours[text], colours[bg]) >= 4.5, (text, bg)
    for group in page.TOKEN_GROUPS:
        assert f"var(--{group})" in page.token_css()
    # the twin: Pygments' "friendly" comments on the old tinted row, 2.4:1, are caught
    assert contrast("#60a0b0", "#fff4c2") < 4.5 and contrast("#60a0b0", LIGHT_TINT) < 4.5


LIGHT_TINT = page.LIGHT["differ"]
WIDTHS = (390, 800, 1400)


@pytest.fixture(scope="module")
def browser_page(built_page, tmp_path_factory):
    """The built page with a run's plot put in (the build ran none) and the measuring script."""
    if browser.chromium() is None:
        pytest.skip("chromium is not installed: `apt-get install chromium` (.ci/run installs it where missing)")
    _, text = built_page
    curves = page.curves_html((curves_svg(), ["verdict: bitwise equal: parameters after every one of 300 steps "
                                              "(largest difference 0); sampled names identical"]), PAIR, 300)
    text = text.replace("<p>No run was asked for (--steps 0).</p>", curves)
    assert "<svg " in text
    return text, tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def laid_out(browser_page):
    """Measurements of the page at each width, one Chromium start each; 390 px in a dark scheme."""
    text, where = browser_page
    target = where / "page.html"
    target.write_text(browser.measurable(text, page.LIGHT, page.DARK), encoding="utf-8")
    return {w: browser.lay_out(target, w, dark=w == 390) for w in WIDTHS}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_fits_the_screen_and_shows_code_in_wide_columns(laid_out, width):
    m = laid_out[width]
    assert m["viewport"] == width and m["doc_width"] <= width, m["too_wide"]  # nothing wider than the screen
    # each code column holds at least 32 characters (measured 2026-11-30: 38 at 390 px, 87 at 800, 78 at 1400)
    assert m["code_cells"] > 100 and m["min_code_chars"] >= 32
    sides = 2 if width >= page.WIDE else 1  # under WIDE px one side at a time, behind a tab
    assert m["both_sides"] == [sides] * len(m["both_sides"]) and len(m["both_sides"]) > 10
    assert m["broken"] == []  # no name, number or operator laid out over two lines
    assert m["badge_cells"] > 0 and m["badges_apart"] == []  # badges stay on their line number's row
    assert m["run_log_clipped"] is False
    # the plot fits the column and its smallest text is at least 9.5 px (measured 10.2 at 390 px, 17.8 wider)
    assert m["plot_width"] <= width and m["plot_font_px"] >= 9.5
    # a phone shows one side at a time: not much taller than a wide screen (16,100 px against 10,300 measured)
    assert m["height"] <= 2 * laid_out[1400]["height"]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_text_is_4_5_to_1_in_the_light_and_the_dark_scheme(laid_out, width):
    m = laid_out[width]
    for scheme in ("light", "dark"):
        assert m[scheme]["texts"] > 1000 and m[scheme]["low"] == [] and m[scheme]["min"] >= 4.5, scheme
    # the browser's own preference picks the scheme (390 px was laid out with --force-dark-mode)
    wanted = page.DARK["bg"] if width == 390 else page.LIGHT["bg"]
    assert m["scheme_bg"] == "rgb({}, {}, {})".format(*(int(wanted[k:k + 2], 16) for k in (1, 3, 5)))


def test_the_measurements_catch_a_page_that_breaks_names_and_overflows(browser_page):
    """The twin: the old page's faults put back by CSS, each caught by the same measurements."""
    text, where = browser_page
    broken = ("table.code td.src { overflow-wrap: anywhere; }"  # names cut mid-word
              ".piece.two .scroll td.l, .piece.two .scroll td.r { display: table-cell !important; }"  # both sides
              "table.code td.ln { white-space: normal; width: 1ch; }"  # badges above their number
              "pre.run { white-space: pre; overflow: hidden; }"  # the log clipped
              ":root.light { --t-comment: #60a0b0; }")  # friendly's comment colour
    target = where / "broken.html"
    target.write_text(browser.measurable(text, page.LIGHT, page.DARK, broken), encoding="utf-8")
    m = browser.lay_out(target, 390)
    assert m["broken"] and m["badges_apart"] and m["run_log_clipped"] is True
    assert set(m["both_sides"]) == {2}
    assert any("c1" in where for where, _, _ in m["light"]["low"]) and m["dark"]["low"] == []


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
