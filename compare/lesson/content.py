"""The lesson's content: the topics (what each shows of every implementation), the notes on
what a framework took over, and the implementations a pair is drawn from. Nothing here reads
source or renders anything: the terminal and the page both read these.
"""

import dataclasses

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
        Note("nn.dot_product_attention(", "scales q by 1/sqrt(hd) (pure's `q = q / jnp.sqrt(hd)`, facing a gap), "
             "forms the scores, fills the masked ones with the dtype's lowest value, takes the softmax and "
             "weighs the values: pure's five lines, inside one call.", ATTENTION_INSIDE,
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
             "from pure's); this pair of lines is what linen's nn.dot_product_attention does, and stays bitwise.",
             ATTENTION_INSIDE, faces=(("flax_port", "nn.dot_product_attention("), ("pure", "q = q / jnp.sqrt(hd)"))),
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
            "pure": ("model:param_shapes", "model:init_params"),
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
        {"pure": ("model:loss_fn",), "flax_port": ("model:loss_fn",), "nnx_port": ("model:loss_fn",)},
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

