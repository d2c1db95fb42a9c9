"""The microgpt transformer as flax.linen modules.

Twins: pure/model.py and nnx_port/model.py. Flax takes over creating, naming and initialising the parameters.
Every library default that differs from microgpt is spelled out: no biases, no norm scale,
RMSNorm epsilon 1e-5, explicit `name=` on every submodule.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

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
        q = dense(cfg.n_embd, cfg, "wq")(x).reshape(T, H, hd)  # (T, H, hd)
        k = dense(cfg.n_embd, cfg, "wk")(x).reshape(T, H, hd)  # (T, H, hd)
        v = dense(cfg.n_embd, cfg, "wv")(x).reshape(T, H, hd)  # (T, H, hd)
        causal = nn.make_causal_mask(jnp.ones(T))  # (1, T, T) position t sees positions <= t
        out = nn.dot_product_attention(
            q, k, v, mask=causal, dropout_rate=0.0, deterministic=True
        ).reshape(T, H * hd)  # (T, D)
        return dense(cfg.n_embd, cfg, "wo")(out)


class MLP(nn.Module):
    """D -> 4D -> D with a ReLU between."""

    cfg: Config

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        return dense(cfg.n_embd, cfg, "fc2")(nn.relu(dense(4 * cfg.n_embd, cfg, "fc1")(x)))


class Block(nn.Module):
    """Pre-norm residual block: attention, then the MLP."""

    cfg: Config

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        x = x + Attention(cfg, name="attn")(rmsnorm(cfg, "norm_attn")(x))
        x = x + MLP(cfg, name="mlp")(rmsnorm(cfg, "norm_mlp")(x))
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
        x = rmsnorm(cfg, "norm_in")(x)  # microgpt norms the embeddings too: the residual stream starts normed
        for layer in range(cfg.n_layer):
            x = Block(cfg, name=f"l{layer}")(x)
        # An untied nn.Embed read through `attend` (x @ table.T) keeps pure's (V, D) layout. A Dense
        # would hold the transpose, and under jit XLA then orders the lm_head gradient's sums
        # differently (measured: 3e-8 apart), which would cost the bitwise gradient check.
        return embed(cfg.vocab_size, cfg, "lm_head").attend(x)  # (T, V)


def forward(params, tokens, cfg: Config):
    return GPT(cfg).apply({"params": params}, tokens)


# ----------------------------------------------------------------------------- loss

def loss_fn(params, batch, cfg: Config):
    """Mean next-token negative log-likelihood over the name's real (unpadded) positions."""
    logits = forward(params, batch.inputs, cfg)  # (T, V)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)  # (T,)
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)


def batch_loss_fn(params, batch, cfg: Config):
    """The same mean over the real positions of B names (B, T) together: every token weighs the
    same, whatever the length of its name. The single-sequence `apply`, batched with jax.vmap."""
    logits = jax.vmap(forward, in_axes=(None, 0, None))(params, batch.inputs, cfg)  # (B, T, V)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)  # (B, T)
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)
