"""The microgpt transformer as Equinox modules.

Compared with pure/model.py (through compare/, by module path). Equinox takes over holding the
parameters: each module is a dataclass whose fields are its layers and arrays, and the whole
model is a pytree that jax.grad, jax.jit and optax take as it is. Its RMSNorm acts on one vector
and goes over a sequence under jax.vmap. Every library default that differs from microgpt is
spelled out: no biases, no norm weight or bias, RMSNorm epsilon from the config, N(0, init_std)
weights (Equinox draws uniform(±1/sqrt(in)) for Linear and N(0, 1) for Embedding).

Three choices keep it bitwise equal to pure at every shape, with jit and without, each measured
(docs/porting.md): the block's matrices are a one-field `Dense` module holding (in, out), not
eqx.nn.Linear's (out, in); the embedding tables are read with jnp.take, not by calling the
Embedding under vmap; lm_head's Linear is read as x @ weight.T, not called under vmap.
Attention is written out (scores, mask, softmax, weighted values) rather than taken from
`eqx.nn.MultiheadAttention`: that module keeps q, k, v and the attention weights to itself, and
the taps below need them by name.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from common.config import Config

# ----------------------------------------------------------------------------- parameters

class Dense(eqx.Module):
    """x @ weight with weight (in, out), no bias: pure's layout. Not eqx.nn.Linear, whose weight is
    (out, in): with the same numbers held transposed, XLA's CPU backend orders the sums of some
    matrix products differently (measured: at n_embd 24 with 3 heads, logits 1 ulp of scale apart
    and gradients up to 3; pure's own forward fed the transposed weights and transposing them back
    inside jit is 1 ulp off the same way). An eqx.Module of one field is how Equinox writes a layer
    the library does not have; it acts on (T, in) or on one vector (in,) alike."""

    weight: jax.Array  # (in, out)

    def __init__(self, in_features: int, out_features: int, cfg: Config, *, key: jax.Array):
        self.weight = cfg.init_std * jax.random.normal(key, (in_features, out_features), jnp.float32)

    def __call__(self, x):
        return x @ self.weight


def linear(in_features: int, out_features: int, cfg: Config, *, key: jax.Array) -> eqx.nn.Linear:
    """x -> weight @ x, weight (out, in), no bias (Equinox adds one unless told), N(0, init_std)
    weights; lm_head's (V, D) weight is pure's layout already."""
    layer_key, weight_key = jax.random.split(key)
    layer = eqx.nn.Linear(in_features, out_features, use_bias=False, dtype=jnp.float32, key=layer_key)
    weight = cfg.init_std * jax.random.normal(weight_key, (out_features, in_features), jnp.float32)
    return eqx.tree_at(lambda lin: lin.weight, layer, weight)


def embedding(num: int, cfg: Config, *, key: jax.Array) -> eqx.nn.Embedding:
    """A (num, D) table; given its weight, since Equinox draws N(0, 1)."""
    return eqx.nn.Embedding(weight=cfg.init_std * jax.random.normal(key, (num, cfg.n_embd), jnp.float32))


def rmsnorm(cfg: Config) -> eqx.nn.RMSNorm:
    """x / sqrt(mean(x²) + eps) of one vector, no learnable weight or bias (Equinox has both unless told)."""
    return eqx.nn.RMSNorm(cfg.n_embd, eps=cfg.norm_eps, use_weight=False, use_bias=False)


def init_params(cfg: Config, *, key: jax.Array) -> "GPT":
    return GPT(cfg, key=key)


# ----------------------------------------------------------------------------- taps

def untapped(name: str, value):
    """The default `tap`: the forward pass as it runs in training, nothing recorded."""
    del name
    return value


def prefixed(tap, prefix: str):
    """A block's taps under its layer's names: 'q' -> 'l0.q'."""
    return lambda name, value: tap(prefix + name, value)


# ----------------------------------------------------------------------------- layers

class Attention(eqx.Module):
    """Causal multi-head self-attention."""

    wq: Dense
    wk: Dense
    wv: Dense
    wo: Dense
    n_head: int = eqx.field(static=True)

    def __init__(self, cfg: Config, *, key: jax.Array):
        wq_key, wk_key, wv_key, wo_key = jax.random.split(key, 4)
        self.wq = Dense(cfg.n_embd, cfg.n_embd, cfg, key=wq_key)
        self.wk = Dense(cfg.n_embd, cfg.n_embd, cfg, key=wk_key)
        self.wv = Dense(cfg.n_embd, cfg.n_embd, cfg, key=wv_key)
        self.wo = Dense(cfg.n_embd, cfg.n_embd, cfg, key=wo_key)
        self.n_head = cfg.n_head

    def __call__(self, x, tap=untapped):
        T, H = x.shape[0], self.n_head
        hd = x.shape[1] // H
        q = tap("q", self.wq(x).reshape(T, H, hd))  # (T, H, hd)
        k = tap("k", self.wk(x).reshape(T, H, hd))  # (T, H, hd)
        v = tap("v", self.wv(x).reshape(T, H, hd))  # (T, H, hd)
        q = q / jnp.sqrt(hd).astype(x.dtype)
        scores = jnp.einsum("qhd,khd->hqk", q, k)  # (H, T, T)
        causal = jnp.tril(jnp.ones((T, T), bool))  # position t sees positions <= t
        scores = jnp.where(causal, scores, jnp.finfo(x.dtype).min)
        weights = tap("attn_weights", jax.nn.softmax(scores, axis=-1))  # (H, T, T)
        out = jnp.einsum("hqk,khd->qhd", weights, v).reshape(T, H * hd)  # (T, D)
        return self.wo(out)


class MLP(eqx.Module):
    """D -> 4D -> D with a ReLU between."""

    fc1: Dense
    fc2: Dense

    def __init__(self, cfg: Config, *, key: jax.Array):
        fc1_key, fc2_key = jax.random.split(key)
        self.fc1 = Dense(cfg.n_embd, 4 * cfg.n_embd, cfg, key=fc1_key)
        self.fc2 = Dense(4 * cfg.n_embd, cfg.n_embd, cfg, key=fc2_key)

    def __call__(self, x, tap=untapped):
        hidden = tap("mlp_hidden", jax.nn.relu(self.fc1(x)))  # (T, 4D)
        return self.fc2(hidden)


class Block(eqx.Module):
    """Pre-norm residual block: attention, then the MLP."""

    norm_attn: eqx.nn.RMSNorm
    attn: Attention
    norm_mlp: eqx.nn.RMSNorm
    mlp: MLP

    def __init__(self, cfg: Config, *, key: jax.Array):
        attn_key, mlp_key = jax.random.split(key)
        self.norm_attn, self.norm_mlp = rmsnorm(cfg), rmsnorm(cfg)
        self.attn = Attention(cfg, key=attn_key)
        self.mlp = MLP(cfg, key=mlp_key)

    def __call__(self, x, tap=untapped):
        x = tap("res_attn", x + tap("attn_out", self.attn(tap("norm_attn", jax.vmap(self.norm_attn)(x)), tap)))
        x = tap("res_mlp", x + tap("mlp_out", self.mlp(tap("norm_mlp", jax.vmap(self.norm_mlp)(x)), tap)))
        return x


# ----------------------------------------------------------------------------- forward

class GPT(eqx.Module):
    """Logits for each position of one sequence: tokens (T,) int -> (T, V)."""

    wte: eqx.nn.Embedding
    wpe: eqx.nn.Embedding
    norm_in: eqx.nn.RMSNorm
    blocks: tuple[Block, ...]
    lm_head: eqx.nn.Linear  # weight (V, D): pure's lm_head layout, read as x @ lm_head.T

    def __init__(self, cfg: Config, *, key: jax.Array):
        wte_key, wpe_key, lm_head_key, *block_keys = jax.random.split(key, 3 + cfg.n_layer)
        self.wte = embedding(cfg.vocab_size, cfg, key=wte_key)
        self.wpe = embedding(cfg.block_size, cfg, key=wpe_key)
        self.norm_in = rmsnorm(cfg)
        self.blocks = tuple(Block(cfg, key=k) for k in block_keys)
        self.lm_head = linear(cfg.n_embd, cfg.vocab_size, cfg, key=lm_head_key)

    def __call__(self, tokens, tap=untapped):
        T = tokens.shape[0]
        # jnp.take on the tables, as pure looks rows up, rather than jax.vmap(self.wte)(tokens): an
        # Embedding indexes its weight (weight[x], a gather that promises in-bound indices), take
        # fills out-of-range rows, and XLA compiles the two gradients' scatter-adds differently
        # (measured: the wte and wpe gradients 1 ulp of scale apart at n_embd 24 with 3 heads).
        x = jnp.take(self.wte.weight, tokens, axis=0) + jnp.take(self.wpe.weight, jnp.arange(T), axis=0)
        x = tap("embed", x)  # (T, D)
        x = tap("norm_in", jax.vmap(self.norm_in)(x))  # microgpt norms the embeddings too
        for layer, block in enumerate(self.blocks):
            x = block(x, prefixed(tap, f"l{layer}."))
        # x @ weight.T on the Linear's (V, D) weight, as pure computes it: jax.vmap(self.lm_head)(x)
        # is one matrix product the other way round, and without jit XLA sums its gradient in
        # another order (measured: the lm_head gradient 1 ulp of scale apart at the default shape).
        return tap("logits", x @ self.lm_head.weight.T)  # (T, V)


def forward(gpt: GPT, tokens, cfg: Config):
    del cfg  # the module was built from it
    return gpt(tokens)


# ----------------------------------------------------------------------------- loss

def loss_fn(gpt: GPT, batch, cfg: Config):
    """Mean next-token negative log-likelihood over the name's real (unpadded) positions."""
    logits = forward(gpt, batch.inputs, cfg)  # (T, V)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)  # (T,)
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)


def batch_loss_fn(gpt: GPT, batch, cfg: Config):
    """The same mean over the real positions of B names (B, T) together: every token weighs the
    same, whatever the length of its name. The one-name model, batched with jax.vmap."""
    logits = jax.vmap(forward, in_axes=(None, 0, None))(gpt, batch.inputs, cfg)  # (B, T, V)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)  # (B, T)
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask)


# ----------------------------------------------------------------------------- taps

def tapped_loss(gpt: GPT, batch, cfg: Config, perturbations: dict):
    """(loss, taps): loss_fn's (or batch_loss_fn's) loss, and every named intermediate of
    common/taps.py. Equinox has no `sow`: the modules take a `tap(name, value)` function, which
    here records the value and returns it plus its perturbation (the gradient of the loss with
    respect to a perturbation is its gradient with respect to the tap). In training `tap` is
    `untapped` and traces to nothing."""

    def tapped_forward(tokens, perturbations):
        taps = {}

        def tap(name, value):
            taps[name] = value
            return value + perturbations[name]

        return gpt(tokens, tap), taps

    if batch.inputs.ndim == 1:
        logits, taps = tapped_forward(batch.inputs, perturbations)  # (T, V)
    else:
        logits, taps = jax.vmap(tapped_forward)(batch.inputs, perturbations)  # (B, T, V)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch.targets)
    return jnp.sum(nll * batch.mask) / jnp.sum(batch.mask), taps
