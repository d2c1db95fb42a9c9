"""Taps: the named intermediates of one forward pass, the same names in every implementation.

A tap is a value the forward pass computes on its way to the loss (the embedding sum, a norm's
output, q, the attention weights, ...). Each implementation exposes them through
`Impl.tapped_loss` (common/impl.py) with its own framework's mechanism: explicit code in pure/,
`sow` and `perturb` in flax.linen, their NNX counterparts in nnx_port/. The names below are the
contract, as the checkpoint's flat names are for parameters: compare/ lines two implementations
up tap by tap without knowing how either records them.

The gradient of the loss with respect to a tap comes from a perturbation: each tap's value is
returned plus a perturbation (zeros of the same shape), and the gradient with respect to the
perturbation is the gradient with respect to the value (d loss / d (x + p) at p = 0).

Shapes are for one name of length T; a batch (B, T) puts a leading B in front of each.
"""

from common.config import Config


def tap_shapes(cfg: Config, T: int) -> dict[str, tuple[int, ...]]:
    """Every tap, in the order the forward pass computes it, with its shape for a name of length T."""
    D, H, hd, V = cfg.n_embd, cfg.n_head, cfg.head_dim, cfg.vocab_size
    shapes = {"embed": (T, D), "norm_in": (T, D)}  # wte[tokens] + wpe[positions]; then its RMSNorm
    for i in range(cfg.n_layer):
        shapes |= {
            f"l{i}.norm_attn": (T, D),  # the RMSNorm before attention
            f"l{i}.q": (T, H, hd),  # x @ wq, split into heads; before any 1/sqrt(hd) scaling
            f"l{i}.k": (T, H, hd),
            f"l{i}.v": (T, H, hd),
            f"l{i}.attn_weights": (H, T, T),  # softmax of the masked, scaled scores; row q sums to 1
            f"l{i}.attn_out": (T, D),  # the heads' weighted values, joined, @ wo
            f"l{i}.res_attn": (T, D),  # the residual stream after attention: x + attn_out
            f"l{i}.norm_mlp": (T, D),  # the RMSNorm before the MLP
            f"l{i}.mlp_hidden": (T, 4 * D),  # relu(x @ fc1)
            f"l{i}.mlp_out": (T, D),  # mlp_hidden @ fc2
            f"l{i}.res_mlp": (T, D),  # the residual stream after the MLP: x + mlp_out
        }
    shapes["logits"] = (T, V)
    return shapes


def tap_names(cfg: Config) -> list[str]:
    """The tap names in forward order (the loss, a scalar, comes after the last)."""
    return list(tap_shapes(cfg, 1))


def zero_perturbations(cfg: Config, inputs_shape: tuple[int, ...]) -> dict:
    """{tap name: float32 zeros of its shape} for tokens of `inputs_shape`, (T,) or (B, T): the
    `perturbations` argument of Impl.tapped_loss when only the values and their gradients are wanted."""
    import jax.numpy as jnp

    *lead, T = inputs_shape
    return {name: jnp.zeros((*lead, *shape), jnp.float32) for name, shape in tap_shapes(cfg, T).items()}
