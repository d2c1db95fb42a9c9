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


# ----------------------------------------------------------------------------- taps

class Taps:
    """The named intermediates of one forward pass (common/taps.py), recorded by explicit code: each
    value is kept under its name and goes on plus its perturbation (zeros), so that the gradient
    with respect to `perturbations` is the gradient with respect to the value."""

    def __init__(self, perturbations: dict):
        self.perturbations, self.values = perturbations, {}

    def __call__(self, name: str, x):
        self.values[name] = x
        return x + self.perturbations[name]


def tap(taps: Taps | None, name: str, x):
    """`x` itself when no taps are asked for: the trainers' step traces exactly what it did without taps."""
    return x if taps is None else taps(name, x)


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


def attention(params, x, cfg: Config, layer: int, taps: Taps | None = None):
    """Causal multi-head self-attention."""
    T, H, hd = x.shape[0], cfg.n_head, cfg.head_dim
    q = tap(taps, f"l{layer}.q", dense(x, params[f"l{layer}.wq"]).reshape(T, H, hd))  # (T, H, hd)
    k = tap(taps, f"l{layer}.k", dense(x, params[f"l{layer}.wk"]).reshape(T, H, hd))  # (T, H, hd)
    v = tap(taps, f"l{layer}.v", dense(x, params[f"l{layer}.wv"]).reshape(T, H, hd))  # (T, H, hd)
    q = q / jnp.sqrt(hd).astype(x.dtype)
    scores = jnp.einsum("qhd,khd->hqk", q, k)  # (H, T, T)
    causal = jnp.tril(jnp.ones((T, T), bool))  # position t sees positions <= t
    scores = jnp.where(causal, scores, jnp.finfo(x.dtype).min)
    weights = tap(taps, f"l{layer}.attn_weights", jax.nn.softmax(scores, axis=-1))  # (H, T, T)
    out = jnp.einsum("hqk,khd->qhd", weights, v).reshape(T, H * hd)  # (T, D)
    return tap(taps, f"l{layer}.attn_out", dense(out, params[f"l{layer}.wo"]))


def mlp(params, x, cfg: Config, layer: int, taps: Taps | None = None):
    """D -> 4D -> D with a ReLU between."""
    del cfg  # the MLP's width comes from the parameters
    hidden = tap(taps, f"l{layer}.mlp_hidden", jax.nn.relu(dense(x, params[f"l{layer}.fc1"])))  # (T, 4D)
    return tap(taps, f"l{layer}.mlp_out", dense(hidden, params[f"l{layer}.fc2"]))


def block(params, x, cfg: Config, layer: int, taps: Taps | None = None):
    """Pre-norm residual block: attention, then the MLP."""
    x = x + attention(params, tap(taps, f"l{layer}.norm_attn", rmsnorm(x, cfg)), cfg, layer, taps)
    x = tap(taps, f"l{layer}.res_attn", x)
    x = x + mlp(params, tap(taps, f"l{layer}.norm_mlp", rmsnorm(x, cfg)), cfg, layer, taps)
    x = tap(taps, f"l{layer}.res_mlp", x)
    return x


# ----------------------------------------------------------------------------- forward

def forward(params, tokens, cfg: Config, taps: Taps | None = None):
    """Logits for each position of one sequence: tokens (T,) int -> (T, V)."""
    T = tokens.shape[0]
    # jnp.take, as nn.Embed looks rows up: plain indexing (`wte[tokens]`) promises in-bound indices,
    # take fills out-of-range rows, and XLA compiles the two gradients' scatter-adds differently
    # (1 ulp apart at n_embd 24 and 32; compare/tolerances.py).
    x = jnp.take(params["wte"], tokens, axis=0) + jnp.take(params["wpe"], jnp.arange(T), axis=0)  # (T, D)
    x = tap(taps, "embed", x)
    # microgpt norms the embeddings too: the residual stream starts normed
    x = tap(taps, "norm_in", rmsnorm(x, cfg))
    for layer in range(cfg.n_layer):
        x = block(params, x, cfg, layer, taps)
    return tap(taps, "logits", x @ params["lm_head"].T)  # (T, V)


# ----------------------------------------------------------------------------- loss

def mean_nll(logits, batch):
    """Mean next-token negative log-likelihood of logits (T, V) or (B, T, V) over the real (unpadded) positions."""
    target_logits = jnp.take_along_axis(logits, batch.targets[..., None], axis=-1)[..., 0]  # (T,) or (B, T)
    nll = jax.nn.logsumexp(logits, axis=-1) - target_logits  # -log softmax(logits)[target]
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)


def loss_fn(params, batch, cfg: Config):
    """Mean next-token negative log-likelihood over the name's real (unpadded) positions."""
    return mean_nll(forward(params, batch.inputs, cfg), batch)  # logits (T, V)


def batch_loss_fn(params, batch, cfg: Config):
    """The same mean over the real positions of B names (B, T) together: every token weighs the
    same, whatever the length of its name. The single-sequence forward, batched with jax.vmap."""
    logits = jax.vmap(forward, in_axes=(None, 0, None))(params, batch.inputs, cfg)  # (B, T, V)
    return mean_nll(logits, batch)


# ----------------------------------------------------------------------------- taps of one pass

def tapped_forward(params, tokens, cfg: Config, perturbations: dict):
    """forward, recording every tap: tokens (T,) -> (logits (T, V), {tap name: value})."""
    taps = Taps(perturbations)
    return forward(params, tokens, cfg, taps), taps.values


def tapped_loss(params, batch, cfg: Config, perturbations: dict):
    """loss_fn (or batch_loss_fn for (B, T)) with the taps: -> (loss, {tap name: value}); the
    gradient with respect to `perturbations` is the loss's gradient with respect to each tap."""
    if batch.inputs.ndim == 1:
        logits, values = tapped_forward(params, batch.inputs, cfg, perturbations)
    else:
        logits, values = jax.vmap(tapped_forward, in_axes=(None, 0, None, 0))(params, batch.inputs, cfg, perturbations)
    return mean_nll(logits, batch), values
