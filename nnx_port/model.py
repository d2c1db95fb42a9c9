"""The microgpt transformer as flax.nnx modules.

Twins: pure/model.py and flax_port/model.py (linen). NNX takes over creating and initialising the
parameters and holding them: each module keeps its weights as attributes (nnx.Param), built
eagerly in `__init__` from an `nnx.Rngs`, so the module *is* its parameters (no params tree
beside it, no `init`/`apply`) and a weight's name is the attribute path to it. Every library
default that differs from microgpt is spelled out: no biases, no norm scale, RMSNorm epsilon
1e-5; blocks sit in an `nnx.List` (NNX refuses a plain list of submodules).
"""

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from flax.nnx.nn.attention import dot_product_attention_weights  # not re-exported as nnx.<name>
from flax.traverse_util import flatten_dict, unflatten_dict

from common.config import Config

# ----------------------------------------------------------------------------- parameters

def embed(num: int, cfg: Config, rngs: nnx.Rngs) -> nnx.Embed:
    """A (num, D) table looked up by index, like pure's `wte` and `wpe`."""
    init = nnx.initializers.normal(stddev=cfg.init_std)
    return nnx.Embed(num, cfg.n_embd, embedding_init=init, param_dtype=jnp.float32, rngs=rngs)


def dense(features_in: int, features: int, cfg: Config, rngs: nnx.Rngs) -> nnx.Linear:
    """x @ kernel with kernel (in, out), the layout of pure's matrices; NNX adds a bias unless told."""
    init = nnx.initializers.normal(stddev=cfg.init_std)
    return nnx.Linear(features_in, features, use_bias=False, kernel_init=init, param_dtype=jnp.float32, rngs=rngs)


def init_params(cfg: Config, *, key: jax.Array) -> "GPT":
    return GPT(cfg, rngs=nnx.Rngs(params=key))


# ----------------------------------------------------------------------------- taps

def tap(module: nnx.Module, name: str, x):
    """Record `x` under `name` (sow, as an nnx.Intermediate) and return it plus its perturbation
    (perturb, an nnx.Perturbation), inside `nnx.capture` only. Outside a capture (the trainers'
    step) NNX 0.12.8 would keep both as new attributes of the module and add the zeros, so the
    step would no longer be the program it was; `__captures__` is what nnx.capture sets on every
    module while it runs (NNX's own sow and perturb test for it; 0.12.12's capture_noop does the same)."""
    if not hasattr(module, "__captures__"):
        return x
    module.sow(nnx.Intermediate, name, x, reduce_fn=lambda _, x: x)  # the value itself, not a tuple of calls
    return module.perturb(f"{name}_perturbation", x)  # capture keeps one name per module for both kinds


# ----------------------------------------------------------------------------- layers

def rmsnorm(cfg: Config, rngs: nnx.Rngs) -> nnx.RMSNorm:
    """x / sqrt(mean(x²) + eps), no learnable scale (NNX's defaults: a scale and eps 1e-6)."""
    return nnx.RMSNorm(
        cfg.n_embd, epsilon=cfg.norm_eps, use_scale=False, reduction_axes=-1, feature_axes=-1, rngs=rngs
    )


class Attention(nnx.Module):
    """Causal multi-head self-attention."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.wq = dense(cfg.n_embd, cfg.n_embd, cfg, rngs)
        self.wk = dense(cfg.n_embd, cfg.n_embd, cfg, rngs)
        self.wv = dense(cfg.n_embd, cfg.n_embd, cfg, rngs)
        self.wo = dense(cfg.n_embd, cfg.n_embd, cfg, rngs)

    def __call__(self, x):
        cfg = self.cfg
        T, H, hd = x.shape[0], cfg.n_head, cfg.head_dim
        q = tap(self, "q", self.wq(x).reshape(T, H, hd))  # (T, H, hd)
        k = tap(self, "k", self.wk(x).reshape(T, H, hd))  # (T, H, hd)
        v = tap(self, "v", self.wv(x).reshape(T, H, hd))  # (T, H, hd)
        causal = nnx.make_causal_mask(jnp.ones(T))  # (1, T, T) position t sees positions <= t
        # The weights, then an einsum: what linen's nn.dot_product_attention does inside.
        # nnx.dot_product_attention (no dropout) hands off to jax.nn.dot_product_attention, whose
        # backward sums in another order: logits and loss stayed bitwise, but the wk, wte and wpe
        # gradients came out up to 1.5e-8 apart from pure's (1 to 9 ulps of the element; seeds 0-2).
        weights = tap(self, "attn_weights", dot_product_attention_weights(
            q, k, mask=causal, dropout_rate=0.0, deterministic=True
        ))  # (H, T, T)
        out = jnp.einsum("hqk,khd->qhd", weights, v).reshape(T, H * hd)  # (T, D)
        return tap(self, "attn_out", self.wo(out))


class MLP(nnx.Module):
    """D -> 4D -> D with a ReLU between."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        self.fc1 = dense(cfg.n_embd, 4 * cfg.n_embd, cfg, rngs)
        self.fc2 = dense(4 * cfg.n_embd, cfg.n_embd, cfg, rngs)

    def __call__(self, x):
        hidden = tap(self, "mlp_hidden", nnx.relu(self.fc1(x)))  # (T, 4D)
        return tap(self, "mlp_out", self.fc2(hidden))


class Block(nnx.Module):
    """Pre-norm residual block: attention, then the MLP."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        self.norm_attn, self.attn = rmsnorm(cfg, rngs), Attention(cfg, rngs=rngs)
        self.norm_mlp, self.mlp = rmsnorm(cfg, rngs), MLP(cfg, rngs=rngs)

    def __call__(self, x):
        x = x + self.attn(tap(self, "norm_attn", self.norm_attn(x)))
        x = tap(self, "res_attn", x)
        x = x + self.mlp(tap(self, "norm_mlp", self.norm_mlp(x)))
        x = tap(self, "res_mlp", x)
        return x


# ----------------------------------------------------------------------------- forward

class GPT(nnx.Module):
    """Logits for each position of one sequence: tokens (T,) int -> (T, V)."""

    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        self.wte = embed(cfg.vocab_size, cfg, rngs)
        self.wpe = embed(cfg.block_size, cfg, rngs)
        self.norm_in = rmsnorm(cfg, rngs)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for layer in range(cfg.n_layer)])
        # An untied nnx.Embed read through `attend` (x @ table.T), as in flax_port: pure's (V, D)
        # layout, and the lm_head gradient's sums in the same order.
        self.lm_head = embed(cfg.vocab_size, cfg, rngs)

    def __call__(self, tokens):
        T = tokens.shape[0]
        x = self.wte(tokens) + self.wpe(jnp.arange(T))  # (T, D)
        x = tap(self, "embed", x)
        # microgpt norms the embeddings too: the residual stream starts normed
        x = tap(self, "norm_in", self.norm_in(x))
        for block in self.blocks:
            x = block(x)
        return tap(self, "logits", self.lm_head.attend(x))  # (T, V)


def forward(gpt: GPT, tokens, cfg: Config):
    del cfg  # the module was built from it
    return gpt(tokens)


# ----------------------------------------------------------------------------- loss

def mean_nll(logits, batch):
    """Mean next-token negative log-likelihood of logits (T, V) or (B, T, V) over the real (unpadded) positions."""
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)  # -log softmax(logits)[target]
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)


def loss_fn(gpt: GPT, batch, cfg: Config):
    """Mean next-token negative log-likelihood over the name's real (unpadded) positions."""
    return mean_nll(forward(gpt, batch.inputs, cfg), batch)  # logits (T, V)


def batch_loss_fn(gpt: GPT, batch, cfg: Config):
    """The same mean over the real positions of B names (B, T) together: every token weighs the
    same, whatever the length of its name. The single-sequence module call, batched with nnx.vmap
    (the module is shared by every name: in_axes None)."""
    logits = nnx.vmap(forward, in_axes=(None, 0, None))(gpt, batch.inputs, cfg)  # (B, T, V)
    return mean_nll(logits, batch)


# ----------------------------------------------------------------------------- taps of one pass

TAP_PARTS = {"q": "attn", "k": "attn", "v": "attn", "attn_weights": "attn", "attn_out": "attn",
             "mlp_hidden": "mlp", "mlp_out": "mlp"}  # the other taps of a layer are its Block's own


def tap_path(name: str) -> tuple:
    """A tap's name -> its path in the captured state: 'l0.q' -> ('blocks', 0, 'attn', 'q'); 'embed' -> ('embed',)."""
    if "." not in name:
        return (name,)
    layer, local = name.split(".", 1)
    return ("blocks", int(layer[1:]), *((TAP_PARTS[local],) if local in TAP_PARTS else ()), local)


def tapped_forward(gpt: GPT, tokens, cfg: Config, perturbations: dict):
    """forward, recording every tap: tokens (T,) -> (logits (T, V), {tap name: value})."""
    init = nnx.State(unflatten_dict({
        (*tap_path(name)[:-1], f"{tap_path(name)[-1]}_perturbation"): nnx.Perturbation(p)
        for name, p in perturbations.items()
    }))
    logits, sown, _ = nnx.capture(forward, nnx.Intermediate, nnx.Perturbation, init=init)(gpt, tokens, cfg)
    sown = flatten_dict(nnx.to_pure_dict(sown))  # {path: value}, the perturbations' paths among them
    return logits, {name: sown[tap_path(name)] for name in perturbations}


def tapped_loss(gpt: GPT, batch, cfg: Config, perturbations: dict):
    """loss_fn (or batch_loss_fn for (B, T)) with the taps: -> (loss, {tap name: value}); the
    gradient with respect to `perturbations` is the loss's gradient with respect to each tap."""
    # nnx.capture marks every module while it runs, and NNX refuses to change a module made outside
    # the jax transform now tracing (the caller's jax.grad over `perturbations`): capture a copy made here.
    gpt = nnx.clone(gpt)
    if batch.inputs.ndim == 1:
        logits, values = tapped_forward(gpt, batch.inputs, cfg, perturbations)
    else:
        logits, values = nnx.vmap(tapped_forward, in_axes=(None, 0, None, 0))(gpt, batch.inputs, cfg, perturbations)
    return mean_nll(logits, batch), values
