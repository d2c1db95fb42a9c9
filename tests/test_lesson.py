"""The lesson: `compare diff` in the terminal and `compare lesson --html` as a page. Lines face
their counterparts, nothing is wider than the terminal, colour obeys NO_COLOR, the checks beside
each topic run and can fail, and the page holds every line of the live source and no URL."""

import ast
import contextlib
import functools
import html
import inspect
import io
import keyword
import re
import sys
import tokenize
from pathlib import Path

import browser
import pytest

import flax_port.model
from common.cli import run_cli
from compare import lesson
from compare.lesson import page, terminal
from compare.lesson import views as views_module
from conftest import ROOT

PAIR = lesson.DEFAULT_PAIR


@pytest.fixture
def fresh_outcomes():
    """For a test that patches the code: the checks run afresh, and what it saw is forgotten."""
    from compare import programs

    saved = dict(lesson.OUTCOMES)
    lesson.OUTCOMES.clear()
    with programs.isolated():  # programs traced afresh, with the patched code
        yield
    lesson.OUTCOMES.clear()
    lesson.OUTCOMES.update(saved)


@pytest.fixture(scope="module")
def built_page(tmp_path_factory):
    """The page, built once through the command (running every check, which `--check` then
    reuses), without the side-by-side run (--steps 0)."""
    target = tmp_path_factory.mktemp("lesson") / "lesson.html"
    code = run_cli(lesson.lesson_main, ["--html", str(target), "--steps", "0"])
    return code, target.read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    found = re.findall(r'<section id="topic-(\w+)">(.*?)</section>', text, re.S)
    return dict(found)


def code_cells(section: str) -> set[str]:
    """The code cells' text as copied in the proven view (an idiom, shown instead in the learner's
    view, is the cell's last span)."""
    cells = [re.sub(r'<span class="idiom">.*$', "", c, flags=re.S)
             for c in re.findall(r'<td class="src[^"]*"[^>]*>(.*?)</td>', section, re.S)]
    return {html.unescape(re.sub(r"<[^>]+>", "", c)).replace(page.SOFT, "") for c in cells}


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


PAIRS = [("pure", "flax_port"), ("pure", "nnx_port"), ("flax_port", "nnx_port")]


@functools.cache
def views(pair: tuple[str, str]) -> dict[str, lesson.TopicView]:
    """Every topic's view of a pair, made once for the whole module."""
    return {name: lesson.view(name, pair) for name in lesson.TOPICS}


def notes_for(name: str, pair: tuple[str, str]) -> list[lesson.Note]:
    """The content's notes a pair's page shows: each side's, less those for another partner."""
    return [note for impl in pair for other in pair if other != impl
            for note in lesson.TOPICS[name].notes.get(impl, ()) if not note.against or other in note.against]


@pytest.mark.parametrize("pair", PAIRS)
def test_every_note_points_at_a_line_of_code_that_is_shown(pair):
    for name, v in views(pair).items():
        expected = notes_for(name, pair)
        assert len(v.notes) == len(expected), name
        for note, spec in zip(v.notes, expected):
            assert note.at is not None and spec.at in note.at.text, (pair, name, spec.at)
            assert len(note.faces) == sum(who in pair for who, _ in spec.faces), (pair, name, spec.at)


# ----------------------------------------------------------------------------- notes


def library_file(path: str) -> list[str]:
    """A library file as the lesson names it (relative to site-packages), read from disk."""
    import flax

    site = Path(flax.__file__).resolve().parent.parent
    return (site / path).read_text(encoding="utf-8").splitlines()


def test_every_inside_citation_quotes_that_line_of_the_installed_library():
    cited = 0
    for name, topic in lesson.TOPICS.items():
        for impl, notes in topic.notes.items():
            for note in notes:
                for ref, text in note.inside:
                    p = views_module.library_line(ref, text)
                    assert p is not None, (name, impl, ref, text)  # the quoted text is in that object
                    assert text in library_file(p.path)[p.lineno - 1], (name, impl, p)  # at that file and line
                    cited += 1
    assert cited >= 8


def test_a_citation_that_is_not_in_the_library_is_caught(monkeypatch):
    assert views_module.library_line("flax.nnx.nn.attention:dot_product_attention_weights",
                                     "query = query * jnp.sqrt(depth)") is None


def test_the_nnx_attention_note_cites_the_file_nnx_port_calls():
    from flax.nnx.nn import attention

    import nnx_port.model

    assert nnx_port.model.dot_product_attention_weights is attention.dot_product_attention_weights
    for pair in [("pure", "nnx_port"), ("flax_port", "nnx_port")]:
        note = next(n for n in views(pair)["attention"].notes if n.impl == "nnx_port")
        assert [p.path for p in note.inside] == ["flax/nnx/nn/attention.py"] * 2, pair


@pytest.mark.parametrize("pair", PAIRS)
def test_notes_speak_only_of_the_two_implementations_on_the_page(pair):
    others = {"pure": r"\bpure\b", "flax_port": r"\bflax_port\b|\blinen\b", "nnx_port": r"\bnnx_port\b|\bNNX\b"}
    absent = "|".join(others[impl] for impl in lesson.IMPLS if impl not in pair)
    for name, v in views(pair).items():
        for note in v.notes:
            assert not re.search(absent, note.text), (pair, name, note.text)
        quoted = [(p.path, p.lineno) for note in v.notes for p in note.inside]
        assert len(quoted) == len(set(quoted)), (pair, name)  # no library line quoted twice


def test_on_the_flax_and_nnx_page_pure_is_not_named_and_no_line_is_quoted_twice(capsys):
    assert lesson.main(["attention", "--width", "160", "--pair", "flax_port,nnx_port"]) == 0
    out = capsys.readouterr().out
    notes = out[out.index("━━ attention"):][out[out.index("━━ attention"):].index("Notes: "):]
    assert not re.search(r"\bpure\b", notes)
    inside = [ln.strip() for ln in notes.splitlines() if ln.strip().startswith("inside:")]
    assert len(inside) == 4 and len(set(inside)) == 4  # linen's two lines, NNX's two lines


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


@pytest.mark.parametrize("width", [60, 80, 160])
def test_diff_attention_at_60_80_and_160_columns_puts_counterparts_together(width, capsys):
    """Two columns from 80 (a common terminal: 37 characters a side, code continued between tokens);
    below that, one side above the other."""
    assert lesson.main(["attention", "--width", str(width)]) == 0
    out = capsys.readouterr().out.splitlines()

    def at(text, mark=None):
        return next(i for i, ln in enumerate(out) if text in ln and (mark is None or ln.startswith(mark)))

    if width >= 80:  # two columns: the counterparts on one row, the row marked as differing
        for pure_text, flax_text in [('q = tap(taps, f"l{layer}.q"', 'q = tap(self, "q"'),
                                     ("causal = jnp.tril(", "causal = nn.make_causal_mask(")]:
            row = out[at(pure_text)]
            assert flax_text in row and row.startswith("~ ") and row.index(" │ ") < row.index(flax_text)
        assert out[at("q = q / jnp.sqrt(hd)")].startswith("< ")
        assert out[at("q = q / jnp.sqrt(hd)")].rstrip().endswith("│")
    else:  # one above the other, block by block: every changed line of pure's, then flax's, never interleaved
        assert out[at("T, H, hd = x.shape[0]", "<")].startswith("<     T, H, hd")  # the same line, each side's depth
        assert out[at("T, H, hd = x.shape[0]", "<") + 1].startswith(">         T, H, hd")
        assert at('v = tap(taps, f"l{layer}.v"', "<") < at('q = tap(self, "q"', ">")
    assert max(len(ln) for ln in out) <= width


@pytest.mark.parametrize("width", [40, 41, 80, 100, 120, 160])
def test_no_line_is_wider_than_the_width(width, capsys):
    """Only a token longer than the line is wider than it, alone on its line: at 40 a 35-character
    path kept its 6-space indent and made a 41-column line (tenth hostile pass)."""
    assert lesson.main(["--width", str(width)]) == 0
    out = capsys.readouterr().out.splitlines()
    wide = [ln for ln in out if len(ln) > width]
    assert all(single_token(ln) and len(ln[2:].strip().removeprefix("# ")) > width - 2 for ln in wide), wide
    assert "━━ names " in "\n".join(out) and "l0/attn/wq/kernel" in "\n".join(out)


def test_diff_prints_every_topic_from_the_live_source(capsys):
    assert lesson.main(["--width", "200"]) == 0
    out = capsys.readouterr().out
    for topic in lesson.TOPICS:
        assert f"━━ {topic} " in out
    assert "def adam_update(params, grads, opt_state, cfg: Config):" in out  # pure's real source
    assert "optax.adam(" in out and "class Attention(nn.Module):" in out
    assert out.count("common/sampling.py:") == 1  # the shared loop, once


def faces_in(pair, topic: str, text: str, side: int = 0) -> str | None:
    """What faces the line (of side 0, the left, or 1) holding `text` in a pair's topic: the first
    line of its counterpart, or None for a gap."""
    for piece in views(pair)[topic].pieces:
        for row in piece.rows:
            mine, theirs = (row.left, row.right) if side == 0 else (row.right, row.left)
            if mine and text in mine.key and not mine.prose[0]:
                return theirs.key if theirs and theirs.key else None
    raise AssertionError(f"{text!r} is not shown in {topic} for {pair}")


def test_the_same_call_under_another_name_faces_itself():
    """pure,nnx_port train: the weights made at the start, read out of the state, updated."""
    pair = ("pure", "nnx_port")
    assert faces_in(pair, "train", "params = model.init_params(").startswith("gpt = model.init_params(")
    assert faces_in(pair, "train", "params, _ = state") == "gpt, _ = nnx.merge(*state)"
    assert faces_in(pair, "train", "params, opt_state = state").startswith(
        "gpt, optimizer = nnx.merge(*state, copy=True)")
    assert faces_in(pair, "train", "return optim.adam_update(").startswith("optimizer.update(gpt, grads)")
    assert faces_in(("flax_port", "nnx_port"), "train", "return state.apply_gradients(").startswith(
        "optimizer.update(gpt, grads)")


def test_the_output_matrix_and_the_model_call_pair_the_same_way_in_every_pair():
    for topic in ("forward", "sampling"):
        for pair in [("pure", "flax_port"), ("pure", "nnx_port")]:  # pure's forward has no "call the model" line
            call = "return GPT(cfg).apply(" if pair[1] == "flax_port" else "return gpt(tokens)"
            assert faces_in(pair, topic, call, side=1) is None, (pair, topic)
        assert faces_in(("flax_port", "nnx_port"), topic, "return GPT(cfg).apply(") == "return gpt(tokens)", topic
    assert faces_in(("pure", "flax_port"), "sampling", 'params["lm_head"]') is None
    assert faces_in(("pure", "nnx_port"), "sampling", 'params["lm_head"]') is None
    assert "attend(x)" in faces_in(("pure", "flax_port"), "forward", 'params["lm_head"]')
    assert "self.lm_head.attend(x)" in faces_in(("pure", "nnx_port"), "forward", 'params["lm_head"]')


def test_names_returns_face_only_their_counterparts():
    for pair in [("pure", "flax_port"), ("pure", "nnx_port")]:
        assert faces_in(pair, "names", "return shapes") is None, pair
        assert faces_in(pair, "names", 'return (name, "embedding")', side=1) is None, pair
    assert faces_in(("flax_port", "nnx_port"), "names", 'return (name, "embedding")').startswith(
        'return (name, "embedding")')


def pairing_disagreements(made: dict) -> list:
    """Lines a, b, c of three implementations where a faces b and a faces c (or a gap) in two
    pairs, but b does not face c (or a gap) in the third: the same code paired two ways."""
    faces = {}
    for pair, by_topic in made.items():
        for name, v in by_topic.items():
            for piece in v.pieces:
                for row in piece.rows[1:] if not piece.shared else []:  # a piece's first lines always face
                    ends = [(impl, ln) for impl, ln in zip(pair, (row.left, row.right))]
                    for (impl, ln), (other, them) in (ends, ends[::-1]):
                        if ln and ln.key and ln.lineno:
                            there = (them.path, them.lineno) if them and them.key else None
                            faces[name, impl, (ln.path, ln.lineno), other] = there
    found = []
    for (name, impl, line, other), there in faces.items():
        third = next(i for i in lesson.IMPLS if i not in (impl, other))
        beyond = faces.get((name, impl, line, third), "not shown")
        if there is not None and beyond != "not shown":
            back = faces.get((name, other, there, third), "not shown")
            if back != beyond:
                found.append((name, impl, line, other, there, third, beyond, back))
    return found


def test_every_pair_pairs_the_same_code_the_same_way():
    assert pairing_disagreements({pair: views(pair) for pair in PAIRS}) == []


def test_without_the_named_counterparts_the_pairs_disagree(monkeypatch):
    monkeypatch.setattr(views_module, "COUNTERPARTS", ())
    # since the taps landed, sampling and train pair the same without them; the taps topic does not
    made = {pair: {name: lesson.view(name, pair) for name in ("sampling", "train", "taps")} for pair in PAIRS}
    assert pairing_disagreements(made)


# ----------------------------------------------------------------------------- the terminal's wrapping

WORDS = re.compile(r"\S+")


def shown_whole(line: lesson.Line, shown: list[str]) -> list[str]:
    """The names, strings and numbers of `line` (the words of a docstring or comment) that are
    not found whole, in order, in the display lines `shown`."""
    code = [t for t in shown if not t.lstrip().startswith("#")] or shown
    if line.prose[0] or line.key.startswith("#"):
        wanted, where = WORDS.findall(line.key), shown
    else:
        text = "\n".join(line.physical)
        wanted, where = [], code
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text + "\n").readline):
                if tok.type in (tokenize.NAME, tokenize.STRING, tokenize.NUMBER):
                    wanted.append(tok.string)
        except tokenize.TokenError:
            pass
    missing, k, at = [], 0, 0
    for token in wanted:
        while k < len(where) and token not in where[k][at:]:
            k, at = k + 1, 0
        if k == len(where):
            missing.append(token)
            k, at = 0, 0
            continue
        at = where[k].index(token, at) + len(token)
    return missing


@pytest.mark.parametrize("pair", PAIRS)
def test_fitting_a_line_never_cuts_a_name_or_a_string(pair):
    checked = 0
    for v in views(pair).values():
        for piece in v.pieces:
            for row in piece.rows:
                for line in (row.left, row.right):
                    if line is None or not line.key:
                        continue
                    for width in (38, 58, 37, 78):  # the columns of --width 40 and 60 (stacked), 80 and 160
                        assert shown_whole(line, terminal.fit(line, width)) == [], (pair, v.name, line.key, width)
                        checked += 1
    assert checked > 400


def test_the_wrapping_check_catches_a_cut_name():
    line = lesson.logical_lines(["x = model.batch_loss_fn(params)"], "x.py", 1)[0]
    assert shown_whole(line, ["x = model.batch_loss_", "fn(params)"]) == ["batch_loss_fn"]
    assert shown_whole(line, ["x = model \\", "    .batch_loss_fn(params)"]) == []


def single_token(ln: str) -> bool:
    """A display line holding one token only (after its mark, indentation and comment sign)."""
    return len(ln[2:].strip().removeprefix("# ").split()) == 1


@functools.cache
def diff_output(pair: tuple[str, str], width: int) -> list[str]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert lesson.main(["--width", str(width), "--pair", ",".join(pair)]) == 0
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [40, 80, 160])
@pytest.mark.parametrize("pair", PAIRS)
def test_diff_cuts_nothing_and_fits_the_width(pair, width):
    out = diff_output(pair, width)
    text = "\n".join(out)
    assert "↩" not in text and "…" not in text
    assert all(len(ln) <= width or single_token(ln) for ln in out), [ln for ln in out if len(ln) > width]
    for v in views(pair).values():  # every quoted library line is shown whole, wrapped as code
        for note in v.notes:
            for p in note.inside:
                k = next(i for i, ln in enumerate(out) if f"{p.path}:{p.lineno}" in ln)
                assert "inside:" in out[k - 1] + out[k], (p.path, p.lineno)
                if width >= 80:  # on its line, or whole on the next
                    assert out[k].endswith(f"  {p.text}") or out[k + 1].strip() == p.text, (width, p)
                else:
                    assert shown_whole(lesson.logical_lines([p.text], p.path, 1)[0], out[k + 1: k + 6]) == [], p
    if width == 160 and pair == ("pure", "flax_port"):  # the name the old wrapping cut in two
        assert any("model.batch_loss_fn" in ln for ln in out)
    noqa = [ln for ln in out if "# noqa: E731" in ln]
    assert noqa and all(ln[:ln.index("# noqa")].strip(" <>~│") for ln in noqa)  # still after its code


def stacked_sides(out: list[str], topic: str, title: str, ends: list[str]) -> tuple[list[str], list[str]]:
    """The left side's and the right side's display lines of the stacked piece titled `title`
    in `topic` (it ends where a line of `ends` begins)."""
    first = out.index(next(ln for ln in out if ln.startswith(f"━━ {topic} ")))
    start = next(i for i in range(first, len(out) - 1)  # a long title goes on on the next line
                 if f"{out[i]} {out[i + 1].strip()}".startswith(f"< {title}"))
    end = next(i for i in range(start + 2, len(out)) if out[i].startswith(tuple(ends)))
    body = out[start + 2: end]
    return [ln[2:] for ln in body if ln.startswith(("<", " "))], [ln[2:] for ln in body if ln.startswith((">", " "))]


@pytest.mark.parametrize("pair", PAIRS)
def test_stacked_each_side_reads_as_its_own_source(pair):
    """At 60 columns the sides go one above the other: each side's lines, read in order, are its
    source's lines with its own indentation (a line that fits is shown as it is)."""
    out = diff_output(pair, 60)
    for v in views(pair).values():
        for piece in v.pieces:
            if piece.shared:
                continue
            ends = [f"< {p.titles[0]}" for p in v.pieces if p is not piece] + ["What the framework", "Notes:",
                                                                                 "The proof", "The names"]
            left, right = stacked_sides(out, v.name, piece.titles[0], ends)
            for side, shown in ((0, left), (1, right)):
                source = [t for row in piece.rows for ln in [(row.left, row.right)[side]] if ln
                          for t in ln.physical if t.strip() and len(t) <= 58 and "#" not in t]
                k = 0
                for t in source:
                    while k < len(shown) and shown[k].rstrip() != t.rstrip():
                        k += 1
                    assert k < len(shown), (pair, v.name, piece.titles[side], t)


def test_stacked_forward_keeps_each_sides_indentation(capsys):
    assert lesson.main(["forward", "--width", "60"]) == 0
    out = capsys.readouterr().out.splitlines()
    k = next(i for i, ln in enumerate(out) if ln.startswith(">     def __call__(self, tokens):"))
    assert out[k + 1].startswith(">         ")  # the method's body, one level in, on flax's side
    assert not any(ln.startswith("  ") and "T = tokens.shape[0]" in ln for ln in out)  # not shown once for both


def test_stacked_changed_lines_do_not_interleave():
    """The names topic, stacked (then at 80 columns, now below), once read `> if "." not in name:` /
    `< return shapes` / `> return (name, "embedding")`: now all of pure's changed lines, then all of flax's."""
    out = diff_output(("pure", "flax_port"), 60)
    start = out.index(next(ln for ln in out if ln.startswith("━━ names ")))
    piece = out[start: next(i for i in range(start, len(out)) if out[i].startswith("The names, generated"))]
    marks = "".join(ln[0] for ln in piece if ln[:1] in ("<", ">") and not ln.startswith(("< common/", "> flax_port/")))
    assert marks == "<" * marks.count("<") + ">" * marks.count(">") and marks.count(">") >= 5
    assert piece.index(next(ln for ln in piece if "return shapes" in ln)) < piece.index(
        next(ln for ln in piece if 'if "." not in name:' in ln))


def test_two_columns_mark_a_continuation_facing_nothing_as_no_difference():
    for pair in PAIRS:
        for ln in diff_output(pair, 160):
            if ln.startswith("~ ") and " │ " in ln:
                a, b = ln[2:].split(" │ ", 1)
                assert a.strip() and b.strip(), (pair, ln)
    row = lesson.Row(lesson.logical_lines(['"""One.', "two", 'three."""'], "a.py", 1)[0],
                     lesson.logical_lines(['"""One.', 'two."""'], "b.py", 1)[0])
    assert row.kind == "differ" and [lesson.row_mark(row, k) for k in range(3)] == ["~", "~", " "]


# ----------------------------------------------------------------------------- teaching

BITWISE_ONLY = {  # (implementation, topic, a piece of the line): the lines written so only to stay bitwise
    ("pure", "forward", 'jnp.take(params["wte"]'), ("pure", "optimizer", "c1, c2 = 1 - b1**t"),
    ("pure", "params", "return jax.lax.dot_general("),
    ("flax_port", "forward", '"lm_head").attend(x)'), ("nnx_port", "forward", "self.lm_head.attend(x)"),
    ("nnx_port", "attention", "dot_product_attention_weights("),
}


@pytest.mark.parametrize("pair", PAIRS)
def test_every_line_written_so_only_to_stay_bitwise_is_marked_with_its_idiom_and_cost(pair):
    marked = {(n.impl, name, n.at.text) for name, v in views(pair).items() for n in v.notes if n.idiom}
    for impl, topic, text in BITWISE_ONLY:
        if impl in pair:
            assert any(m[:2] == (impl, topic) and text in m[2] for m in marked), (pair, impl, topic, text)
    for v in views(pair).values():
        for n in v.notes:
            if n.idiom:
                assert "ulp" in n.text or "apart" in n.text, n.text  # what the idiomatic line costs
                ast.parse("def f():\n    " + n.idiom.strip())  # the idiomatic line is Python


@pytest.mark.parametrize("pair", PAIRS)
def test_each_pair_opens_with_what_changes_between_the_two_styles(pair, capsys):
    assert lesson.main(["loss", "--width", "100", "--pair", ",".join(pair)]) == 0
    out = capsys.readouterr().out
    opening = out[: out.index("━━ loss")]
    for start in ("Where the weights live:", "When shapes are known:", "How state moves through a step:"):
        assert start in opening, (pair, start)
    assert len(lesson.opening(pair)) == 3 and lesson.opening(pair) == lesson.opening(pair[::-1])


def test_the_nnx_idiom_stands_beside_the_split_merge_step_with_its_cost(capsys):
    """Flax's own way of writing the NNX step (@nnx.jit on the live modules) is shown as code, with
    its cost, facing the other twin's step line by line: its gradients beside value_and_grad, its
    in-place update beside the other's update."""
    for pair in PAIRS:
        assert lesson.main(["train", "--width", "200", "--pair", ",".join(pair)]) == 0  # no line broken
        out = capsys.readouterr().out
        shown = "def idiomatic_train_step(cfg: Config):" in out
        assert shown == ("nnx_port" in pair), pair
        if not shown:
            continue
        assert "@nnx.jit" in out and "nnx.value_and_grad(model.loss_fn)(gpt, batch, cfg)" in out
        assert "optimizer.update(gpt, grads)" in out and "return nnx.split((gpt, optimizer))" in out
        assert "nnx.jit called per step" in " ".join(out.split()) and "2026-12-07" in out
        other = pair[0]
        aside = [p for p in views(pair)["train"].pieces if p.aside]
        assert len(aside) == 1 and not aside[0].shared and "idiomatic_train_step" in aside[0].titles[1], aside
        facing = {r.right.key: r.left.key for r in aside[0].rows if r.left and r.right}
        assert "jax.value_and_grad(" in facing["loss, grads = nnx.value_and_grad(model.loss_fn)(gpt, batch, cfg)"]
        update = "return state.apply_gradients(" if other == "flax_port" else "return optim.adam_update("
        assert facing["optimizer.update(gpt, grads) # in place"].startswith(update), (other, facing)
        assert facing["return loss"] == "return apply_grads(state, grads, cfg), loss"


@pytest.mark.parametrize("pair", PAIRS)
def test_every_id_on_the_page_is_one_place(pair):
    """A note link and the switch jump to an id: each names one element (the twin's step, shown again
    facing the NNX idiom, once gave its lines' ids twice)."""
    text = page.render(list(views(pair).values()), {name: [] for name in lesson.TOPICS}, [], None, pair, 0)
    ids = re.findall(r'\sid="([^"]+)"', text)
    twice = sorted({i for i in ids if ids.count(i) > 1})
    assert ids and not twice, twice


def test_the_page_reads_the_same_teaching():
    pair = ("pure", "nnx_port")
    text = page.render(list(views(pair).values()), {name: [] for name in lesson.TOPICS}, [], None, pair, 0)
    assert all(html.escape(t.split(":")[0]) in text for t in lesson.opening(pair))
    assert '<section id="opening">' in text and text.index('id="opening"') < text.index('id="topic-params"')
    assert "idiomatic_train_step" in text and 'class="aside"' in text
    assert text.count("written so only to stay bitwise") == sum(
        1 for v in views(pair).values() for n in v.notes if n.idiom)


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


def terminal_of(columns: int) -> tuple[int, int]:
    """A pseudo-terminal (controller, terminal end) `columns` wide."""
    import fcntl
    import os
    import struct
    import termios

    controller, end = os.openpty()
    fcntl.ioctl(end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    return controller, end


def test_piped_into_cat_from_an_80_column_terminal_two_columns_fit_and_no_escape_codes():
    """`compare diff attention | cat` in an 80-column terminal: standard output is a pipe, standard error
    the terminal, whose width it takes (no --width, no $COLUMNS); two columns, no line wider than
    80, and no colour (the output is not a terminal)."""
    import os
    import subprocess

    controller, end = terminal_of(80)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"PYTHONPATH": str(ROOT), "NO_COLOR": ""}
    try:
        r = subprocess.run([sys.executable, "-m", "compare", "diff", "attention"], stdout=subprocess.PIPE, stderr=end,
                           stdin=subprocess.DEVNULL, env=env, text=True, timeout=300)
    finally:
        os.close(end)
        os.close(controller)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and "\033[" not in r.stdout and "━━ attention " in r.stdout
    assert max(len(ln) for ln in lines) <= 80 and sum(" │ " in ln for ln in lines) > 10


def test_the_width_comes_from_whichever_stream_is_a_terminal(monkeypatch):
    import os

    from compare.lesson import command

    monkeypatch.delenv("COLUMNS", raising=False)
    # standard output is whatever ran pytest (a terminal under `pytest -s`): only the streams given count
    monkeypatch.setattr(command.shutil, "get_terminal_size", lambda fallback: os.terminal_size(fallback))
    controller, end = terminal_of(97)
    read, write = os.pipe()
    try:
        assert command.terminal_width(None, streams=(write, end)) == 97  # a pipe first, then the terminal
        assert command.terminal_width(None, streams=(write, read)) == 160  # no terminal anywhere
        assert command.terminal_width(72, streams=(end,)) == 72  # --width wins
    finally:
        for fd in (controller, end, read, write):
            os.close(fd)
    # COLUMNS=100000 printed lines of 300,000 characters while --width 100000 was refused: capped
    monkeypatch.setattr(command.shutil, "get_terminal_size", lambda fallback: os.terminal_size((100000, 24)))
    assert command.terminal_width(None) == command.MAX_WIDTH


# ----------------------------------------------------------------------------- errors


def one_line_error(capsys, argv, main=lesson.main) -> str:
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_an_unknown_implementation_or_a_pair_of_one(capsys):
    assert "jaxlib has no impl() function" in one_line_error(capsys, ["--pair", "pure,jaxlib"])
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
    assert "wider than any screen" in one_line_error(capsys, ["--width", "99999999999999999999"])  # a traceback


def test_lesson_refuses_a_page_it_cannot_write_and_writes_nothing(capsys, tmp_path):
    assert "does not exist" in one_line_error(capsys, ["--html", "/nonexistent-dir/x.html"], lesson.lesson_main)
    assert "--steps -1" in one_line_error(capsys, ["--html", str(tmp_path / "x.html"), "--steps", "-1"],
                                          lesson.lesson_main)
    # HTML under another extension (x.png) was written as asked, and opened as an image
    assert "give a name ending in .html" in one_line_error(capsys, ["--html", str(tmp_path / "x.png")],
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
    tag = '<meta name="generator" content="microgpt-jax compare lesson">'
    for quoting in (f"<html><!-- {tag} --><body>notes</body></html>",  # a user's page quoting the tag
                    f"<html><head></head><body><pre>{tag}</pre></body></html>"):
        mine.write_text(quoting)
        assert not checkpoint.is_lesson_page(str(mine)), quoting


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
    # train's and sampling's checks read the grid's outputs (Runner.output): they fail too (with jit,
    # where the patched model's programs come back from the tests' cache)
    from compare.lesson.checks import topic_checks

    for topic in ("train", "sampling"):
        for label, check in topic_checks(topic, PAIR):
            if label.endswith("[jit]"):
                with pytest.raises(AssertionError, match="got different"):
                    check()


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
    # each code column holds at least 32 characters (measured 2026-12-07: 35.9 at 390 px, 38.4 at 800
    # with both sides, 77.6 at 1400)
    assert m["code_cells"] > 100 and m["min_code_chars"] >= 32
    sides = 2 if width >= page.WIDE else 1  # under WIDE px one side at a time, chosen by the page's switch
    assert m["both_sides"] == [sides] * len(m["both_sides"]) and len(m["both_sides"]) > 10
    # no name, number or operator laid out over two lines, but a name wider than a column (over
    # page.LONG_NAME characters) at a soft hyphen after an underscore or dot, where the continuation
    # mark shows; what a reader copies has no soft hyphen in it
    assert m["broken"] == [], m["broken"]
    assert all(len(name) > page.LONG_NAME for name in m["marked_breaks"]), m["marked_breaks"]
    assert m["continuation"] == '"\u21a9"' and m["copied"] and "\u00ad" not in m["copied"], m["copied"]
    # a note's link to a line brings it into view on its side; below WIDE px the page's one switch
    # shows the side it names on every piece (from WIDE up both sides show whatever it says)
    assert m["note_links"] > 20 and m["links_hidden"] == [], m["links_hidden"]
    assert m["switched"] == ({"side-r": ["r"], "side-l": ["l"]} if width < page.WIDE else
                             {"side-r": ["lr"], "side-l": ["lr"]}), m["switched"]
    assert m["badge_cells"] > 0 and m["badges_apart"] == []  # badges stay on their line number's row
    assert m["run_log_clipped"] is False
    # code continues between tokens (after "(", "[", ".", "," and "="), and a long name at a soft
    # hyphen: no box scrolls sideways (measured 2026-12-07: one at 390 px before names could break)
    assert m["scrolling"] == [], m["scrolling"]
    # a reader meets code on the first screen of a laptop (the cheat-sheet's, 267 px down at 1400 px,
    # 2026-12-07; 818 px, a topic's, before it; the run's plot, once above the topics, follows them)
    assert width < 1400 or m["first_code_top"] < 900, m["first_code_top"]
    # the plot fits the column and its smallest text is at least 9.5 px (measured 10.2 at 390 px, 17.8 wider)
    assert m["plot_width"] <= width and m["plot_font_px"] >= 9.5
    # a phone shows one side at a time: not much taller than a wide screen (23,000 px against 13,700, 2026-12-07)
    assert m["height"] <= 2 * laid_out[1400]["height"]


@pytest.mark.full
@pytest.mark.parametrize("pair", [p for p in PAIRS if p != PAIR], ids=",".join)
def test_the_other_pairs_pages_fit_every_screen_too(pair, tmp_path):
    """The default pair's page is measured in the quick tier (above); the other two under --full, at
    each width, light at 800 and 1400, dark at 390: nothing wider than the screen, no code box
    scrolling sideways, no name broken without its mark, both sides from page.WIDE px up, every note
    link landing on its line shown, and the switch showing the side it names."""
    if browser.chromium() is None:
        pytest.skip("chromium is not installed: `apt-get install chromium` (.ci/run installs it where missing)")
    target = tmp_path / "lesson.html"
    assert run_cli(lesson.lesson_main, ["--html", str(target), "--steps", "0", "--pair", ",".join(pair)]) == 0
    measured = tmp_path / "measured.html"
    measured.write_text(browser.measurable(target.read_text(encoding="utf-8"), page.LIGHT, page.DARK),
                        encoding="utf-8")
    for width in WIDTHS:
        m = browser.lay_out(measured, width, dark=width == 390)
        assert m["doc_width"] <= width and m["scrolling"] == [] and m["broken"] == [], (width, m["scrolling"])
        assert m["min_code_chars"] >= 32, (width, m["min_code_chars"])
        sides = 2 if width >= page.WIDE else 1
        assert set(m["both_sides"]) == {sides} and m["links_hidden"] == [], (width, m["links_hidden"])
        assert m["switched"]["side-r"] == (["r"] if sides == 1 else ["lr"]), width
        for scheme in ("light", "dark"):
            assert m[scheme]["low"] == [] and m[scheme]["min"] >= 4.5, (width, scheme)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_text_is_4_5_to_1_in_the_light_and_the_dark_scheme(laid_out, width):
    m = laid_out[width]
    for scheme in ("light", "dark"):
        assert m[scheme]["texts"] > 1000 and m[scheme]["low"] == [] and m[scheme]["min"] >= 4.5, scheme
    # the browser's own preference picks the scheme (390 px was laid out with --force-dark-mode)
    wanted = page.DARK["bg"] if width == 390 else page.LIGHT["bg"]
    assert m["scheme_bg"] == "rgb({}, {}, {})".format(*(int(wanted[k:k + 2], 16) for k in (1, 3, 5)))


@pytest.mark.parametrize("width", WIDTHS)
def test_the_learners_view_folds_what_only_the_checks_need(laid_out, width):
    """By default no docstring and no tap(...) call shows outside the taps topic, and the lines
    written only to stay bitwise show their idiom; "show what is proven equal" shows the code as the
    checks run it, more rows, and no idiom (the twin below breaks it)."""
    learner, proven = laid_out[width]["views"]["learner"], laid_out[width]["views"]["proven"]
    assert learner["docstrings"] == 0 and learner["taps"] == 0 and learner["idioms"] > 0, learner
    assert proven["docstrings"] > 0 and proven["taps"] > 0 and proven["idioms"] == 0, proven
    assert learner["rows"] < proven["rows"], (learner, proven)


def test_the_measurements_catch_a_page_that_breaks_names_and_overflows(browser_page):
    """The twin: the old page's faults put back by CSS, each caught by the same measurements."""
    text, where = browser_page
    broken = ("table.code td.src { overflow-wrap: anywhere; } td.src span.nw { white-space: inherit; }"  # names cut
              "#topic-sampling .scroll table.code { min-width: 1500px; }"  # code boxes that scroll sideways
              "h1 { min-height: 3000px; }"  # code far below the first screen
              ".piece.two .scroll td.l, .piece.two .scroll td.r { display: table-cell !important; }"  # both sides
              "#topic-params .piece.two td.r { visibility: hidden; }"  # a side a note's link cannot show
              "td.src, code.hl { hyphenate-character: auto; }"  # a break inside a name with no mark
              "table.code td.ln { white-space: normal; width: 1ch; }"  # badges above their number
              "pre.run { white-space: pre; overflow: hidden; }"  # the log clipped
              ":root.light { --t-comment: #60a0b0; }"  # friendly's comment colour
              ".code .asrun { display: inline !important; } .code tr.asrun { display: table-row !important; }"
              ".code .idiom { display: none !important; }")  # no learner's view
    target = where / "broken.html"
    target.write_text(browser.measurable(text, page.LIGHT, page.DARK, broken), encoding="utf-8")
    m = browser.lay_out(target, 390)
    assert m["broken"] and m["badges_apart"] and m["run_log_clipped"] is True
    assert set(m["both_sides"]) == {2} and len(m["scrolling"]) >= 2 and m["first_code_top"] > 3000
    assert any(link.startswith("#params-") for link in m["links_hidden"]) and m["switched"]["side-r"] == ["lr"]
    assert m["continuation"] != '"\u21a9"'
    assert any("c1" in where for where, _, _ in m["light"]["low"]) and m["dark"]["low"] == []
    learner = m["views"]["learner"]
    assert learner["docstrings"] and learner["taps"] and not learner["idioms"], learner


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


def test_two_builds_of_the_page_are_the_same_bytes(built_page, tmp_path):
    """Nothing in the page depends on the moment it was built (no date, no random id): the same code
    and versions give the same file (the checks' outcomes are reused; the plot's bytes are tested in
    tests/test_safety.py). 2026-12-07, by hand: two builds with a 20-step run, `cmp` equal."""
    again = tmp_path / "again.html"
    assert run_cli(lesson.lesson_main, ["--html", str(again), "--steps", "0"]) == 0
    assert again.read_text(encoding="utf-8") == built_page[1]


def test_the_tokens_that_differ_are_marked_inside_a_paired_row(capsys):
    """Token-level marking (terminal.changed_spans): in `x = nn.Dense(3)(h)` against
    `x = nnx.Linear(3)(h)` only the module's path differs; lines the same have no mark. On a
    terminal the changed tokens take the side's colour and the rest of the row stays plain; without
    colour, carets under them."""
    def line(text):
        return lesson.logical_lines([text], "a.py", 1)[0]

    def marked(a, b):
        spans = terminal.changed_spans(line(a), line(b))
        return ["".join(text[c] for c in sorted(cols)) for text, cols in zip((a, b), (spans[0][0], spans[1][0]))]

    assert marked("x = nn.Dense(3)(h)", "x = nnx.Linear(3)(h)") == ["nnDense", "nnxLinear"]
    assert marked("x = f(h)  # a comment", "x = f(h)  # another") == ["", ""]  # comments are not compared
    assert marked("y = g(h)", "y = g(h)") == ["", ""]
    v = lesson.view("attention", PAIR)
    painted = next(ln for ln in lesson.render_topic(v, 160, True, None) if 'q = tap(' in ln and "taps" in ln)
    assert "\033[1;31mtaps\033[0m" in painted and "\033[1;32mself\033[0m" in painted
    assert "q = tap(" in painted  # what both lines share, plain
    plain = lesson.render_topic(v, 160, False, None)
    k = next(i for i, ln in enumerate(plain) if 'q = tap(taps' in ln)
    left, under = plain[k].split(" │ ")[0], plain[k + 1].split(" │ ")[0]
    assert under[left.index("taps"):left.index("taps") + 4] == "^^^^" and "^" not in under[:left.index("taps")]


def test_the_page_marks_the_tokens_that_differ_and_nothing_in_rows_the_same():
    pair = ("pure", "flax_port")
    v = lesson.view("attention", pair)
    text = page.render([v], {"attention": []}, [], None, pair, 0)
    rows = re.findall(r'<tr class="(\w+)" title=[^>]*>(.*?)</tr>', text, re.S)
    q_row = next(body for kind, body in rows if kind == "differ" and "tap</span>" in body and "taps" in body)
    left, right = q_row.split('<td class="ln r', 1)
    assert '<mark class="chg">taps</mark>' in left and '<mark class="chg">self</mark>' in right
    assert ">tap</span>" in left and ">tap</span>" in right  # what both lines share, unmarked
    assert all("<mark" not in body for kind, body in rows if kind != "differ")
    assert sum(kind == "differ" and "<mark" in body for kind, body in rows) >= 8


def test_structure_faces_its_counterpart_across_the_styles():
    """The counterpart rules for what linen and NNX place differently (issue 30): the optimizer
    made (pure's Adam moments, linen's TrainState, nnx.Optimizer), a linen field against the NNX
    constructor, and pure's table of shapes facing nothing rather than the first def of the other
    side. Each assertion fails if its rule is taken out of content.COUNTERPARTS."""
    assert faces_in(("pure", "nnx_port"), "train", "return params, optim.adam_init(params)").startswith(
        "optimizer = nnx.Optimizer(")
    assert faces_in(("pure", "nnx_port"), "train", "return nnx.split((gpt, optimizer))", side=1) is None
    assert faces_in(("flax_port", "nnx_port"), "train", "return train_state.TrainState.create(").startswith(
        "optimizer = nnx.Optimizer(")
    assert faces_in(("pure", "flax_port"), "train", "return params, optim.adam_init(params)").startswith(
        "return train_state.TrainState.create(")
    assert faces_in(("flax_port", "nnx_port"), "attention", "cfg: Config").startswith("def __init__(self, cfg: Config")
    for pair in (("pure", "flax_port"), ("pure", "nnx_port")):
        assert faces_in(pair, "names", "def param_shapes(") is None, pair


def test_a_counterpart_rule_can_be_seen_to_matter(monkeypatch):
    """The twin: without the optimizer rule, pure's adam_init line faces nnx's split, as it did."""
    from compare.lesson import content

    rules = tuple(g for g in content.COUNTERPARTS if g.get("nnx_port") != "optimizer = nnx.Optimizer(")
    monkeypatch.setattr(views_module, "COUNTERPARTS", rules)
    pair = ("pure", "nnx_port")
    v = views_module.view("train", pair)
    row = next(r for p in v.pieces for r in p.rows if r.left and "adam_init(params)" in r.left.key)
    assert row.right is not None and row.right.key.startswith("return nnx.split(")


def test_a_note_on_nnx_behaviour_names_the_flax_it_was_built_with():
    from importlib import metadata

    notes = [n.text for n in views(("pure", "nnx_port"))["taps"].notes]
    assert any(f"flax {metadata.version('flax')}, the version this lesson was built with" in t for t in notes)
    assert not any("0.12.8" in t for t in notes) or metadata.version("flax") == "0.12.8"


def test_the_lesson_run_keeps_the_commands_name_and_leaves_no_scratch_folder(tmp_path, capsys):
    """The side-by-side run inside `compare lesson` plots into a scratch folder: its error says
    `compare lesson:` (it said `compare:`), and the folder is neither left behind nor reported as
    saved (Ctrl-C said `already saved: /tmp/.../curves.svg`); the handler would remove it."""
    from common import shell

    before, written = set(shell.temporaries), list(shell.written)
    message = one_line_error(capsys, ["--html", str(tmp_path / "l.html"), "--steps", "99999999"],
                             lesson.lesson_main)
    assert message.startswith("compare lesson: error: ") and "positions" in message, message
    assert set(shell.temporaries) == before and shell.written == written
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_the_lessons_run_names_the_lesson(tmp_path, capsys, monkeypatch):
    """Ctrl-C while the side-by-side run trains (its parser has read its flags): the signal handler
    names shell.prog at that moment, which must still be `compare lesson`, not the inner run's
    `compare`; nothing saved, no page."""
    from common import shell
    from compare import run

    named = []

    def interrupted(*args, **kwargs):
        named.append(shell.prog)  # what common/shell.py's handler would print now
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "prepare_run", interrupted)
    code = run_cli(lesson.lesson_main, ["--html", str(tmp_path / "l.html"), "--steps", "30"])
    assert named == ["compare lesson"], named
    assert code == 130 and capsys.readouterr().err.strip() == "compare lesson: interrupted; nothing was saved"
    assert list(tmp_path.iterdir()) == [] and not shell.prog_pinned


# Lines the sample below accepts as one concept though they share no name: the layer loop (pure and
# linen count layers, NNX iterates its blocks) and the initial weights (pure draws each tensor from
# jax.random.normal, NNX hands its constructor an nnx.Rngs).
SAME_CONCEPT = ({"layer", "block"}, {"normal", "rngs"})
GENERIC_NAMES = {"self", "cfg", "x", "None", "True", "False", "jnp", "jax", "nn", "nnx", "np", "int", "float", "str",
                 "Config"}


def names_of(key: str) -> set[str]:
    code = key if key.startswith("#") else key.split("#")[0]
    return {t.lower() for t in re.findall(r"[A-Za-z_]\w*", code)
            if not keyword.iskeyword(t) and t not in GENERIC_NAMES}


def one_concept(left, right, pins) -> bool:
    """Whether two facing lines plausibly do the same thing: a counterpart rule pairs them, their
    code is the same (the comments differ), they share a name (or one holds the other: adam_init,
    adam), or a pair of SAME_CONCEPT names."""
    from compare.lesson.align import pin_of

    if pin_of(left, pins, 0) is not None and pin_of(left, pins, 0) == pin_of(right, pins, 1):
        return True
    if left.key.split("#")[0].strip() and left.key.split("#")[0] == right.key.split("#")[0]:
        return True
    a, b = names_of(left.key), names_of(right.key)
    if any(x == y or (min(len(x), len(y)) >= 4 and (x in y or y in x)) for x in a for y in b):
        return True
    return any(any(w in x for x in a) and any(w2 in y for y in b) for w, w2 in
               [(p, q) for group in SAME_CONCEPT for p in group for q in group if p != q])


def paired_rows(pair) -> list[tuple[str, object]]:
    """Every row of a pair's page where two different lines of code (comments included, docstrings
    not) face each other, past each piece's first line (a def or class faces the other's by design)."""
    found = []
    for name, v in views(pair).items():
        for piece in v.pieces:
            for k, row in enumerate(piece.rows):
                if (k and row.left and row.right and row.left.key and row.right.key
                        and row.left.key != row.right.key and not row.left.prose[0] and not row.right.prose[0]):
                    found.append((name, row))
    return found


@pytest.mark.parametrize("pair", PAIRS, ids=",".join)
def test_twenty_sampled_pairings_and_every_other_face_the_same_concept(pair):
    """Issue 30's check of the pairing, by a test: 20 rows drawn at random (a fixed seed) from each
    page's facing lines that differ, and then every other such row, each judged by one_concept."""
    import random

    rows = paired_rows(pair)
    assert len(rows) >= 20, len(rows)
    pins = views_module.counterparts(pair)
    sample = random.Random(30).sample(rows, 20)
    for group in (sample, rows):
        wrong = [(name, row.left.key, row.right.key) for name, row in group
                 if not one_concept(row.left, row.right, pins)]
        assert wrong == [], wrong


def test_the_pairing_sample_catches_comments_paired_on_little_words(monkeypatch):
    """The twin: comment lines scored on every token, as they were ("the", "(" and "a" counted), pair
    linen's "that the weights are a tap" with NNX's "nnx.dot_product_attention ... hands off to"."""
    import importlib

    align_module = importlib.import_module("compare.lesson.align")  # the package's `align` is the function
    monkeypatch.setattr(align_module, "content_words", lambda text: re.findall(r"\w+|[^\w\s]", text))
    views.cache_clear()
    try:
        pair = ("flax_port", "nnx_port")
        pins = views_module.counterparts(pair)
        wrong = [row.left.key for _, row in paired_rows(pair) if not one_concept(row.left, row.right, pins)]
        assert any(key.startswith("# that the weights are a tap") for key in wrong), wrong
    finally:
        views.cache_clear()


@pytest.mark.parametrize("pair", PAIRS, ids=",".join)
def test_the_cheat_sheet_comes_first_and_links_each_idiom_to_its_line(pair):
    """content.CHEAT_SHEET on each pair's page, before the topics: every idea both sides have, each
    side's line quoted as it stands in the source and linked to that line's row in its topic."""
    from compare.lesson import content

    text = page.render(list(views(pair).values()), {name: [] for name in lesson.TOPICS}, [], None, pair, 0)
    section = re.search(r'<section id="cheatsheet">(.*?)</section>', text, re.S)
    assert section and text.index('id="cheatsheet"') < text.index('id="topic-params"')
    expected = [idea for idea, pieces in content.CHEAT_SHEET if pair[0] in pieces and pair[1] in pieces]
    ideas = [html.unescape(idea) for idea in re.findall(r"<tr><th>([^<]+)</th>", section.group(1))]
    assert ideas == expected and len(expected) >= 6
    links = re.findall(r'href="#([\w-]+)"', section.group(1))
    assert len(links) == 2 * len(expected)
    for link in links:
        topic, impl, number = re.fullmatch(r"(\w+)-(\w+)-(\d+)", link).groups()
        assert f'id="{link}"' in text, link  # the row it links to is on the page
        source = (ROOT / impl / f"{topic_file(impl, topic, int(number))}").read_text().splitlines()
        assert any(pieces[impl].replace("\\", "") in source[int(number) - 1]
                   for _, pieces in content.CHEAT_SHEET if impl in pieces), (link, source[int(number) - 1])


def topic_file(impl: str, topic: str, number: int) -> str:
    """The file of `impl` whose line `number` a topic shows (the row ids name topic, side and line)."""
    for piece in views_module.view(topic, (impl, "pure" if impl != "pure" else "flax_port")).pieces:
        for row in piece.rows:
            if row.left and row.left.lineno and row.left.lineno <= number < row.left.lineno + len(row.left.physical):
                return row.left.path.split("/", 1)[1]
    raise AssertionError(f"{impl} {topic} shows no line {number}")


def test_a_cheat_sheet_idiom_no_topic_shows_is_refused(monkeypatch):
    """The twin: an idiom whose line is in no topic's code stops the build, naming it."""
    from compare.lesson import content

    monkeypatch.setattr(views_module, "CHEAT_SHEET", content.CHEAT_SHEET + (
        ("a made-up idiom", {"pure": "no such line anywhere(", "flax_port": "nor here("}),))
    with pytest.raises(LookupError, match="a made-up idiom"):
        views_module.cheat_sheet(list(views(("pure", "flax_port")).values()))


def test_a_scratch_plot_that_cannot_be_written_is_named_as_such(monkeypatch):
    """The page's side-by-side run draws its curves in a scratch folder: a file size limit there said
    `cannot save to /tmp/tmpXXXX/curves.svg`, a path the user never gave (eighteenth hostile pass).
    The line names the scratch folder and what to do."""
    import pytest

    from common.errors import UserError
    from compare import run
    from compare.lesson import checks

    def full(argv):
        raise UserError(f"cannot save to {argv[argv.index('--plot') + 1]} (File too large): nothing was written there")

    monkeypatch.setattr(run, "main", full)
    with pytest.raises(UserError) as caught:
        checks.side_by_side_run(("pure", "flax_port"), 2, False)
    said = str(caught.value)
    assert said.startswith("the loss curves could not be drawn in a scratch folder under ") and "curves.svg" not in said
    assert said.endswith("point TMPDIR at another folder, or raise the file size limit"), said
