"""The microgpt transformer as flax.linen modules.

Twins: pure/model.py and nnx_port/model.py. Flax takes over creating, naming and initialising the parameters.
Every library default that differs from microgpt is spelled out: no biases, no norm scale,
RMSNorm epsilon 1e-5, explicit `name=` on every submodule.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.traverse_util import flatten_dict, unflatten_dict

from common.config import Config

# ----------------------------------------------------------------------------- parameters

def embed(num: int, cfg: Config, name: str) -> nn.Embed:
    """A (num, D) table looked up by index, like pure's `wte` and `wpe`."""
    init = nn.initializers.normal(stddev=cfg.init_std)
    return nn.Embed(num, cfg.n_embd, embedding_init=init, param_dtype=jnp.float32, name=name)


def dense(features: int, cfg: Config, name: str) -> nn.Dense:
    """x @ kernel with kernel (in, out), the layout of pure's matrices; flax adds a bias unless told."""
    init = nn.initializers.normal(stddev=cfg.init_std)
    return nn.Dense(features, use_bias=False, kernel_init=init, param_dtype=jnp.float32, name=name)


def init_params(cfg: Config, *, key: jax.Array):
    tokens = jnp.zeros(cfg.block_size, jnp.int32)
    return GPT(cfg).init(key, tokens)["params"]


# ----------------------------------------------------------------------------- taps

def tap(module: nn.Module, name: str, x):
    """Record `x` under `name` (sow, into the "intermediates" collection) and return it plus its
    perturbation (perturb, from the "perturbations" collection). linen does both only when `apply`
    is told: sow when "intermediates" is mutable, perturb when "perturbations" is passed in; the
    trainers' step passes neither, and both return without adding an operation. A sown name takes
    a place in the module's namespace, so the norms, whose outputs are the taps norm_*, are named rmsnorm_*."""
    module.sow("intermediates", name, x, reduce_fn=lambda _, x: x)  # the value itself, not a tuple of calls
    return module.perturb(name, x)


# ----------------------------------------------------------------------------- layers

def rmsnorm(cfg: Config, name: str) -> nn.RMSNorm:
    """x / sqrt(mean(x²) + eps), no learnable scale (flax's defaults: a scale and eps 1e-6)."""
    return nn.RMSNorm(
        epsilon=cfg.norm_eps, use_scale=False, reduction_axes=-1, feature_axes=-1, name=name
    )


class Attention(nn.Module):
    """Causal multi-head self-attention."""

    cfg: Config

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        T, H, hd = x.shape[0], cfg.n_head, cfg.head_dim
        q = tap(self, "q", dense(cfg.n_embd, cfg, "wq")(x).reshape(T, H, hd))  # (T, H, hd)
        k = tap(self, "k", dense(cfg.n_embd, cfg, "wk")(x).reshape(T, H, hd))  # (T, H, hd)
        v = tap(self, "v", dense(cfg.n_embd, cfg, "wv")(x).reshape(T, H, hd))  # (T, H, hd)
        causal = nn.make_causal_mask(jnp.ones(T))  # (1, T, T) position t sees positions <= t
        # The weights, then an einsum: what nn.dot_product_attention does inside, written out so
        # that the weights are a tap (the one-call form returns only the weighted values).
        weights = tap(self, "attn_weights", nn.dot_product_attention_weights(
            q, k, mask=causal, dropout_rate=0.0, deterministic=True
        ))  # (H, T, T)
        out = jnp.einsum("hqk,khd->qhd", weights, v).reshape(T, H * hd)  # (T, D)
        return tap(self, "attn_out", dense(cfg.n_embd, cfg, "wo")(out))


class MLP(nn.Module):
    """D -> 4D -> D with a ReLU between."""

    cfg: Config

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        hidden = tap(self, "mlp_hidden", nn.relu(dense(4 * cfg.n_embd, cfg, "fc1")(x)))  # (T, 4D)
        return tap(self, "mlp_out", dense(cfg.n_embd, cfg, "fc2")(hidden))


class Block(nn.Module):
    """Pre-norm residual block: attention, then the MLP."""

    cfg: Config

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        x = x + Attention(cfg, name="attn")(tap(self, "norm_attn", rmsnorm(cfg, "rmsnorm_attn")(x)))
        x = tap(self, "res_attn", x)
        x = x + MLP(cfg, name="mlp")(tap(self, "norm_mlp", rmsnorm(cfg, "rmsnorm_mlp")(x)))
        x = tap(self, "res_mlp", x)
        return x


# ----------------------------------------------------------------------------- forward

class GPT(nn.Module):
    """Logits for each position of one sequence: tokens (T,) int -> (T, V)."""

    cfg: Config

    @nn.compact
    def __call__(self, tokens):
        cfg = self.cfg
        T = tokens.shape[0]
        x = embed(cfg.vocab_size, cfg, "wte")(tokens) + embed(cfg.block_size, cfg, "wpe")(
            jnp.arange(T)
        )  # (T, D)
        x = tap(self, "embed", x)
        # microgpt norms the embeddings too: the residual stream starts normed
        x = tap(self, "norm_in", rmsnorm(cfg, "rmsnorm_in")(x))
        for layer in range(cfg.n_layer):
            x = Block(cfg, name=f"l{layer}")(x)
        # An untied nn.Embed read through `attend` (x @ table.T) keeps pure's (V, D) layout. A Dense
        # would hold the transpose, and under jit XLA then orders the lm_head gradient's sums
        # differently (measured: 3e-8 apart), which would cost the bitwise gradient check.
        return tap(self, "logits", embed(cfg.vocab_size, cfg, "lm_head").attend(x))  # (T, V)


def forward(params, tokens, cfg: Config):
    return GPT(cfg).apply({"params": params}, tokens)


# ----------------------------------------------------------------------------- loss

def mean_nll(logits, batch):
    """Mean next-token negative log-likelihood of logits (T, V) or (B, T, V) over the real (unpadded) positions."""
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)  # -log softmax(logits)[target]
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)


def loss_fn(params, batch, cfg: Config):
    """Mean next-token negative log-likelihood over the name's real (unpadded) positions."""
    return mean_nll(forward(params, batch.inputs, cfg), batch)  # logits (T, V)


def batch_loss_fn(params, batch, cfg: Config):
    """The same mean over the real positions of B names (B, T) together: every token weighs the
    same, whatever the length of its name. The single-sequence `apply`, batched with jax.vmap."""
    logits = jax.vmap(forward, in_axes=(None, 0, None))(params, batch.inputs, cfg)  # (B, T, V)
    return mean_nll(logits, batch)


# ----------------------------------------------------------------------------- taps of one pass

TAP_PARTS = {"q": "attn", "k": "attn", "v": "attn", "attn_weights": "attn", "attn_out": "attn",
             "mlp_hidden": "mlp", "mlp_out": "mlp"}  # the other taps of a layer are its Block's own


def tap_path(name: str) -> tuple[str, ...]:
    """A tap's name -> its path in linen's collections: 'l0.q' -> ('l0', 'attn', 'q'); 'embed' -> ('embed',)."""
    if "." not in name:
        return (name,)
    layer, local = name.split(".", 1)
    return (layer, TAP_PARTS[local], local) if local in TAP_PARTS else (layer, local)


def tap_name(path: tuple[str, ...]) -> str:
    """The inverse of tap_path: ('l0', 'attn', 'q') -> 'l0.q'."""
    return path[0] if len(path) == 1 else f"{path[0]}.{path[-1]}"


def tapped_forward(params, tokens, cfg: Config, perturbations: dict):
    """forward, recording every tap: tokens (T,) -> (logits (T, V), {tap name: value})."""
    nested = unflatten_dict({tap_path(name): p for name, p in perturbations.items()})
    logits, sown = GPT(cfg).apply({"params": params, "perturbations": nested}, tokens, mutable="intermediates")
    return logits, {tap_name(p): x for p, x in flatten_dict(sown["intermediates"]).items()}


def tapped_loss(params, batch, cfg: Config, perturbations: dict):
    """loss_fn (or batch_loss_fn for (B, T)) with the taps: -> (loss, {tap name: value}); the
    gradient with respect to `perturbations` is the loss's gradient with respect to each tap."""
    if batch.inputs.ndim == 1:
        logits, values = tapped_forward(params, batch.inputs, cfg, perturbations)
    else:
        logits, values = jax.vmap(tapped_forward, in_axes=(None, 0, None, 0))(params, batch.inputs, cfg, perturbations)
    return mean_nll(logits, batch), values
