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


def attention_variant(model, *, causal: bool = True, scale=jnp.sqrt):
    """pure's attention (with its taps), the mask optional and the scale 1/scale(hd)."""
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
        weights = tap(taps, f"l{layer}.attn_weights", jax.nn.softmax(scores, axis=-1))
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
