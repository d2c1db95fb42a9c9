"""The lesson: one implementation's code beside another's, concept by concept, each line facing
the line that does the same thing, what differs marked, and the checks that prove it.

`python -m compare diff [topic ...]` prints it; `python -m compare lesson --html PATH` writes it
as a web page (compare/page.py). The code is read live from the source files with `inspect`:
nothing here is a copy of it, so the lesson cannot go stale.

How lines are aligned: each piece of code is cut into logical lines (a statement spanning
several physical lines stays one unit). Lines equal on both sides once whitespace is collapsed
are anchors, found with difflib.SequenceMatcher; between two anchors, a small dynamic programme
pairs the lines that assign the same name or carry the same comment (the twins share both), and
leaves the rest facing a gap. The first lines of two pieces (their `def` or `class`) always face.
"""

import dataclasses
import difflib
import functools
import importlib
import inspect
import io
import os
import re
import shutil
import sys
import textwrap
import tokenize
from pathlib import Path

from common.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
IMPLS = ("pure", "flax_port", "nnx_port")
DEFAULT_PAIR = ("pure", "flax_port")

# ----------------------------------------------------------------------------- topics


@dataclasses.dataclass(frozen=True)
class Note:
    """What a framework took over, pointing at the line of the implementation where it happens
    (`at`, a piece of that line's text), optionally at the library's own lines (`inside`:
    ("module:object", a piece of the line's text), ...) and at the lines of another
    implementation that do it by hand (`faces`)."""

    at: str
    text: str
    inside: tuple[tuple[str, str], ...] = ()
    faces: tuple[tuple[str, str], ...] = ()  # (implementation, a piece of its line): what it does instead


@dataclasses.dataclass(frozen=True)
class Topic:
    concept: str  # one sentence: what this part of microgpt does
    # implementation -> the objects shown, piece by piece ("module:object", relative to the
    # implementation's package unless the module has a dot; "a + b" shows a and b as one piece;
    # "a | b" shows a, or b where a does not exist).
    # The k-th piece of one implementation faces the k-th piece of the other.
    pieces: dict[str, tuple[str, ...]]
    notes: dict[str, tuple[Note, ...]] = dataclasses.field(default_factory=dict)
    shared: tuple[str, ...] = ()  # code both use, shown once above the pieces


ATTENTION_INSIDE = (
    ("flax.linen.attention:dot_product_attention_weights", "query = query / jnp.sqrt(depth)"),
    ("flax.linen.attention:dot_product_attention_weights", "big_neg = jnp.finfo(dtype).min"),
)

FLAX_NOTES = {
    "params": (
        Note("nn.Dense(", "nn.Dense creates its kernel, laid out (in, out) as pure's matrices, the first time it is "
             "called, names it and draws it from kernel_init; use_bias=False, or it would add a bias."),
        Note("GPT(cfg).init(", "init runs the model once on dummy tokens and collects every parameter the modules "
             "create on the way: flax has no list of shapes; the tree it returns is named after the modules "
             "(see the names topic)."),
    ),
    "names": (
        Note("return (layer,", "a flax path is the chain of module names: the name= given to the Block (l0), "
             "the Attention or MLP (attn, mlp), the Dense (wq), then the variable the layer made (kernel; "
             "embedding for an nn.Embed)."),
    ),
    "forward": (
        Note("nn.RMSNorm(", "nn.RMSNorm computes x / sqrt(mean(x²) + eps); its defaults (a learnable scale, "
             "eps 1e-6) are switched off here.", (("flax.linen.normalization:_normalize", "lax.rsqrt("),)),
        Note("x = x + Attention(", "a submodule is made inside __call__ (nn.compact) and called at once; it finds "
             "its weights in the params tree under its name, where pure passes the dict and the layer index."),
        Note(".attend(x)", "lm_head is an nn.Embed read with attend: x @ table.T, pure's "
             "`x @ params[\"lm_head\"].T`.", faces=(("pure", 'x @ params["lm_head"].T'),)),
        Note("GPT(cfg).apply(", "the module holds no weights: apply binds the params tree to it for one call. "
             "This is where flax's weights meet its code; everything else calls forward."),
    ),
    "attention": (
        Note("nn.make_causal_mask(", "the lower-triangular mask, pure's `jnp.tril(jnp.ones((T, T), bool))`, with "
             "a leading axis for the heads.", faces=(("pure", "jnp.tril("),)),
        Note("nn.dot_product_attention_weights(", "scales q by 1/sqrt(hd) (pure's `q = q / jnp.sqrt(hd)`, facing "
             "a gap), forms the scores, fills the masked ones with the dtype's lowest value and takes the softmax: "
             "pure's four lines, inside one call; the einsum with v is written out (what nn.dot_product_attention "
             "does inside) so that the weights are a tap.", ATTENTION_INSIDE,
             faces=(("pure", "q = q / jnp.sqrt(hd)"),)),
    ),
    "loss": (
        Note("optax.softmax_cross_entropy_with_integer_labels(", "computes logsumexp(logits) - logits[target], "
             "the form pure writes out, so the two losses are bitwise equal.",
             (("optax.losses:softmax_cross_entropy_with_integer_labels", "out = log_normalizers - label_logits"),),
             (("pure", "nll = jax.nn.logsumexp("),)),
    ),
    "optimizer": (
        Note("optax.linear_schedule(", "the schedule, a function of the step count optax keeps in its state.",
             faces=(("pure", "return cfg.learning_rate * (1 - step / cfg.num_steps)"),)),
        Note("optax.adam(", "builds what pure's adam_init and adam_update write out: the moments mu and nu, the "
             "count, the bias corrections and the update.",
             (("optax:scale_by_adam", "mu_hat = optax.tree.bias_correction(mu, b1, count_inc)"),),
             (("pure", "c1, c2 = 1 - b1**t"),)),
    ),
    "train": (
        Note("TrainState.create(", "a TrainState holds params, the optax transformation (tx) and its state; "
             "create calls tx.init(params)."),
        Note("state.apply_gradients(", "runs tx.update and optax.apply_updates and counts the step: pure's "
             "adam_update.", (("flax.training.train_state:TrainState.apply_gradients", "optax.apply_updates("),),
             (("pure", "return optim.adam_update("),)),
    ),
    "sampling": (
        Note("GPT(cfg).apply(", "the logits function is the module applied to the params tree; the loop "
             "around it is the same code for both."),
    ),
}

NNX_NOTES = {
    "params": (
        Note("nnx.Linear(", "nnx.Linear creates its kernel at once, in __init__, from the rngs it is given: it "
             "needs the input width too (linen's nn.Dense waits for the first call to see it); use_bias=False, "
             "or it would add a bias.", faces=(("flax_port", "nn.Dense("),)),
        Note("GPT(cfg, rngs=nnx.Rngs(params=key))", "building the module draws every weight: no dummy forward "
             "pass, no separate params tree; the module object is the model and its weights.",
             faces=(("flax_port", "GPT(cfg).init("), ("pure", "keys = jax.random.split(")),),
    ),
    "names": (
        Note('return ("blocks", index,', "an NNX path is the chain of attribute names: the layers sit in "
             "self.blocks (an nnx.List), so l0.wq is blocks/0/attn/wq/kernel, where linen says l0/attn/wq/kernel.",
             faces=(("flax_port", "return (layer,"),)),
    ),
    "forward": (
        Note("nnx.RMSNorm(", "the same normalisation as nn.RMSNorm; NNX modules take their feature count up "
             "front (cfg.n_embd) and an rngs, even with no scale to draw.", faces=(("flax_port", "nn.RMSNorm("),)),
        Note("self.blocks = nnx.List(", "submodules are attributes set in __init__; a plain Python list of them is "
             "refused, nnx.List holds the layers.", faces=(("flax_port", "x = Block(cfg, name="),)),
        Note("return gpt(tokens)", "the module holds its weights: forward is a plain call, where linen binds a "
             "params tree with GPT(cfg).apply({'params': ...}).", faces=(("flax_port", "GPT(cfg).apply("),)),
    ),
    "attention": (
        Note("dot_product_attention_weights(", "the scaled, masked softmax of q·k from flax's own attention code, "
             "then the einsum with v written out: nnx.dot_product_attention hands off to "
             "jax.nn.dot_product_attention, whose backward sums in another order (gradients up to 9 ulps "
             "from pure's); this pair of lines is what flax_port writes too, and stays bitwise.",
             ATTENTION_INSIDE, faces=(("flax_port", "nn.dot_product_attention_weights("),
                                      ("pure", "q = q / jnp.sqrt(hd)"))),
    ),
    "loss": (
        Note("optax.softmax_cross_entropy_with_integer_labels(", "the same optax loss as linen's port: NNX "
             "changes how weights are held, not the maths.", faces=(("pure", "nll = jax.nn.logsumexp("),)),
    ),
    "optimizer": (
        Note("optax.adam(", "the same optax transformation as linen's port; nnx.Optimizer (train.py) carries "
             "it and its state beside the model.", faces=(("pure", "c1, c2 = 1 - b1**t"),)),
    ),
    "train": (
        Note("nnx.Optimizer(", "holds the optax transformation, its state (mu, nu, count) and the step; "
             "wrt=nnx.Param says which variables it updates.", faces=(("flax_port", "TrainState.create("),)),
        Note("return nnx.split((gpt, optimizer))", "split turns live modules into a static graphdef and a pytree "
             "of arrays, which jax.jit and lax.scan carry like any other state; merge turns them back inside "
             "the step, while tracing, so it costs nothing per step."),
        Note("optimizer.update(gpt, grads)", "updates the model's Params and the moments in place: linen's "
             "apply_gradients returns a new TrainState, pure returns new dicts.",
             faces=(("flax_port", "state.apply_gradients("), ("pure", "return optim.adam_update("))),
    ),
    "sampling": (
        Note("model.forward(gpt, tokens, cfg)", "the logits function calls the module itself; the loop around "
             "it is the same code for all three."),
    ),
}

TOPICS = {
    "params": Topic(
        "The weights: nine tensors in the seed's names, 4,192 numbers for 27 characters, each drawn from "
        "N(0, 0.08²).",
        {
            "pure": ("model:param_shapes + model:dense", "model:init_params"),
            "flax_port": ("model:embed + model:dense", "model:init_params"),
            "nnx_port": ("model:embed + model:dense", "model:init_params"),
        },
        {"flax_port": FLAX_NOTES["params"], "nnx_port": NNX_NOTES["params"]},
    ),
    "names": Topic(
        "Where each tensor lives: the checkpoint's flat names, the hub every implementation maps to and from.",
        {
            "pure": ("model:param_shapes",),
            "flax_port": ("checkpoint:flax_path | compare.convert:flax_path",),
            "nnx_port": ("checkpoint:nnx_path",),
        },
        {"flax_port": FLAX_NOTES["names"], "nnx_port": NNX_NOTES["names"]},
    ),
    "forward": Topic(
        "Tokens to logits: embeddings, RMSNorm, a pre-norm block (attention, then the MLP, each added to the "
        "residual stream), the output matrix.",
        {
            "pure": ("model:rmsnorm", "model:mlp", "model:block", "model:forward"),
            "flax_port": ("model:rmsnorm", "model:MLP", "model:Block", "model:GPT + model:forward"),
            "nnx_port": ("model:rmsnorm", "model:MLP", "model:Block", "model:GPT + model:forward"),
        },
        {"flax_port": FLAX_NOTES["forward"], "nnx_port": NNX_NOTES["forward"]},
    ),
    "attention": Topic(
        "Causal self-attention: each position mixes the values of itself and the positions before it, "
        "weighted by softmax(q·k / sqrt(hd)).",
        {"pure": ("model:attention",), "flax_port": ("model:Attention",), "nnx_port": ("model:Attention",)},
        {"flax_port": FLAX_NOTES["attention"], "nnx_port": NNX_NOTES["attention"]},
    ),
    "loss": Topic(
        "The loss: mean next-token cross-entropy over the name's real positions (the padding is masked out).",
        {impl: ("model:mean_nll + model:loss_fn",) for impl in IMPLS},
        {"flax_port": FLAX_NOTES["loss"], "nnx_port": NNX_NOTES["loss"]},
    ),
    "optimizer": Topic(
        "Adam (b1 0.85, b2 0.99, eps 1e-8), its learning rate decaying linearly from 0.01 to 0.",
        {
            "pure": ("optim:learning_rate", "optim:adam_init + optim:adam_update"),
            "flax_port": ("optim:learning_rate", "optim:adam"),
            "nnx_port": ("optim:learning_rate", "optim:adam"),
        },
        {"flax_port": FLAX_NOTES["optimizer"], "nnx_port": NNX_NOTES["optimizer"]},
    ),
    "train": Topic(
        "One training step: loss and gradients in one pass, then the update, threaded through lax.scan.",
        {
            impl: ("train:init_state", "train:compute_grads", "train:apply_grads", "train:train_step")
            for impl in IMPLS
        },
        {"flax_port": FLAX_NOTES["train"], "nnx_port": NNX_NOTES["train"]},
    ),
    "sampling": Topic(
        "Sampling: the loop is shared; each implementation says only where its logits come from.",
        {impl: ("sample:sample_tokens", "model:forward") for impl in IMPLS},
        {"flax_port": FLAX_NOTES["sampling"], "nnx_port": NNX_NOTES["sampling"]},
        shared=("common.sampling:sample_tokens",),
    ),
}


def parse_pair(text: str) -> tuple[str, str]:
    """'pure,flax_port' -> ('pure', 'flax_port'); refuses unknown, repeated or unimportable ones."""
    pair = tuple(part.strip() for part in text.split(","))
    if len(pair) != 2 or pair[0] == pair[1]:
        raise UserError(f"--pair {text!r}: give two different implementations, e.g. pure,flax_port")
    for impl in pair:
        if impl not in IMPLS:
            raise UserError(f"--pair {text!r}: unknown implementation {impl!r}: choose from {', '.join(IMPLS)}")
        try:
            importlib.import_module(impl)
        except ImportError as err:
            raise UserError(f"--pair {text!r}: {impl} is not importable here ({err})") from None
    return pair


# ----------------------------------------------------------------------------- source


@dataclasses.dataclass
class Line:
    """One logical line of source: a statement, a comment, a blank, kept whole across lines."""

    physical: list[str]  # the file's lines, indentation kept
    path: str  # shown relative to the repository (or to site-packages for a library)
    lineno: int  # of the first physical line
    comment_at: list[int | None]  # per physical line: column of a comment after code
    breaks: list[list[tuple[int, int]]]  # per physical line: (column, 0 after a comma, 1 after a bracket)
    #                                      after which the code may continue on the next line
    prose: list[bool]  # per physical line: inside a triple-quoted string

    @functools.cached_property
    def key(self) -> str:
        return " ".join(" ".join(self.physical).split())

    @functools.cached_property
    def comment(self) -> str:
        found = [p[c:] for p, c in zip(self.physical, self.comment_at) if c is not None]
        return " ".join(found[-1].split()) if found else ""

    @functools.cached_property
    def target(self) -> str:
        """What the line is about: the name it assigns, or the kind of statement."""
        key = self.key
        for start, kind in (("#", "#"), ("@", "@"), ("def ", "def"), ("class ", "def"), ('"""', "doc"),
                            ("'''", "doc"), ("return", "return")):
            if key.startswith(start):
                return kind
        m = re.match(r"([A-Za-z_][\w\s,.\[\]]*?)\s*(?:[-+*/@]?=(?!=)|:\s)", key)
        if m:
            return m.group(1).replace(" ", "")
        word = re.match(r"\w+", key)
        return word.group(0) if word else ""

    @functools.cached_property
    def words(self) -> list[str]:
        code = self.key[: self.key.index("#")] if "#" in self.key and self.comment else self.key
        return re.findall(r"\w+|[^\w\s]", code)


def display_path(filename: str) -> str:
    path = Path(filename).resolve()
    if "site-packages" in path.parts:
        return "/".join(path.parts[path.parts.index("site-packages") + 1:])
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def resolve(ref: str, impl: str | None = None):
    """'model:GPT' (in `impl`'s package) or 'common.sampling:sample_tokens' -> the live object;
    of 'a | b', the first that exists."""
    if " | " in ref:
        first, rest = ref.split(" | ", 1)
        try:
            return resolve(first, impl)
        except (ImportError, AttributeError):
            return resolve(rest, impl)
    module, name = ref.split(":")
    if impl and "." not in module:
        module = f"{impl}.{module}"
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def logical_lines(physical: list[str], path: str, first: int) -> list[Line]:
    """Cut source into logical lines, noting comments, places to continue a line, and strings."""
    physical = [p.rstrip("\n") for p in physical]
    n = len(physical)
    comment_at: list[int | None] = [None] * n
    breaks: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    prose = [False] * n
    ends, depth, fstring = [], 0, 0
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    for tok in tokenize.generate_tokens(io.StringIO("\n".join(physical) + "\n").readline):
        (r0, c0), (r1, c1) = tok.start, tok.end
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
            if not fstring:
                breaks[r0 - 1].append((c1, 1))
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == "," and depth > 0 and not fstring:
            breaks[r0 - 1].append((c1, 0))
        elif tok.type == tokenize.COMMENT and physical[r0 - 1][:c0].strip():
            comment_at[r0 - 1] = c0
        elif tok.type == tokenize.STRING and tok.string.lstrip("rbuRBUfF")[:3] in ('"""', "'''"):
            for r in range(r0, r1 + 1):
                prose[r - 1] = True
        elif tok.type == fstring_start:
            fstring += 1
        elif tok.type == fstring_end:
            fstring -= 1
        if tok.type == tokenize.NEWLINE or (tok.type == tokenize.NL and depth == 0):
            ends.append(r0)
    lines, start = [], 1
    for end in ends + ([n] if not ends or ends[-1] < n else []):
        if end < start:
            continue
        s = slice(start - 1, end)
        lines.append(Line(physical[s], path, first + start - 1, comment_at[s], breaks[s], prose[s]))
        start = end + 1
    return lines


def missing(impl: str, ref: str) -> list[Line]:
    return [Line([f"# {impl} has no {ref} (yet)"], impl, 0, [None], [[]], [False])]


def piece_lines(impl: str | None, spec: str) -> list[Line]:
    """The logical lines of one piece ('a + b' joins a and b with a blank line between)."""
    lines: list[Line] = []
    for ref in spec.split(" + "):
        try:
            obj = resolve(ref, impl)
        except (ImportError, AttributeError):
            lines += missing(impl or "", ref)
            continue
        physical, first = inspect.getsourcelines(obj)
        if lines:
            lines.append(Line([""], lines[-1].path, 0, [None], [[]], [False]))
        lines += logical_lines(physical, display_path(inspect.getsourcefile(obj)), first)
    return lines


def piece_title(impl: str | None, spec: str) -> str:
    """'flax_port/model.py:88 GPT + forward'."""
    refs = spec.split(" + ")
    try:
        obj = resolve(refs[0], impl)
        where = f"{display_path(inspect.getsourcefile(obj))}:{inspect.getsourcelines(obj)[1]}"
    except (ImportError, AttributeError):
        where = f"{impl}/{refs[0].split(':')[0].replace('.', '/')}.py"
    names = []
    for ref in refs:
        try:
            names.append(resolve(ref, impl).__qualname__)
        except (ImportError, AttributeError):
            names.append(ref.split(" | ")[0].split(":")[1])
    return f"{where} {' + '.join(names)}"


# ----------------------------------------------------------------------------- alignment

PAIR_AT = 0.6  # the least score for two different lines to face each other


def similarity(a: Line, b: Line) -> float:
    """How surely two different lines do the same thing: the name they assign (0.5), the comment
    they share (0.4), and how alike their code reads (up to 0.5)."""
    if not a.key or not b.key:
        return 0.2 if a.key == b.key else 0.0  # blanks face blanks where nothing better is lost
    score = 0.5 * difflib.SequenceMatcher(None, a.words, b.words, autojunk=False).ratio()
    if a.target and a.target == b.target:
        score += 0.5
    if a.comment and a.comment == b.comment:
        score += 0.4
    return score


def pair_between(left: list[Line], right: list[Line]) -> list[tuple[int | None, int | None]]:
    """Pairs (i, j) maximising the summed similarity, in order, each at least PAIR_AT (blanks
    excepted); the lines left over face a gap."""
    n, m = len(left), len(right)
    score = [[2.0 if a.key and a.key == b.key else similarity(a, b) for b in right] for a in left]
    allowed = [[score[i][j] >= PAIR_AT or not (left[i].key or right[j].key) for j in range(m)] for i in range(n)]
    best = [[0.0] * (m + 1) for _ in range(n + 1)]  # best[i][j]: the most that left[i:], right[j:] can score
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            take = best[i + 1][j + 1] + score[i][j] if allowed[i][j] else -1.0
            best[i][j] = max(best[i + 1][j], best[i][j + 1], take)
    out, i, j = [], 0, 0
    while i < n and j < m:
        if allowed[i][j] and best[i][j] == best[i + 1][j + 1] + score[i][j]:
            out.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            out.append((i, None))
            i += 1
        else:
            out.append((None, j))
            j += 1
    return out + [(k, None) for k in range(i, n)] + [(None, k) for k in range(j, m)]


@dataclasses.dataclass
class Row:
    left: Line | None
    right: Line | None

    @property
    def kind(self) -> str:
        """'same', 'differ', 'left' (nothing faces it on the right) or 'right'."""
        if self.left is None:
            return "right"
        if self.right is None:
            return "left"
        return "same" if self.left.key == self.right.key else "differ"


def align(left: list[Line], right: list[Line]) -> list[Row]:
    """Each line facing its counterpart or a gap (see the module's docstring)."""
    if not left or not right:
        return [Row(a, None) for a in left] + [Row(None, b) for b in right]
    rows = [Row(left[0], right[0])]  # a piece's def/class faces the other's
    left, right = left[1:], right[1:]
    # blanks never anchor: each gets a key of its own
    keys_l = [ln.key or ("L", i) for i, ln in enumerate(left)]
    keys_r = [ln.key or ("R", j) for j, ln in enumerate(right)]
    i = j = 0
    for block in difflib.SequenceMatcher(None, keys_l, keys_r, autojunk=False).get_matching_blocks():
        for a, b in pair_between(left[i:block.a], right[j:block.b]):
            rows.append(Row(None if a is None else left[i + a], None if b is None else right[j + b]))
        rows += [Row(left[block.a + k], right[block.b + k]) for k in range(block.size)]
        i, j = block.a + block.size, block.b + block.size
    return rows


@dataclasses.dataclass
class Piece:
    titles: tuple[str, str]
    rows: list[Row]
    shared: bool = False  # shown once: code both sides use


@dataclasses.dataclass
class Pointer:
    path: str
    lineno: int
    text: str  # the line, stripped


@dataclasses.dataclass
class ResolvedNote:
    impl: str
    text: str
    at: Pointer | None  # None: the line was not found in what the lesson shows
    inside: list[Pointer]
    faces: list[Pointer]  # in the other implementation of the pair


@dataclasses.dataclass
class TopicView:
    name: str
    concept: str
    pair: tuple[str, str]
    pieces: list[Piece]
    notes: list[ResolvedNote]
    checks: list[str]  # labels of the equivalence checks that cover the topic


def find_line(lines: list[Line], text: str) -> Pointer | None:
    """The first line of code (not of a docstring) holding `text`."""
    for line in lines:
        for k, physical in enumerate(line.physical):
            if text in physical and line.lineno and not line.prose[k]:
                return Pointer(line.path, line.lineno + k, physical.strip())
    return None


def view(name: str, pair: tuple[str, str]) -> TopicView:
    """A topic for one pair: its pieces aligned, its notes pointing at lines, its checks."""
    topic = TOPICS[name]
    pieces = []
    for spec in topic.shared:
        pieces.append(Piece((piece_title(None, spec), ""), [Row(ln, None) for ln in piece_lines(None, spec)], True))
    shown = {impl: [] for impl in pair}
    for spec_l, spec_r in zip(topic.pieces[pair[0]], topic.pieces[pair[1]], strict=True):
        left, right = piece_lines(pair[0], spec_l), piece_lines(pair[1], spec_r)
        shown[pair[0]] += left
        shown[pair[1]] += right
        pieces.append(Piece((piece_title(pair[0], spec_l), piece_title(pair[1], spec_r)), align(left, right)))
    notes = []
    for impl in pair:
        for note in topic.notes.get(impl, ()):
            inside = []
            for ref, text in note.inside:
                obj = resolve(ref)
                physical, first = inspect.getsourcelines(obj)
                found = find_line(logical_lines(physical, display_path(inspect.getsourcefile(obj)), first), text)
                inside += [found] if found else []
            faces = [find_line(shown[other], text) for other, text in note.faces if other in pair and other != impl]
            notes.append(ResolvedNote(impl, note.text, find_line(shown[impl], note.at), inside,
                                      [p for p in faces if p]))
    return TopicView(name, topic.concept, pair, pieces, notes, [label for label, _ in topic_checks(name, pair)])


# ----------------------------------------------------------------------------- glue (repoint here)


def parameter_paths(impl_name: str, cfg) -> dict[str, str]:
    """Checkpoint name -> where `impl_name` keeps that tensor ('l0.wq' -> 'l0/attn/wq/kernel'),
    generated by the implementation's own converter (Impl.from_flat): each tensor is filled with
    its index, converted, and found again in the converted tree."""
    import jax
    import numpy as np

    from common.checkpoint import param_shapes

    names = list(param_shapes(cfg))
    flat = {n: np.full(shape, i, np.float32) for i, (n, shape) in enumerate(param_shapes(cfg).items())}
    from_flat = importlib.import_module(impl_name).impl().from_flat
    tree = from_flat(flat, cfg)  # nnx_port needs cfg to build its modules
    from flax import nnx

    if isinstance(tree, nnx.Module):  # its parameters, as the nested dict of their attribute names
        tree = nnx.to_pure_dict(nnx.state(tree, nnx.Param))
    paths = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
        parts = [p for p in parts if p != "value"]  # a Variable's payload, not part of its name
        paths[names[int(np.asarray(leaf).flat[0])]] = "/".join(parts)
    return paths


@functools.cache
def check_inputs():
    """The default config, one initialisation in every implementation's layout, two names (4
    letters, and 26 truncated to the block), ten names for a run of updates, a prompt and a key."""
    import jax

    from common.config import Config
    from common.data import Tokenizer, encode_name, training_batches
    from common.runner import prompt_tokens
    from compare import equivalence, impls

    tok = Tokenizer("abcdefghijklmnopqrstuvwxyz")
    cfg = Config(vocab_size=tok.vocab_size)
    names = impls.available()
    made = [impls.get(n) for n in names]
    states = dict(zip(names, equivalence.states_from_one_init(made, cfg, key=jax.random.PRNGKey(0))))
    words = [encode_name(n, tok, cfg.block_size) for n in ("emma", "abcdefghijklmnopqrstuvwxyz")]
    ten = ["emma", "olivia", "ava", "x", "isabella", "mia", "bo", "zoe", "kaelyn", "abcdefghijklmnopqrstuvwxyz"]
    prompt, n = prompt_tokens(tok, "ka", cfg)
    return dict(cfg=cfg, impls=dict(zip(names, made)), states=states, names=words,
                ten=training_batches(ten, tok, cfg.block_size, 10, 0), prompt=(prompt, n, jax.random.PRNGKey(0)))


def topic_checks(topic: str, pair: tuple[str, str]) -> list[tuple[str, object]]:
    """THE glue between the lesson and the equivalence checks (compare/equivalence.py, any pair):
    topic -> [(label, run)], where run() raises AssertionError if the check fails."""
    import chex
    import jax

    from common.checkpoint import param_shapes
    from compare import equivalence as eq

    def round_trip():  # the converters that the names table is generated from
        x = check_inputs()
        first = x["impls"][pair[0]]
        flat = first.to_flat(first.params_of(x["states"][pair[0]]))
        for impl_name in pair:
            impl = x["impls"][impl_name]
            back = impl.to_flat(impl.from_flat(flat, x["cfg"]))
            chex.assert_trees_all_equal({k: back[k] for k in param_shapes(x["cfg"])}, flat)

    def check(kind):
        def run(variant, jit):
            x = check_inputs()
            a, b = (x["impls"][n] for n in pair)
            takes_state = kind in ("update", "updates")
            xs = [x["states"][n] if takes_state else x["impls"][n].params_of(x["states"][n]) for n in pair]
            data = {"logits": [w.inputs for w in x["names"]], "grads": x["names"], "update": x["names"],
                    "updates": [x["ten"]], "samples": [x["prompt"]]}[kind]
            for d in data:
                eq.check_pair(kind, a, b, xs[0], xs[1], d, x["cfg"], variant=variant,
                              level=eq.expected_level(kind, jit))
        return run

    def both(label, kind, unjitted_label=None):
        run = check(kind)
        return [(f"{label} [jit]", lambda: run(jax.jit, True)),
                (f"{unjitted_label or label} [no jit]", lambda: run(eq.identity, False))]

    names_check = [("names to the tree and back, bitwise, " + " and ".join(pair), round_trip)]
    two = "2 names"
    logits = both(f"logits, bitwise, {two}", "logits")
    grads = both(f"loss and gradients, bitwise, {two}", "grads")
    updates = both("10 updates over 10 names, bitwise", "updates")
    table = {
        "params": names_check + logits,
        "names": names_check,
        "forward": logits,
        "attention": logits + grads,
        "loss": grads,
        "optimizer": both(f"one Adam update, bitwise, {two}", "update",
                          f"one Adam update, moments bitwise, weights equal to float32 rounding, {two}") + updates,
        "train": updates,
        "sampling": both("8 names sampled with one key, bitwise", "samples"),
    }
    return table[topic]


def side_by_side_run(pair: tuple[str, str], steps: int, no_cache: bool) -> tuple[bytes, list[str]] | None:
    """The loss curves (PNG) and the verdict of a short `python -m compare` run of the pair."""
    import contextlib
    import tempfile

    from compare import run

    with tempfile.TemporaryDirectory() as tmp:
        png = os.path.join(tmp, "curves.png")
        out = io.StringIO()
        argv = ["--steps", str(steps), "--num-samples", "8", "--plot", png, "--impls", ",".join(pair)]
        argv += ["--no-cache"] if no_cache else []
        with contextlib.redirect_stdout(out):
            run.main(argv)
        lines = out.getvalue().splitlines()
        keep = [ln for ln in lines if ln.startswith(("compare:", "verdict:", "sample", " "))]
        return Path(png).read_bytes(), keep


OUTCOMES: dict[tuple[tuple[str, str], str], str] = {}


def run_check(pair: tuple[str, str], label: str, fn) -> str:
    """'PASS' or 'FAIL: <the verdict on what differs>'; each runs once per process."""
    if (pair, label) not in OUTCOMES:
        try:
            fn()
            OUTCOMES[pair, label] = "PASS"
        except AssertionError as err:
            lines = [" ".join(ln.split()) for ln in str(err).splitlines() if ln.strip()] or ["assertion failed"]
            OUTCOMES[pair, label] = f"FAIL: {lines[0]}"[:240]  # the verdict's own wording, one line
    return OUTCOMES[pair, label]


def check_topic(name: str, pair: tuple[str, str]) -> list[tuple[str, str]]:
    return [(label, run_check(pair, label, fn)) for label, fn in topic_checks(name, pair)]


# ----------------------------------------------------------------------------- the terminal

MARKS = {"same": " ", "differ": "~", "left": "<", "right": ">"}
COLOURS = {"differ": "33", "left": "31", "right": "32", "head": "1", "note": "36", "PASS": "32", "FAIL": "31"}
MIN_COLUMN = 70  # narrower than this, the two sides go one above the other
MIN_WIDTH = 40


def use_colour(stream) -> bool:
    """Colour only on a terminal that shows it (common/shell.py: a TTY, no NO_COLOR, TERM not dumb)."""
    from common.shell import has_colour

    return has_colour(stream)


def paint(text: str, kind: str, colour: bool) -> str:
    return f"\033[{COLOURS[kind]}m{text}\033[0m" if colour and kind in COLOURS and text else text


def fit(line: Line, width: int) -> list[str]:
    return fit_counting(line, width)[0]


def fit_counting(line: Line, width: int) -> tuple[list[str], int]:
    """The line's physical lines, each made to fit `width` without cutting an expression: a
    trailing comment moves above its code, a docstring's words wrap, and only then does code
    continue below after an opening bracket or a comma, as a formatter would break it. Also
    returns how many comment lines now stand above the first line's code."""
    out, lead = [], 0
    for k, (text, comment_at, breaks, prose) in enumerate(
            zip(line.physical, line.comment_at, line.breaks, line.prose)):
        if len(text) <= width:
            out.append(text)
            continue
        indent = " " * (len(text) - len(text.lstrip()))
        if text.lstrip().startswith("#"):  # a comment on its own line: prose
            comment_at = len(indent)
            prose = False
        if prose:
            out += textwrap.wrap(text.strip(), width, initial_indent=indent, subsequent_indent=indent) or [""]
            continue
        if comment_at is not None:
            words = text[comment_at:].lstrip("#").strip()
            above = textwrap.wrap(words, width, initial_indent=indent + "# ", subsequent_indent=indent + "# ")
            out += above
            text = text[:comment_at].rstrip()
            lead = len(above) if k == 0 and text.strip() else lead
        out += break_code(text, breaks, width, indent + "    ") if text.strip() else []
    return out, lead


def break_code(text: str, breaks: list[tuple[int, int]], width: int, hanging: str) -> list[str]:
    """Code continued on the next line after the last comma that fits (else an opening bracket);
    cut with a ↩ only where neither exists."""
    pieces, done, prefix = [], 0, ""
    while len(prefix) + len(text) - done > width:
        fits = [(-kind, c) for c, kind in breaks if done < c < len(text) and len(prefix) + c - done <= width]
        cut = max(fits)[1] if fits else done + width - len(prefix) - 1
        pieces.append(prefix + text[done:cut].rstrip() + ("" if fits else "↩"))
        done = cut
        while done < len(text) and text[done] == " ":
            done += 1
        prefix = hanging if len(hanging) < width // 2 else "  "
    return pieces + [prefix + text[done:]]


def render_topic(v: TopicView, width: int, colour: bool, outcomes: list[tuple[str, str]] | None) -> list[str]:
    """One topic for a terminal `width` wide: two columns when they fit, else one above the other."""
    out = [paint(f"━━ {v.name} " + "━" * max(0, width - len(v.name) - 4), "head", colour)]
    out += textwrap.wrap(v.concept, width)
    sides = [p for p in v.pieces if not p.shared]
    natural = [max((len(t) for p in sides for r in p.rows for ln in [r.left if s == 0 else r.right] if ln
                    for t in ln.physical), default=0) for s in (0, 1)]
    if 2 + natural[0] + 3 + natural[1] <= width:
        cols = (natural[0], width - 5 - natural[0])
    elif (width - 5) // 2 >= MIN_COLUMN:
        cols = ((width - 5) // 2, (width - 5) // 2)
    else:
        cols = None
    for piece in v.pieces:
        out.append("")
        if piece.shared:
            out += [paint(t, "head", colour) for t in textwrap.wrap(
                f"{piece.titles[0]}: the same code for both", width - 2, initial_indent="  ", subsequent_indent="  ")]
            out += [f"  {t}" for r in piece.rows for t in fit(r.left, width - 2)]
        elif cols:
            out += two_columns(piece, cols, colour)
        else:
            out += one_above_the_other(piece, width, colour)
    if v.name == "names":
        out += names_table(v.pair, width)
    if v.notes:
        out += ["", paint("What the framework took over:", "head", colour)]
    for note in v.notes:
        lines = [f"{p.path}:{p.lineno}  {p.text}" for p in ([note.at] if note.at else [])]
        lines += textwrap.wrap(note.text, width - 4)
        lines += [f"inside: {p.path}:{p.lineno}  {p.text}" for p in note.inside]
        lines += [f"instead of: {p.path}:{p.lineno}  {p.text}" for p in note.faces]
        for k, text in enumerate(lines):
            text = text if len(text) <= width - 4 else text[: width - 5] + "…"
            out.append(("  • " if k == 0 else "    ") + (paint(text, "note", colour) if k == 0 and note.at else text))
    out += ["", paint("The proof (compare/equivalence.py):", "head", colour)]
    if outcomes is None:
        out += [t for label in v.checks for t in textwrap.wrap(label, width, initial_indent="  · ",
                                                               subsequent_indent="    ")]
        out += [] if v.checks else ["  · none wired for this pair yet"]
        out += ["  (run them with --check)"] if v.checks else []
    else:
        for label, outcome in outcomes:
            word = outcome.split(":")[0]
            wrapped = textwrap.wrap(label, width - 8)
            out.append(f"  {paint(word, word, colour)}  {wrapped[0]}")
            out += [f"        {t}" for t in wrapped[1:]]
            if word == "FAIL":
                out += textwrap.wrap(outcome[6:], width, initial_indent="        ", subsequent_indent="        ")
        out += [] if outcomes else ["  none wired for this pair yet"]
    return out


def two_columns(piece: Piece, cols: tuple[int, int], colour: bool) -> list[str]:
    wl, wr = cols
    out = [paint(f"  {piece.titles[0][:wl]:<{wl}} │ {piece.titles[1][:wr]}", "head", colour),
           f"  {'─' * wl}─┼─{'─' * wr}"]
    for row in piece.rows:
        kind = row.kind
        left, lead_l = fit_counting(row.left, wl) if row.left else ([], 0)
        right, lead_r = fit_counting(row.right, wr) if row.right else ([], 0)
        if left and right:  # the two first lines of code face each other, whatever comment moved above
            left = [""] * (lead_r - lead_l) + left
            right = [""] * (lead_l - lead_r) + right
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else ""
            b = right[k] if k < len(right) else ""
            mark = MARKS[kind] if (row.left or row.right).key else " "
            out.append(f"{paint(mark, kind, colour)} {paint(a.ljust(wl), kind, colour)} │ {paint(b, kind, colour)}"
                       .rstrip())
    return out


def one_above_the_other(piece: Piece, width: int, colour: bool) -> list[str]:
    """Lines the same on both sides once; elsewhere the left side's block, then the right's."""
    out = [paint(f"< {piece.titles[0]}"[:width], "head", colour), paint(f"> {piece.titles[1]}"[:width], "head", colour)]
    blocks: list[tuple[str, list[Row]]] = []
    for row in piece.rows:
        group = {"same": "same", "differ": "pair", "left": "left", "right": "right"}[row.kind]
        if blocks and blocks[-1][0] == group:
            blocks[-1][1].append(row)
        else:
            blocks.append((group, [row]))
    for group, rows in blocks:
        if group == "same":
            out += [f"  {t}" for r in rows for t in fit(r.left, width - 2)]
            continue
        for side, mark in ((0, "<"), (1, ">")):
            lines = [ln for r in rows for ln in [(r.left, r.right)[side]] if ln]
            out += [f"{paint(mark, ('left', 'right')[side], colour) if ln.key else ' '} "
                    f"{paint(t, ('left', 'right')[side], colour)}".rstrip()
                    for ln in lines for t in fit(ln, width - 2)]
    return out


def legend(pair: tuple[str, str], width: int) -> list[str]:
    a, b = pair
    text = (f"{a}/ on the left, {b}/ on the right, each line beside the line that does the same thing. "
            f"Marks: '~' the two lines differ, '<' only {a}/ has it, '>' only {b}/ has it, none: the same line. "
            f"Where two columns do not fit, {a}/ ('<') comes above {b}/ ('>'), block by block.")
    return textwrap.wrap(text, width)


# ----------------------------------------------------------------------------- commands


def terminal_width(given: int | None) -> int:
    """--width as given (one rule for every value: at least MIN_WIDTH), else the terminal's."""
    if given is not None:
        if given < MIN_WIDTH:
            raise UserError(f"--width {given} is too narrow to show code: use {MIN_WIDTH} or more, or leave "
                            "--width out to fit the terminal")
        return given
    return max(MIN_WIDTH, shutil.get_terminal_size((160, 40)).columns)


def main(argv) -> int:
    """`python -m compare diff [topic ...]`."""
    from common.cli import Parser

    p = Parser(prog="compare diff", description="One implementation's code beside another's, concept by concept.")
    p.add_argument("topics", nargs="*", metavar="topic", help=f"any of: {', '.join(TOPICS)} (default: all)")
    p.add_argument("--width", type=int, default=None, help=f"columns to fit, {MIN_WIDTH} or more (default: the "
                   "terminal's)")
    p.add_argument("--pair", default=",".join(DEFAULT_PAIR), help=f"two of {', '.join(IMPLS)} (default pure,flax_port)")
    p.add_argument("--check", action="store_true", help="run each topic's equivalence checks and print the outcome")
    args = p.parse_args(argv)
    for topic in args.topics:
        if topic not in TOPICS:
            raise UserError(f"unknown topic {topic!r}: choose one of {', '.join(TOPICS)}")
    width = terminal_width(args.width)
    pair = parse_pair(args.pair)
    colour = use_colour(sys.stdout)
    print("\n".join(legend(pair, width)))
    failed = False
    for topic in args.topics or list(TOPICS):
        v = view(topic, pair)
        outcomes = check_topic(topic, pair) if args.check else None
        failed |= any(o != "PASS" for _, o in outcomes or [])
        print()
        print("\n".join(render_topic(v, width, colour, outcomes)))
    return 1 if failed else 0


def names_rows(pair: tuple[str, str]) -> list[tuple[str, str, str, str]]:
    """(checkpoint name, shape, path in the first implementation, path in the second)."""
    from common.checkpoint import param_shapes
    from common.config import Config

    cfg = Config()
    paths = [parameter_paths(impl, cfg) for impl in pair]
    return [(name, "x".join(map(str, shape)), paths[0].get(name, "?"), paths[1].get(name, "?"))
            for name, shape in param_shapes(cfg).items()]


def names_table(pair: tuple[str, str], width: int) -> list[str]:
    """The names table as columns, or, narrower than that, one name after the other."""
    rows = [("checkpoint", "shape", f"{pair[0]}/", f"{pair[1]}/")] + names_rows(pair)
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = [""] + textwrap.wrap("The names, generated from the converters (default config, 27 characters):", width)
    if 2 + sum(widths) + 6 <= width:
        return lines + [("  " + "  ".join(r[k].ljust(widths[k]) for k in range(4))).rstrip() for r in rows]
    for name, shape, a, b in rows[1:]:
        lines += [f"  {name} ({shape})"[:width], f"    {pair[0]}/: {a}"[:width], f"    {pair[1]}/: {b}"[:width]]
    return lines


def lesson_main(argv) -> int:
    """`python -m compare lesson --html PATH`: the whole lesson as one page that opens from disk."""
    from common import checkpoint
    from common.cli import Parser, setup_jax

    p = Parser(prog="compare lesson", description="Write the lesson as one self-contained web page.")
    p.add_argument("--html", metavar="PATH", required=True, help="where to write the page")
    p.add_argument("--pair", default=",".join(DEFAULT_PAIR), help=f"two of {', '.join(IMPLS)} (default pure,flax_port)")
    p.add_argument("--steps", type=int, default=300,
                   help="steps of the side-by-side run whose loss curves the page shows (default 300; 0: none)")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    args = p.parse_args(argv)
    if args.steps < 0:
        raise UserError(f"--steps {args.steps}: give 0 (no run) or more")
    pair = parse_pair(args.pair)
    checkpoint.check_outputs([("--html", args.html, checkpoint.is_lesson_page)])  # a new file or a page we wrote
    setup_jax(args)
    from compare import page

    run = side_by_side_run(pair, args.steps, args.no_cache) if args.steps else None  # bad --steps fail here
    views = [view(name, pair) for name in TOPICS]
    outcomes = {v.name: check_topic(v.name, pair) for v in views}
    html = page.render(views, outcomes, names_rows(pair), run, pair, args.steps)
    checkpoint.atomic_write(args.html, lambda f: f.write(html.encode("utf-8")))
    passed = sum(o == "PASS" for checks in outcomes.values() for _, o in checks)
    total = sum(len(checks) for checks in outcomes.values())
    print(f"lesson written to {args.html}: {len(views)} topics, {passed} of {total} checks passed"
          + (f", loss curves of {args.steps} steps" if run else ""))
    return 0 if passed == total else 1
