"""The lesson's content: the topics (what each shows of every implementation), the notes on
what a framework took over, and the implementations a pair is drawn from. Nothing here reads
source or renders anything: the terminal and the page both read these.
"""

import dataclasses
from importlib import metadata

IMPLS = ("pure", "flax_port", "nnx_port")
FLAX = metadata.version("flax")  # a note that depends on NNX's behaviour names the version it was built with
DEFAULT_PAIR = ("pure", "flax_port")

# ----------------------------------------------------------------------------- topics


@dataclasses.dataclass(frozen=True)
class Note:
    """What a framework took over, or why a line is written the way it is, pointing at the line of
    the implementation where it happens (`at`, a piece of that line's text), optionally at the
    library's own lines (`inside`: ("module:object", a piece of the line's text), ...) and at the
    lines of the other implementation on the page that do it by hand (`faces`).

    A note speaks only of the two implementations on the page: `against` limits it to pages whose
    other implementation is one of those (empty: every page), and `more` adds a sentence where a
    given implementation is the other one. `idiom` marks a line written so only to stay bitwise:
    the idiomatic line, with what it costs said in the text."""

    at: str
    text: str
    inside: tuple[tuple[str, str], ...] = ()
    faces: tuple[tuple[str, str], ...] = ()  # (implementation, a piece of its line): what it does instead
    against: tuple[str, ...] = ()
    more: tuple[tuple[str, str], ...] = ()  # (the other implementation, a sentence said only beside it)
    idiom: str = ""


@dataclasses.dataclass(frozen=True)
class Aside:
    """Code that is not the implementation's own but teaches beside it (how the framework's own
    guides write the same step), with what choosing one or the other costs."""

    spec: str  # "module:object", like a piece
    text: str
    # (the other implementation of a pair, its piece): shown facing the aside, aligned line by line
    faces: tuple[tuple[str, str], ...] = ()


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
    asides: dict[str, tuple[Aside, ...]] = dataclasses.field(default_factory=dict)  # shown after the pieces


# ----------------------------------------------------------------------------- openings

# What changes between the two styles of a pair, said once before the topics (the contrasts
# Flax's own Linen-to-NNX guide states first): where the weights live, when shapes are known, how
# state moves through a training step.
OPENINGS = {
    ("pure", "flax_port"): (
        "Where the weights live: pure keeps them in a flat dict named as the checkpoint names them "
        "(`params[\"l0.wq\"]`) and passes it to every function; linen modules hold no weights at all, "
        "and `GPT(cfg).apply({\"params\": params}, tokens)` binds a nested tree, named after the "
        "modules, for one call.",
        "When shapes are known: pure writes every shape in `param_shapes` before drawing a number; "
        "linen learns them by running the model once on dummy tokens (`GPT(cfg).init`), each `nn.Dense` "
        "sizing its kernel from the input it first sees.",
        "How state moves through a step: both are pure functions of (state, batch) under `jax.jit` and "
        "`lax.scan`; pure's state is the pair (params, Adam's moments), written out by hand, linen's a "
        "`TrainState` whose `apply_gradients` runs optax and returns a new one.",
    ),
    ("pure", "nnx_port"): (
        "Where the weights live: pure keeps them in a flat dict named as the checkpoint names them and "
        "passes it to every function; an NNX module is an ordinary Python object that holds its own "
        "weights as attributes (`self.wq`), so the model is called directly: `gpt(tokens)`.",
        "When shapes are known: pure writes every shape in `param_shapes`; NNX draws each weight when "
        "the module is built (`GPT(cfg, rngs=...)`), so every layer is told its input width up front.",
        "How state moves through a step: pure threads (params, moments) through a pure function; NNX "
        "changes the model and its `nnx.Optimizer` in place. Under `jax.jit` and `lax.scan` the port "
        "carries `nnx.split`'s (graphdef, arrays) and merges them back inside the step; Flax's guides "
        "use `nnx.jit` on the live modules instead (both shown in the train topic, with their cost).",
    ),
    ("flax_port", "nnx_port"): (
        "Where the weights live: a linen module holds no weights, `apply` binds a params tree to it for "
        "one call; an NNX module holds its weights as attributes, so it is called directly.",
        "When shapes are known: linen sizes each layer at its first call (`nn.compact`, `init` on dummy "
        "tokens); NNX draws each weight in `__init__`, so every layer is told its input width up front "
        "(`nnx.Linear(in, out)` where linen says `nn.Dense(out)`).",
        "How state moves through a step: linen threads an immutable `TrainState` that `apply_gradients` "
        "replaces; NNX updates the model and `nnx.Optimizer` in place, carried through `jax.jit` and "
        "`lax.scan` as `nnx.split`'s (graphdef, arrays). Flax's guides use `nnx.jit` on the live modules "
        "instead (both shown in the train topic, with their cost).",
    ),
}


def opening(pair: tuple[str, str]) -> tuple[str, ...]:
    """The opening paragraphs for a pair, in either order."""
    return OPENINGS.get(pair) or OPENINGS.get(pair[::-1], ())


# ----------------------------------------------------------------------------- the cheat-sheet

# The idioms a reader moving between the styles looks up first, each a piece of the line that does
# it in each implementation (found in the topics' code; the page links each to its line).
CHEAT_SHEET = (
    ("the weights made", {"pure": "* jax.random.normal(", "flax_port": "return GPT(cfg).init(",
                          "nnx_port": "return GPT(cfg, rngs=nnx.Rngs("}),
    ("a layer's matrix", {"pure": "def dense(x, w):", "flax_port": "return nn.Dense(",
                          "nnx_port": "return nnx.Linear("}),
    ("the model called", {"pure": "def forward(params, tokens", "flax_port": 'return GPT(cfg).apply({"params"',
                          "nnx_port": "return gpt(tokens)"}),
    ("loss and gradients", {"pure": "return jax.value_and_grad(", "flax_port": "return jax.value_and_grad(",
                            "nnx_port": "return nnx.value_and_grad("}),
    ("the optimizer made", {"pure": "optim.adam_init(params)", "flax_port": "train_state.TrainState.create(",
                            "nnx_port": "optimizer = nnx.Optimizer("}),
    ("one update", {"pure": "return optim.adam_update(", "flax_port": "return state.apply_gradients(",
                    "nnx_port": "optimizer.update(gpt, grads)"}),
    ("intermediates recorded", {"pure": "taps.values", "flax_port": 'mutable="intermediates"',
                                "nnx_port": "nnx.capture(forward"}),
)


# ----------------------------------------------------------------------------- counterparts

# Lines that do the same thing in the three implementations, so that every pair faces them the
# same way (a piece of each line's text; a line named here faces only its counterpart, or a gap
# where the other side has none). Alignment finds the rest itself (compare/lesson/align.py).
COUNTERPARTS = (
    # the weights made at the start of a run (a dict, a params tree, a module)
    {"pure": "params = model.init_params(", "flax_port": "params = model.init_params(",
     "nnx_port": "gpt = model.init_params("},
    # the step reading its weights out of the state it was handed
    {"pure": "params, _ = state", "nnx_port": "gpt, _ = nnx.merge(*state)"},
    {"pure": "params, opt_state = state", "nnx_port": "gpt, optimizer = nnx.merge(*state, copy=True)"},
    # the optimizer made: Adam's moments beside the weights, a TrainState around them, an nnx.Optimizer
    {"pure": "return params, optim.adam_init(params)", "flax_port": "return train_state.TrainState.create(",
     "nnx_port": "optimizer = nnx.Optimizer("},
    # what a module is built from: a linen field, the NNX constructor ("^": the line starts so)
    {"flax_port": "^cfg: Config", "nnx_port": "^def __init__(self, cfg: Config"},
    # the names: pure's table of shapes has no counterpart in a function mapping one name to a path
    {"pure": "^def param_shapes("},
    # loss and gradients in one pass (nnx_port's step and the NNX idiom's alike)
    {"pure": "return jax.value_and_grad(", "flax_port": "return jax.value_and_grad(",
     "nnx_port": "nnx.value_and_grad("},
    # the update: new dicts, a new TrainState, in place
    {"pure": "return optim.adam_update(", "flax_port": "return state.apply_gradients(",
     "nnx_port": "optimizer.update(gpt, grads)"},
    # the output matrix (a piece of pure's line that survives its matrix products becoming a helper)
    {"pure": 'params["lm_head"]', "flax_port": '"lm_head").attend(x)',
     "nnx_port": "self.lm_head.attend(x)"},
    # calling the model on its weights: pure's forward is the model itself, it has no such line
    {"flax_port": "return GPT(cfg).apply(", "nnx_port": "return gpt(tokens)"},
    # the names: pure returns its table, the frameworks map one name to a path
    {"pure": "return shapes"},
    {"flax_port": 'return (name, "embedding")', "nnx_port": 'return (name, "embedding")'},
    # taps: what tap() does, then the line that runs the model with the taps on
    {"pure": "`x` itself when no taps are asked for", "flax_port": "Record `x` under `name` (sow, into",
     "nnx_port": "Record `x` under `name` (sow, as an"},
    {"pure": "return forward(params, tokens, cfg, taps), taps.values",
     "flax_port": 'logits, sown = GPT(cfg).apply({"params": params, "perturbations"',
     "nnx_port": "logits, sown, _ = nnx.capture(forward"},
)

# ----------------------------------------------------------------------------- notes

LINEN_ATTENTION = "flax.linen.attention:dot_product_attention_weights"
NNX_ATTENTION = "flax.nnx.nn.attention:dot_product_attention_weights"  # what nnx_port/model.py imports

# Measured 2026-12-07 on a 2-core AMD EPYC with AVX-512, Python 3.12.1 / jax 0.12.0.1 and 3.11.7 /
# jax 0.10.2 alike: pure's model with its lm_head held as a (D, V) kernel (`x @ K`) against `x @ W.T`,
# the gradient under jit, 20 names at each of seeds 0-2: the lm_head gradient differs for all 60, by
# at most 2 ulps of its scale (the float32 spacing at its largest |value|); the whole gradient by 5.5.
DENSE_LM_HEAD_COST = (
    "A Dense or Linear would hold the (D, V) transpose, and under jit XLA then orders the lm_head gradient's "
    "sums differently: measured (2026-12-07, jax 0.12.0.1 and 0.10.2), it differed for each of 60 names, by "
    "up to 2 ulps of its scale, which is enough to lose the bitwise gradient check.")

PURE_NOTES = {
    "params": (
        Note("return jax.lax.dot_general(", "every matrix product goes through this helper, written as the "
             "lax.dot_general that the frameworks' Dense and Linear layers call. `x @ w` is jnp.matmul, which "
             "jax wraps in a jit of its own: on jax 0.12, without an outer jit, its backward runs as one "
             "compiled program with the transpose folded into the dot, another kernel: gradients up to 8 ulps "
             "of scale apart at batch 32 (pure/model.py, docs/versions.md).", idiom="return x @ w"),
    ),
    "forward": (
        Note('x = jnp.take(params["wte"]', "rows are looked up with jnp.take, as the frameworks' Embed layers "
             "do. Plain indexing promises in-bound indices where take fills out-of-range rows, and XLA "
             "compiles the two gradients' scatter-adds differently: wte and wpe gradients 1-2 ulps of scale "
             "apart for 74-77 of 80 names at n_embd 24 and 32 (none at the default shape), and a 1000-step "
             "run at n_embd 32 ended 0.27 apart (compare/tolerances.py, docs/equality.md).",
             idiom='x = params["wte"][tokens] + params["wpe"][:T]'),
    ),
    "optimizer": (
        Note("c1, c2 = 1 - b1**t", "each bias correction is computed once and divided into every leaf, as "
             "optax orders it. Written per leaf, XLA compiled the division differently: parameters 1-2 ulps "
             "apart after a step, and free runs drifted 0.28 apart (docs/equality.md).",
             idiom="m_hat = jax.tree.map(lambda m: m / (1 - b1**t), m)"),
    ),
}

TAPS_NOTES_PURE = (
    Note("return x if taps is None else taps(name, x)", "explicit code: forward takes an optional Taps object "
         "and passes it down, and every named value goes through tap(). With taps=None, as in the trainers, "
         "tap returns x itself and traces to nothing: the train step is the program it was without taps (a "
         "test compares the lowered programs)."),
    Note("return x + self.perturbations[name]", "the value goes on plus a perturbation of zeros: jax.grad with "
         "respect to the perturbations is the gradient of the loss with respect to each value, which is how "
         "`compare where` reads the backward pass tap by tap."),
)

FLAX_NOTES = {
    "params": (
        Note("nn.Dense(", "nn.Dense creates its kernel, laid out (in, out), the first time it is called, names "
             "it and draws it from kernel_init; use_bias=False, or it would add a bias."),
        Note("GPT(cfg).init(", "init runs the model once on dummy tokens and collects every parameter the modules "
             "create on the way: linen has no list of shapes; the tree it returns is named after the modules "
             "(see the names topic).", faces=(("pure", "keys = jax.random.split("),)),
    ),
    "names": (
        Note("return (layer,", "a linen path is the chain of module names: the name= given to the Block (l0), "
             "the Attention or MLP (attn, mlp), the Dense (wq), then the variable the layer made (kernel; "
             "embedding for an nn.Embed)."),
    ),
    "forward": (
        Note("nn.RMSNorm(", "nn.RMSNorm computes x / sqrt(mean(x²) + eps); its defaults (a learnable scale, "
             "eps 1e-6) are switched off here.", (("flax.linen.normalization:_normalize", "lax.rsqrt("),),
             (("pure", "return x * jax.lax.rsqrt("),)),
        Note("x = x + Attention(", "a submodule is made inside __call__ (nn.compact) and called at once; it finds "
             "its weights in the params tree under its name (attn).",
             more=(("pure", "pure passes the whole dict and the layer index instead."),),
             faces=(("pure", "x = x + attention("),)),
        Note(".attend(x)", "lm_head is an nn.Embed read with attend: x @ table.T, the (V, D) table's "
             "transpose. " + DENSE_LM_HEAD_COST, faces=(("pure", 'params["lm_head"]'),),
             idiom='return nn.Dense(cfg.vocab_size, use_bias=False, name="lm_head")(x)'),
        Note("GPT(cfg).apply(", "the module holds no weights: apply binds the params tree to it for one call. "
             "This is where linen's weights meet its code; everything else calls forward."),
    ),
    "attention": (
        Note("nn.make_causal_mask(", "the lower-triangular mask, with a leading axis for the heads.",
             faces=(("pure", "jnp.tril("),)),
        Note("nn.dot_product_attention_weights(", "scales q by 1/sqrt(hd), forms the scores, fills the masked ones "
             "with the dtype's lowest value and takes the softmax, inside one call; the einsum with v is written "
             "out (what nn.dot_product_attention does inside) so that the weights are a tap.",
             ((LINEN_ATTENTION, "query = query / jnp.sqrt(depth)"),
              (LINEN_ATTENTION, "big_neg = jnp.finfo(dtype).min")),
             faces=(("pure", "q = q / jnp.sqrt(hd)"),),
             more=(("pure", "pure writes those four lines out, its scaling facing a gap here."),)),
    ),
    "loss": (
        Note("optax.softmax_cross_entropy_with_integer_labels(", "computes logsumexp(logits) - logits[target], "
             "the form pure writes out, so the two losses are bitwise equal.",
             (("optax.losses:softmax_cross_entropy_with_integer_labels", "out = log_normalizers - label_logits"),),
             (("pure", "nll = jax.nn.logsumexp("),), against=("pure",)),
    ),
    "optimizer": (
        Note("optax.linear_schedule(", "the schedule, a function of the step count optax keeps in its state.",
             faces=(("pure", "return cfg.learning_rate * (1 - step / cfg.num_steps)"),)),
        Note("optax.adam(", "builds what pure's adam_init and adam_update write out: the moments mu and nu, the "
             "count, the bias corrections and the update.",
             (("optax:scale_by_adam", "mu_hat = optax.tree.bias_correction(mu, b1, count_inc)"),),
             (("pure", "c1, c2 = 1 - b1**t"),), against=("pure",)),
    ),
    "train": (
        Note("TrainState.create(", "a TrainState holds params, the optax transformation (tx) and its state; "
             "create calls tx.init(params)."),
        Note("state.apply_gradients(", "runs tx.update and optax.apply_updates, counts the step and returns a "
             "new TrainState.", (("flax.training.train_state:TrainState.apply_gradients", "optax.apply_updates("),),
             (("pure", "return optim.adam_update("),)),
    ),
    "sampling": (
        Note("GPT(cfg).apply(", "the logits function is the module applied to the params tree; the loop "
             "around it is the same code for both."),
    ),
    "taps": (
        Note('module.sow("intermediates"', "sow keeps the value in the \"intermediates\" collection, but only "
             "when apply is told that collection is mutable; the trainers' apply does not, and sow returns "
             "without recording anything.",
             (("flax.linen.module:Module.sow", "if not self.scope.is_mutable_collection(col):"),)),
        Note("return module.perturb(name, x)", "perturb adds the variable of that name in the \"perturbations\" "
             "collection, zeros passed in by tapped_forward, so the gradient with respect to it is the gradient "
             "with respect to the value; with no perturbations passed it returns x untouched.",
             faces=(("pure", "return x if taps is None"),),
             more=(("pure", "pure threads a Taps object by hand where linen's collections carry it."),)),
        Note('mutable="intermediates"', "apply returns the sown collection beside the logits, nested by module "
             "path (l0/attn/q): tap_path maps the shared tap names onto it."),
    ),
}

NNX_NOTES = {
    "params": (
        Note("nnx.Linear(", "nnx.Linear creates its kernel, laid out (in, out), at once, in __init__, from the "
             "rngs it is given, so it needs the input width too; use_bias=False, or it would add a bias.",
             more=(("flax_port", "linen's nn.Dense waits for the first call to see the width."),),
             faces=(("flax_port", "nn.Dense("),)),
        Note("GPT(cfg, rngs=nnx.Rngs(params=key))", "building the module draws every weight: no dummy forward "
             "pass, no separate params tree; the module object is the model and its weights.",
             faces=(("flax_port", "GPT(cfg).init("), ("pure", "keys = jax.random.split(")),),
    ),
    "names": (
        Note('return ("blocks", index,', "an NNX path is the chain of attribute names: the layers sit in "
             "self.blocks (an nnx.List), so l0.wq is blocks/0/attn/wq/kernel.",
             more=(("flax_port", "linen says l0/attn/wq/kernel."),), faces=(("flax_port", "return (layer,"),)),
    ),
    "forward": (
        Note("nnx.RMSNorm(", "nnx.RMSNorm computes x / sqrt(mean(x²) + eps), its defaults (a learnable scale, "
             "eps 1e-6) switched off here; NNX modules take their feature count up front (cfg.n_embd) and an "
             "rngs, even with no scale to draw.",
             faces=(("flax_port", "nn.RMSNorm("), ("pure", "return x * jax.lax.rsqrt("))),
        Note("self.blocks = nnx.List(", "submodules are attributes set in __init__; a plain Python list of them is "
             "refused, nnx.List holds the layers.",
             faces=(("flax_port", "x = Block(cfg, name="), ("pure", "x = block(params, x, cfg, layer, taps)"))),
        Note("self.lm_head.attend(x)", "lm_head is an nnx.Embed read with attend: x @ table.T, the (V, D) "
             "table's transpose. " + DENSE_LM_HEAD_COST,
             faces=(("pure", 'params["lm_head"]'),),
             idiom="self.lm_head = nnx.Linear(cfg.n_embd, cfg.vocab_size, use_bias=False, rngs=rngs)"),
        Note("return gpt(tokens)", "the module holds its weights: forward is a plain call.",
             more=(("flax_port", "linen binds a params tree with GPT(cfg).apply({'params': ...})."),),
             faces=(("flax_port", "GPT(cfg).apply("),)),
    ),
    "attention": (
        Note("dot_product_attention_weights(", "the scaled, masked softmax of q·k from flax's own NNX attention "
             "code, then the einsum with v written out. nnx.dot_product_attention hands off to "
             "jax.nn.dot_product_attention, whose backward sums in another order: logits and loss stayed "
             "bitwise, but the wk, wte and wpe gradients came out up to 1.5e-8 apart (1 to 9 ulps of the "
             "element, seeds 0-2; nnx_port/model.py).",
             ((NNX_ATTENTION, "query = query / jnp.sqrt(depth)"), (NNX_ATTENTION, "big_neg = jnp.finfo(dtype).min")),
             faces=(("flax_port", "nn.dot_product_attention_weights("), ("pure", "q = q / jnp.sqrt(hd)")),
             more=(("flax_port", "flax_port writes the same two lines (its weights are a tap)."),),
             idiom="out = nnx.dot_product_attention(q, k, v, mask=causal).reshape(T, H * hd)"),
    ),
    "loss": (
        Note("optax.softmax_cross_entropy_with_integer_labels(", "computes logsumexp(logits) - logits[target], "
             "the form pure writes out, so the two losses are bitwise equal.",
             (("optax.losses:softmax_cross_entropy_with_integer_labels", "out = log_normalizers - label_logits"),),
             (("pure", "nll = jax.nn.logsumexp("),), against=("pure",)),
        Note("optax.softmax_cross_entropy_with_integer_labels(", "the same optax loss on both sides: NNX changes "
             "how weights are held, not the maths.", against=("flax_port",)),
    ),
    "optimizer": (
        Note("optax.adam(", "builds what pure's adam_init and adam_update write out: the moments mu and nu, the "
             "count, the bias corrections and the update; nnx.Optimizer (train.py) carries it and its state "
             "beside the model.", (("optax:scale_by_adam", "mu_hat = optax.tree.bias_correction(mu, b1, count_inc)"),),
             (("pure", "c1, c2 = 1 - b1**t"),), against=("pure",)),
        Note("optax.adam(", "the same optax transformation on both sides; nnx.Optimizer (train.py) carries it "
             "and its state beside the model, where linen's TrainState does.", against=("flax_port",)),
    ),
    "train": (
        Note("nnx.Optimizer(", "holds the optax transformation, its state (mu, nu, count) and the step; "
             "wrt=nnx.Param says which variables it updates.", faces=(("flax_port", "TrainState.create("),)),
        Note("return nnx.split((gpt, optimizer))", "split turns live modules into a static graphdef and a pytree "
             "of arrays, which jax.jit and lax.scan carry like any other state; merge turns them back inside "
             "the step, while tracing, so the compiled step does no graph work: inside lax.scan it runs as "
             "fast as a plain dict of arrays would, while a Python loop calling it still pays for flattening "
             "the state on every call (docs/speed.md). Flax's own guides do not split: see their idiom, "
             "shown with this topic."),
        Note("optimizer.update(gpt, grads)", "updates the model's Params and the moments in place.",
             more=(("flax_port", "linen's apply_gradients returns a new TrainState instead."),
                   ("pure", "pure's adam_update returns new dicts instead.")),
             faces=(("flax_port", "state.apply_gradients("), ("pure", "return optim.adam_update("))),
    ),
    "sampling": (
        Note("model.forward(gpt, tokens, cfg)", "the logits function calls the module itself; the loop around "
             "it is the same code on both sides."),
    ),
    "taps": (
        Note('if not hasattr(module, "__captures__"):', "NNX's sow and perturb record into nnx.capture's state "
             f"while a capture runs; outside one (the trainers' step) NNX (flax {FLAX}, the version this "
             "lesson was built with) would keep them as new "
             "attributes of the module and add the zeros, so tap() calls them only inside a capture, by the "
             "same test NNX makes.",
             (("flax.nnx.module:Module.perturb", "if hasattr(self, '__captures__'):"),
              ("flax.nnx.module:Module.perturb", "return old_value + value"))),
        Note("nnx.capture(forward,", "capture runs forward with every module marked, takes the Perturbations "
             "from init and returns the sown Intermediates beside the output, as nnx state by attribute path "
             "(blocks/0/attn/q).",
             more=(("flax_port", "linen asks for the same through apply's mutable= and a perturbations "
                                 "collection."),),
             faces=(("flax_port", 'mutable="intermediates"'),)),
    ),
}

# nnx_port runs its step as split/merge under jax.jit; Flax's guides teach nnx.jit on the live
# modules. compare/nnx_styles.py measured both: `python -m compare.nnx_styles 5`, 2026-12-07, a
# 2-core AMD EPYC with AVX-512 (CPU), Python 3.12.1, jax 0.12.0.1, flax 0.12.12, nothing else
# running: medians of 5 repeats of 1000 steps, minima in brackets. The lesson quotes them as
# measured; docs/lesson.md says how to rerun.
NNX_STYLES_FIGURES = (
    "nnx.jit called per step on the live modules 1.87 ms/step (min 1.72); through nnx.cached_partial 0.46 ms "
    "(0.44); nnx_port's split/merge step under jax.jit, called per step, 0.29 ms (0.22), against 0.20 ms (0.16) "
    "for pure's jitted step; inside a lax.scan of 100 steps, as the trainers run, 42.5 µs (41.7) against pure's "
    "42.8 µs (41.6): the same compiled arithmetic. nnx.jit pays for walking the module graph in Python on every "
    "call; split/merge pays it once, while tracing.")

STEP = "train:compute_grads + train:apply_grads + train:train_step"
NNX_IDIOM = Aside(
    "compare.nnx_styles:idiomatic_train_step",
    "How Flax's own guides write this step, facing the other side's step again: @nnx.jit on a function of the "
    "live model and optimizer, nnx.value_and_grad, optimizer.update in place, nothing split by hand. It computes "
    "the same numbers; what "
    "differs is the cost per step, measured by `python -m compare.nnx_styles` (2026-12-07, a 2-core AMD EPYC, "
    "CPU, Python 3.12.1, jax 0.12.0.1, flax 0.12.12; medians, minima in brackets): " + NNX_STYLES_FIGURES,
    faces=(("pure", STEP), ("flax_port", STEP)),
)

TOPICS = {
    "params": Topic(
        "The weights: nine tensors in the seed's names, 4,192 numbers for 27 characters, each drawn from "
        "N(0, 0.08²).",
        {
            "pure": ("model:param_shapes + model:dense", "model:init_params"),
            "flax_port": ("model:embed + model:dense", "model:init_params"),
            "nnx_port": ("model:embed + model:dense", "model:init_params"),
        },
        {"pure": PURE_NOTES["params"], "flax_port": FLAX_NOTES["params"], "nnx_port": NNX_NOTES["params"]},
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
        {"pure": PURE_NOTES["forward"], "flax_port": FLAX_NOTES["forward"], "nnx_port": NNX_NOTES["forward"]},
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
        {"pure": PURE_NOTES["optimizer"], "flax_port": FLAX_NOTES["optimizer"], "nnx_port": NNX_NOTES["optimizer"]},
    ),
    "train": Topic(
        "One training step: loss and gradients in one pass, then the update, threaded through lax.scan.",
        {
            impl: ("train:init_state", "train:compute_grads", "train:apply_grads", "train:train_step")
            for impl in IMPLS
        },
        {"flax_port": FLAX_NOTES["train"], "nnx_port": NNX_NOTES["train"]},
        asides={"nnx_port": (NNX_IDIOM,)},
    ),
    "sampling": Topic(
        "Sampling: the loop is shared; each implementation says only where its logits come from.",
        {impl: ("sample:sample_tokens", "model:forward") for impl in IMPLS},
        {"flax_port": FLAX_NOTES["sampling"], "nnx_port": NNX_NOTES["sampling"]},
        shared=("common.sampling:sample_tokens",),
    ),
    "taps": Topic(
        "Capturing intermediates: the named values of one forward pass (common/taps.py), and the loss's "
        "gradient with respect to each, recorded the way each framework does it; `compare where` reads them "
        "to name the first operation where two implementations part.",
        {
            "pure": ("model:tap + model:Taps", "model:tapped_forward"),
            "flax_port": ("model:tap", "model:tapped_forward"),
            "nnx_port": ("model:tap", "model:tapped_forward"),
        },
        {"pure": TAPS_NOTES_PURE, "flax_port": FLAX_NOTES["taps"], "nnx_port": NNX_NOTES["taps"]},
    ),
}

