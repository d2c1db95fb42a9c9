"""Ports with one planted difference each, built from pure/ with one function changed: what `compare
where` (and `compare check`) must catch and name. Each builder returns an `Impl` (common/impl.py).

A planted model change needs every function that runs the model to see it (forward, both losses,
the taps, the train step): pure's model and train modules are loaded again as fresh module objects,
the one function is replaced in the fresh model, and the fresh train module is pointed at it. pure/
itself is never touched.
"""

import dataclasses
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parent.parent


def fresh(module: str, name: str):
    """A new module object running pure/<module>.py's source, independent of the imported one."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "pure" / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def with_model(label: str, change):
    """pure with `change(model, optim)` applied to fresh copies of its model.py and optim.py (it
    replaces one function); the train step, the losses and the taps all use the changed copies."""
    import pure

    model, optim = fresh("model", f"planted_{label}_model"), fresh("optim", f"planted_{label}_optim")
    train = fresh("train", f"planted_{label}_train")
    change(model, optim)
    train.model, train.optim = model, optim
    return dataclasses.replace(
        pure.impl(), name=label, init_state=train.init_state, train_step=train.train_step,
        train_steps=train.train_steps, forward=model.forward, loss_fn=model.loss_fn,
        batch_loss_fn=model.batch_loss_fn, tapped_loss=model.tapped_loss,
    )


def with_config(label: str, **changes):
    """pure run with some hyperparameters changed behind the caller's back (a port's own constant)."""
    import pure

    base = pure.impl()

    def planted(fn):
        return lambda *args: fn(*args[:2], dataclasses.replace(args[2], **changes), *args[3:])

    return dataclasses.replace(base, name=label, **{
        f: planted(getattr(base, f)) for f in ("train_step", "train_steps", "forward", "loss_fn", "batch_loss_fn",
                                               "tapped_loss")
    })


# ----------------------------------------------------------------------------- the model

def norm_eps():
    """flax's and PyTorch's default RMSNorm epsilon (1e-6) instead of microgpt's 1e-5."""
    return with_config("norm_eps_1e-6", norm_eps=1e-6)


def attention_variant(model, *, causal: bool = True, scale=jnp.sqrt, axis: int = -1):
    """pure's attention (with its taps), the mask optional, the scale 1/scale(hd), the softmax over `axis`."""
    def attention(params, x, cfg, layer, taps=None):
        tap = model.tap
        T, H, hd = x.shape[0], cfg.n_head, cfg.head_dim
        q = tap(taps, f"l{layer}.q", model.dense(x, params[f"l{layer}.wq"]).reshape(T, H, hd))
        k = tap(taps, f"l{layer}.k", model.dense(x, params[f"l{layer}.wk"]).reshape(T, H, hd))
        v = tap(taps, f"l{layer}.v", model.dense(x, params[f"l{layer}.wv"]).reshape(T, H, hd))
        q = q / scale(hd).astype(x.dtype)
        scores = jnp.einsum("qhd,khd->hqk", q, k)
        if causal:
            scores = jnp.where(jnp.tril(jnp.ones((T, T), bool)), scores, jnp.finfo(x.dtype).min)
        weights = tap(taps, f"l{layer}.attn_weights", jax.nn.softmax(scores, axis=axis))
        out = jnp.einsum("hqk,khd->qhd", weights, v).reshape(T, H * hd)
        return tap(taps, f"l{layer}.attn_out", model.dense(out, params[f"l{layer}.wo"]))

    return attention


def no_causal_mask():
    """Attention that sees the future: the mask left out."""
    return with_model("no_causal_mask",
                      lambda model, optim: setattr(model, "attention", attention_variant(model, causal=False)))


def wrong_scale():
    """Scores scaled by 1/hd instead of 1/sqrt(hd)."""
    return with_model("scale_1_over_hd", lambda model, optim: setattr(
        model, "attention", attention_variant(model, scale=lambda hd: jnp.float32(hd))))


# ----------------------------------------------------------------------------- the optimizer

def adam_beta1():
    """optax's default beta1 (0.9) instead of microgpt's 0.85."""
    return with_config("adam_beta1_0.9", beta1=0.9)


def adam_eps():
    """Adam's epsilon 1e-6 instead of 1e-8."""
    return with_config("adam_eps_1e-6", adam_eps=1e-6)


def no_bias_correction():
    """Adam without its bias correction: m and v used as they are."""
    import pure.optim as reference

    def adam_update(params, grads, opt_state, cfg):
        b1, b2, eps = cfg.beta1, cfg.beta2, cfg.adam_eps
        lr = reference.learning_rate(opt_state["step"], cfg)
        m = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, grads, opt_state["m"])
        v = jax.tree.map(lambda g, v: (1 - b2) * g**2 + b2 * v, grads, opt_state["v"])
        params = jax.tree.map(lambda p, m, v: p - lr * (m / (jnp.sqrt(v) + eps)), params, m, v)
        return params, {"step": opt_state["step"] + 1, "m": m, "v": v}

    return with_model("no_bias_correction", lambda model, optim: setattr(optim, "adam_update", adam_update))


# ----------------------------------------------------------------------------- the flat layout

def transposed_to_flat(name: str = "l0.wq"):
    """A port whose to_flat hands one square weight over transposed (its from_flat is right)."""
    import pure

    base = pure.impl()

    def flip(flat):
        return {k: (v.T if k == name else v) for k, v in flat.items()}

    def state_to_flat(state, cfg=None):
        params, opt = base.state_to_flat(state)
        return flip(params), {"step": opt["step"], "m": flip(opt["m"]), "v": flip(opt["v"])}

    return dataclasses.replace(base, name=f"transposed_{name}", to_flat=lambda tree, cfg=None: flip(base.to_flat(tree)),
                               state_to_flat=state_to_flat)


# ----------------------------------------------------------------------------- what a port gets wrong (issue 28)

def softmax_wrong_axis():
    """The attention weights normalised over the queries (axis -2) rather than the keys."""
    return with_model("softmax_wrong_axis",
                      lambda model, optim: setattr(model, "attention", attention_variant(model, axis=-2)))


def positions_off_by_one():
    """Position embeddings read one place on (wpe[t + 1], wrapping at the block's end)."""
    def change(model, optim):
        def forward(params, tokens, cfg, taps=None):
            T = tokens.shape[0]
            x = jnp.take(params["wte"], tokens, axis=0) + jnp.take(params["wpe"], (jnp.arange(T) + 1) % T, axis=0)
            x = model.tap(taps, "embed", x)
            x = model.tap(taps, "norm_in", model.rmsnorm(x, cfg))
            for layer in range(cfg.n_layer):
                x = model.block(params, x, cfg, layer, taps)
            return model.tap(taps, "logits", x @ params["lm_head"].T)

        model.forward = forward

    return with_model("positions_off_by_one", change)


def residual_after_the_norm():
    """The residual taken from the normed stream: norm(x) + attention(norm(x))."""
    def change(model, optim):
        def block(params, x, cfg, layer, taps=None):
            tap = model.tap
            h = tap(taps, f"l{layer}.norm_attn", model.rmsnorm(x, cfg))
            x = tap(taps, f"l{layer}.res_attn", h + model.attention(params, h, cfg, layer, taps))
            x = x + model.mlp(params, tap(taps, f"l{layer}.norm_mlp", model.rmsnorm(x, cfg)), cfg, layer, taps)
            return tap(taps, f"l{layer}.res_mlp", x)

        model.block = block

    return with_model("residual_after_the_norm", change)


def schedule_one_step_ahead():
    """The learning rate of step t + 1 used at step t (a schedule counting from 1)."""
    def change(model, optim):
        real = optim.learning_rate
        optim.learning_rate = lambda step, cfg: real(step + 1, cfg)

    return with_model("schedule_one_step_ahead", change)



def schedule_stops_decaying(at: int = 500):
    """The learning rate held from step 500 on (a schedule whose length is hard-coded as 500 steps of
    decay): every step of the schedule's first 500 is microgpt's."""
    def change(model, optim):
        optim.learning_rate = lambda step, cfg: cfg.learning_rate * (1 - jnp.minimum(step, at) / cfg.num_steps)

    return with_model("schedule_stops_decaying", change)


def schedule_with_a_floor(floor: float = 0.1):
    """A learning rate that decays to 10% of lr and stays there (a common min_lr), not to 0: every
    step before the schedule's last tenth is microgpt's."""
    def change(model, optim):
        optim.learning_rate = lambda step, cfg: cfg.learning_rate * jnp.maximum(1 - step / cfg.num_steps, floor)

    return with_model("schedule_with_a_floor", change)

def clipping_left_on(max_norm: float = 0.1):
    """Gradients clipped to a global norm of 0.1 before Adam (a clipping step left in)."""
    def change(model, optim):
        real = optim.adam_update

        def adam_update(params, grads, opt_state, cfg):
            norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
            scale = jnp.minimum(1.0, max_norm / norm)
            return real(params, jax.tree.map(lambda g: g * scale, grads), opt_state, cfg)

        optim.adam_update = adam_update

    return with_model("clipping_left_on", change)



def weight_decay(wd: float = 5e-5):
    """AdamW's decoupled weight decay p − lr·wd·p left in: 4 to 16 ulps of each weight's scale a step,
    within rounding of microgpt's Adam after one step, beyond it after ten."""
    def change(model, optim):
        real = optim.adam_update

        def adam_update(params, grads, opt_state, cfg):
            new, state = real(params, grads, opt_state, cfg)
            lr = optim.learning_rate(opt_state["step"], cfg)
            return jax.tree.map(lambda n, p: n - lr * wd * p, new, params), state

        optim.adam_update = adam_update

    return with_model("weight_decay", change)


def adam_as_pytorch_writes_it():
    """microgpt's Adam in PyTorch's order of operations: m.lerp(g, 1 − b1), v·b2 + (1 − b2)·g², the bias
    corrections folded into the step, lr / c1 · m / (√v / √c2 + eps). The same computation,
    rounded another way: never different (the weight decay's failing twin)."""
    def change(model, optim):
        def adam_update(params, grads, opt_state, cfg):
            b1, b2, eps = cfg.beta1, cfg.beta2, cfg.adam_eps
            t = opt_state["step"] + 1
            m = jax.tree.map(lambda g, m: m + (1 - b1) * (g - m), grads, opt_state["m"])
            v = jax.tree.map(lambda g, v: v * b2 + (1 - b2) * (g * g), grads, opt_state["v"])
            size = optim.learning_rate(opt_state["step"], cfg) / (1 - b1**t)
            root = jnp.sqrt(1 - b2**t)
            new = jax.tree.map(lambda p, m, v: p - size * (m / (jnp.sqrt(v) / root + eps)), params, m, v)
            return new, {"step": t, "m": m, "v": v}

        optim.adam_update = adam_update

    return with_model("adam_as_pytorch_writes_it", change)

def moments_not_carried():
    """Adam's moments restarted from zero at every step: step 1 is right, step 2 is not."""
    def change(model, optim):
        real = optim.adam_update

        def adam_update(params, grads, opt_state, cfg):
            zeros = jax.tree.map(jnp.zeros_like, opt_state["m"])
            return real(params, grads, dict(opt_state, m=zeros, v=zeros), cfg)

        optim.adam_update = adam_update

    return with_model("moments_not_carried", change)


def temperature_after_the_softmax():
    """A sampler of the port's own that divides the probabilities by the temperature, not the logits:
    log(softmax(l) / T), which the categorical draws from as if the temperature were 1."""
    import pure

    base = pure.impl()

    def tapped_sample(params, prompt, prompt_len, cfg, *, key, num_samples, temperature):
        T, bos = cfg.block_size, cfg.vocab_size - 1

        def one_name(key):
            def step(carry, pos):
                tokens, key, done = carry
                key, sub = jax.random.split(key)
                logits = pure.model.forward(params, tokens, cfg)[pos]
                scaled = jnp.log(jax.nn.softmax(logits) / temperature)  # the mistake
                nxt = jax.random.categorical(sub, scaled)
                nxt = jnp.where(pos + 1 < prompt_len, tokens[jnp.minimum(pos + 1, T - 1)], nxt)
                nxt = jnp.where(done, bos, nxt)
                return (tokens.at[pos + 1].set(nxt, mode="drop"), key, done | (nxt == bos)), (nxt, logits, scaled)

            return jax.lax.scan(step, (jnp.asarray(prompt), key, jnp.array(False)), jnp.arange(T))[1]

        tokens, logits, scaled = jax.vmap(one_name)(jax.random.split(key, num_samples))
        return tokens, {"logits": logits, "scaled": scaled}

    def sample_tokens(*args, **kwargs):
        return tapped_sample(*args, **kwargs)[0]

    return dataclasses.replace(base, name="temperature_after_the_softmax", sample_tokens=sample_tokens,
                               tapped_sample=tapped_sample)



def sampler_drops_the_prompt():
    """A sample_tokens of the port's own that starts every name after BOS (prompt_len 1), the prefix
    dropped, while its tapped_sample is pure's: where compared the tapped one only and said bitwise
    equal on the row check called different (fourteenth hostile pass)."""
    import pure

    base = pure.impl()

    def sample_tokens(params, prompt, prompt_len, cfg, *, key, num_samples, temperature):
        return base.sample_tokens(params, prompt, 1, cfg, key=key, num_samples=num_samples, temperature=temperature)

    return dataclasses.replace(base, name="sampler_drops_the_prompt", sample_tokens=sample_tokens)

def dividing_rmsnorm(x, cfg):
    """RMSNorm as a division by the square root, where pure multiplies by rsqrt: the same computation,
    rounded another way."""
    return x / jnp.sqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + cfg.norm_eps)


def rmsnorm_divides():
    """A right port that rounds differently in its forward pass: never different (the failing twins
    of check's update rows judged on each side's own inputs are weight_decay and rounds_and_wrong_eps)."""
    def change(model, optim):
        model.rmsnorm = dividing_rmsnorm

    return with_model("rmsnorm_divides", change)


def rounds_and_wrong_eps():
    """A port that rounds differently in its forward pass (RMSNorm by a division, not rsqrt times) and
    has a real mistake in its update (Adam's epsilon 1e-6): both must be named, each on its line."""
    def change(model, optim):
        model.rmsnorm = dividing_rmsnorm
        real = optim.adam_update
        optim.adam_update = lambda params, grads, opt_state, cfg: real(
            params, grads, opt_state, dataclasses.replace(cfg, adam_eps=1e-6))

    return with_model("rounds_and_wrong_eps", change)


def unchanged():
    """pure itself, as a port reached by path: the twin that never parts."""
    import pure

    return dataclasses.replace(pure.impl(), name="unchanged")


# A port's mistake -> (builder, how `where` looks: one step, --steps 3 or --sample, the place its
# `first differs at:` line must name, and what its `why:` must say). tests/test_where.py runs each
# through a module outside the repo, reached by its path.
def sampler_norm_eps():
    """A sampler of the port's own whose forward uses RMSNorm epsilon 1e-3: its logits differ at every
    position, long before a token does. `where` placed it at the first token that differs and called
    every earlier sampling tap bitwise equal (ninth hostile pass)."""
    import pure
    from common import sampling

    base = pure.impl()

    def tapped_sample(params, prompt, prompt_len, cfg, *, key, num_samples, temperature):
        wrong = dataclasses.replace(cfg, norm_eps=1e-3)  # the mistake
        return sampling.sample_tokens(lambda tokens: pure.model.forward(params, tokens, wrong), prompt, prompt_len,
                                      cfg, key=key, num_samples=num_samples, temperature=temperature, taps=True)

    def sample_tokens(*args, **kwargs):
        return tapped_sample(*args, **kwargs)[0]

    return dataclasses.replace(base, name="sampler_norm_eps", sample_tokens=sample_tokens,
                               tapped_sample=tapped_sample)


def loss_summed():
    """A loss_fn that sums the negative log-likelihood over the positions rather than averaging it,
    beside a tapped_loss that is right: `where` showed the loss row bitwise equal (it is the tapped
    pass's) and blamed the backward of hidden @ fc2 (tenth hostile pass)."""
    import pure

    base = pure.impl()

    def loss_fn(params, batch, cfg):  # the mistake: times the number of real positions
        return base.loss_fn(params, batch, cfg) * jnp.sum(batch.mask)

    return dataclasses.replace(base, name="loss_summed", loss_fn=loss_fn)


def step_loss_summed():
    """A train_step returning the summed loss (the trainers print it) while its update is right: the
    update rows were rounding or bitwise, and `check` took where's word for it (eleventh hostile pass)."""
    import pure

    base = pure.impl()

    def train_step(state, batch, cfg):
        state, loss = base.train_step(state, batch, cfg)
        return state, loss * jnp.sum(batch.mask)  # the mistake

    return dataclasses.replace(base, name="step_loss_summed", train_step=train_step)


def steps_loss_doubled():
    """train_steps returning twice each step's loss, its updates right: check's ten-update rows excused
    it as Adam's amplified rounding once they were judged on each side's own inputs (nineteenth hostile
    pass: 1.4e7 ulps in loss[], "equal to float32 rounding")."""
    import pure

    base = pure.impl()

    def train_steps(state, batches, cfg):
        state, losses = base.train_steps(state, batches, cfg)
        return state, losses * 2  # the mistake

    return dataclasses.replace(base, name="steps_loss_doubled", train_steps=train_steps)


LOCALIZED = {
    "softmax_wrong_axis": (softmax_wrong_axis, "step", "l0.attn_weights (forward)", "the softmax"),
    "positions_off_by_one": (positions_off_by_one, "step", "embed (forward)", "wte[tokens] + wpe[positions]"),
    "residual_after_the_norm": (residual_after_the_norm, "step", "l0.res_attn (forward)", "the residual sum"),
    "schedule_one_step_ahead": (schedule_one_step_ahead, "step", "params/wte (update)",
                                "the learning rate of the next step"),
    "clipping_left_on": (clipping_left_on, "step", "m/wte (update)", "the gradient multiplied by"),
    "moments_not_carried": (moments_not_carried, "steps", "m/wte (update, step 2 of 3)",
                            "the moments not carried over"),
    "temperature_after_the_softmax": (temperature_after_the_softmax, "sample", "scaled (sampling, position",
                                      "the categorical's input"),
    "rounds_and_wrong_eps": (rounds_and_wrong_eps, "step", "params/", "eps 1e-6"),
    "sampler_norm_eps": (sampler_norm_eps, "sample", "logits (sampling, position 0 of name 0)",
                         "position 0 of name 0 is the first position"),
    "loss_summed": (loss_summed, "step", "loss_fn() (forward)", "outside the tapped pass"),
    "step_loss_summed": (step_loss_summed, "step", "train_step() (forward)", "the loss train_step returns"),
}


# (builder, the row `where` must name, its phase)
PLANTED = {
    "norm_eps": (norm_eps, "norm_in", "forward"),
    "no_causal_mask": (no_causal_mask, "l0.attn_weights", "forward"),
    "wrong_scale": (wrong_scale, "l0.attn_weights", "forward"),
    "adam_beta1": (adam_beta1, "m/wte", "update"),
    "adam_eps": (adam_eps, "params/wte", "update"),
    "no_bias_correction": (no_bias_correction, "params/wte", "update"),
    "transposed_to_flat": (transposed_to_flat, "l0.wq", "gradient"),
}
