"""The microgpt transformer as pure functions over a flat dict of arrays.

Twins: flax_port/model.py and nnx_port/model.py (there flax.linen and flax.nnx own the parameters and their names).
"""

import jax
import jax.numpy as jnp

from common.checkpoint import param_shapes  # pure's params are the checkpoint's flat layout itself
from common.config import Config

# ----------------------------------------------------------------------------- parameters

def init_params(cfg: Config, *, key: jax.Array) -> dict[str, jax.Array]:
    shapes = param_shapes(cfg)
    keys = jax.random.split(key, len(shapes))  # one key per tensor, none used twice
    return {
        name: cfg.init_std * jax.random.normal(k, shape, jnp.float32)
        for k, (name, shape) in zip(keys, shapes.items())
    }


# ----------------------------------------------------------------------------- layers

def dense(x, w):
    """x @ w for w (in, out), written as the lax.dot_general that nn.Dense and nnx.Linear call.
    `x @ w` is jnp.matmul, which jax wraps in a jit of its own: on jax 0.12, without an outer jit,
    its backward runs as one compiled program where XLA folds the transpose into the dot, a kernel
    other than the ports' (gradients up to 8 ulps of scale apart at batch 32; docs/versions.md)."""
    return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())))


def rmsnorm(x, cfg: Config):
    """x / sqrt(mean(x²) + eps), no learnable scale."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + cfg.norm_eps)


def attention(params, x, cfg: Config, layer: int):
    """Causal multi-head self-attention."""
    T, H, hd = x.shape[0], cfg.n_head, cfg.head_dim
    q = dense(x, params[f"l{layer}.wq"]).reshape(T, H, hd)  # (T, H, hd)
    k = dense(x, params[f"l{layer}.wk"]).reshape(T, H, hd)  # (T, H, hd)
    v = dense(x, params[f"l{layer}.wv"]).reshape(T, H, hd)  # (T, H, hd)
    q = q / jnp.sqrt(hd).astype(x.dtype)
    scores = jnp.einsum("qhd,khd->hqk", q, k)  # (H, T, T)
    causal = jnp.tril(jnp.ones((T, T), bool))  # position t sees positions <= t
    scores = jnp.where(causal, scores, jnp.finfo(x.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)  # (H, T, T)
    out = jnp.einsum("hqk,khd->qhd", weights, v).reshape(T, H * hd)  # (T, D)
    return dense(out, params[f"l{layer}.wo"])


def mlp(params, x, cfg: Config, layer: int):
    """D -> 4D -> D with a ReLU between."""
    del cfg  # the MLP's width comes from the parameters
    return dense(jax.nn.relu(dense(x, params[f"l{layer}.fc1"])), params[f"l{layer}.fc2"])


def block(params, x, cfg: Config, layer: int):
    """Pre-norm residual block: attention, then the MLP."""
    x = x + attention(params, rmsnorm(x, cfg), cfg, layer)
    x = x + mlp(params, rmsnorm(x, cfg), cfg, layer)
    return x


# ----------------------------------------------------------------------------- forward

def forward(params, tokens, cfg: Config):
    """Logits for each position of one sequence: tokens (T,) int -> (T, V)."""
    T = tokens.shape[0]
    # jnp.take, as nn.Embed looks rows up: plain indexing (`wte[tokens]`) promises in-bound indices,
    # take fills out-of-range rows, and XLA compiles the two gradients' scatter-adds differently
    # (1 ulp apart at n_embd 24 and 32; compare/tolerances.py).
    x = jnp.take(params["wte"], tokens, axis=0) + jnp.take(params["wpe"], jnp.arange(T), axis=0)  # (T, D)
    x = rmsnorm(x, cfg)  # microgpt norms the embeddings too: the residual stream starts normed
    for layer in range(cfg.n_layer):
        x = block(params, x, cfg, layer)
    return x @ params["lm_head"].T  # (T, V)


# ----------------------------------------------------------------------------- loss

def loss_fn(params, batch, cfg: Config):
    """Mean next-token negative log-likelihood over the name's real (unpadded) positions."""
    logits = forward(params, batch.inputs, cfg)  # (T, V)
    target_logits = jnp.take_along_axis(logits, batch.targets[:, None], axis=-1)[:, 0]  # (T,)
    nll = jax.nn.logsumexp(logits, axis=-1) - target_logits  # (T,) -log softmax(logits)[target]
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)


def batch_loss_fn(params, batch, cfg: Config):
    """The same mean over the real positions of B names (B, T) together: every token weighs the
    same, whatever the length of its name. The single-sequence forward, batched with jax.vmap."""
    logits = jax.vmap(forward, in_axes=(None, 0, None))(params, batch.inputs, cfg)  # (B, T, V)
    target_logits = jnp.take_along_axis(logits, batch.targets[..., None], axis=-1)[..., 0]  # (B, T)
    nll = jax.nn.logsumexp(logits, axis=-1) - target_logits  # (B, T) -log softmax(logits)[target]
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)
