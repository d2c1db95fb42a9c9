"""The equivalence checks: same weights and tokens into two implementations, the same numbers out.

Any two implementations (their `Impl`, common/impl.py), five kinds of output:
  logits   forward(params, tokens)                 -> {"logits"}
  grads    value_and_grad(loss_fn)(params, batch)  -> {"loss", "grads/wte", ...} (batch_loss_fn for (B, T))
  update   train_step(state, batch)                -> {"loss", "params/...", "m/...", "v/...", "step"}
  updates  train_steps(state, names (k, T))        -> the same after k steps, with "loss" (k,)
  samples  sample_tokens(params, prompt, key)      -> {"tokens"}
Each output is put in the checkpoint's flat names, so that any pair compares entry by entry, and
judged with compare/verdict.py: bitwise, or equal to float32 rounding where the arithmetic differs.
`variant` wraps the function under test (`jax.jit`, chex's with_jit/without_jit, or nothing), so
every check runs with jit and without.
"""

import jax
import jax.numpy as jnp

from common.config import Config
from common.impl import Impl
from compare.verdict import BITWISE, ROUNDING, assert_level

KINDS = ("logits", "grads", "update", "updates", "samples")
SAMPLES = 8  # names per sampling check
SHAPES = {  # the grid of model shapes: the default, and one change at a time around it
    "default": {}, "n_embd32": dict(n_embd=32), "n_embd24_3heads": dict(n_embd=24, n_head=3),
    "2layers": dict(n_layer=2), "block8": dict(block_size=8), "block32": dict(block_size=32),
}
MODES = ("jit", "no_jit")
# Without an outer jit, a lax.scan is still compiled whole: for `updates` (a scan of train steps)
# and `samples` (a scan over positions) the no_jit variant compiles the very program the jit one
# does, so it runs at the default shape only. Logits, gradients and one update run op by op there,
# each op compiled alone, so the shape-dependent choices of whole-program compilation (which broke
# bitwise equality at n_embd 24 and 32 under jit) do not arise; they run at three shapes.
NO_JIT_SHAPES = ("default", "n_embd24_3heads", "block32")
GRID = [(kind, shape, mode) for kind in KINDS for shape in SHAPES for mode in MODES
        if mode == "jit" or (shape in NO_JIT_SHAPES and (kind not in ("updates", "samples") or shape == "default"))]
BATCH_KINDS = ("grads", "update", "updates")  # with batches of names, at the default shape, jit and without
DEVICES_GRID = [("grads", "jit"), ("update", "jit"), ("updates", "jit"), ("grads", "no_jit")]  # split over 4 devices


def identity(fn):
    return fn


def raw(kind: str, impl: Impl, cfg: Config):
    """The function under test, (x, data) -> outputs in the implementation's own trees; `x` is
    params (logits, grads, samples) or a training state (update, updates)."""
    if kind == "logits":
        return lambda params, tokens: impl.forward(params, tokens, cfg)
    if kind == "grads":  # one name (T,) or B names (B, T), as the train step chooses
        return lambda params, batch: jax.value_and_grad(impl.loss_fn if batch.inputs.ndim == 1 else impl.batch_loss_fn)(
            params, batch, cfg)
    if kind == "update":
        return lambda state, batch: impl.train_step(state, batch, cfg)
    if kind == "updates":
        return lambda state, batches: impl.train_steps(state, batches, cfg)
    if kind == "samples":
        return lambda params, data: impl.sample_tokens(
            params, data[0], data[1], cfg, key=data[2], num_samples=SAMPLES, temperature=jnp.float32(0.5)
        )
    raise ValueError(f"unknown kind {kind!r}: one of {KINDS}")


def flatten(kind: str, impl: Impl, out) -> dict:
    """Outputs -> {flat name: array}, the same names for every implementation."""
    if kind == "logits":
        return {"logits": out}
    if kind == "samples":
        return {"tokens": out}
    if kind == "grads":
        loss, grads = out
        return {"loss": loss, **{f"grads/{k}": v for k, v in impl.to_flat(grads).items()}}
    state, loss = out
    params, opt = impl.state_to_flat(state)
    return {
        "loss": loss, "step": opt["step"],
        **{f"params/{k}": v for k, v in params.items()},
        **{f"m/{k}": v for k, v in opt["m"].items()},
        **{f"v/{k}": v for k, v in opt["v"].items()},
    }


def compute(kind: str, impl: Impl, x, data, cfg: Config, variant=identity) -> dict:
    return flatten(kind, impl, variant(raw(kind, impl, cfg))(x, data))


def expected_level(kind: str, jit: bool) -> str:
    """Bitwise everywhere but one place: one update called with no outer jit. optax's bias
    correction is itself jax.jit-wrapped, so its division runs compiled while pure's runs as one
    eager op: parameters 1-2 float32 ulps apart (compare/tolerances.py, "One Adam update called
    without an outer jit")."""
    return ROUNDING if kind == "update" and not jit else BITWISE


def assert_same(kind: str, a: dict, b: dict, level: str = BITWISE, what: str = "") -> None:
    """AssertionError, worded as the verdict, unless `a` and `b` are `level`-equal."""
    assert set(a) == set(b), f"{what or kind}: different outputs {sorted(set(a) ^ set(b))}"
    assert_level(a, b, level, what or kind)


def check_pair(kind: str, impl_a: Impl, impl_b: Impl, x_a, x_b, data, cfg_a: Config, cfg_b: Config | None = None,
               variant=identity, level: str = BITWISE) -> None:
    """Compute `kind` in both implementations and assert they agree at `level`; `cfg_b` lets a test
    give the second a different config (flax's RMSNorm epsilon, optax's beta) and watch this fail."""
    out_a = compute(kind, impl_a, x_a, data, cfg_a, variant)
    out_b = compute(kind, impl_b, x_b, data, cfg_b or cfg_a, variant)
    assert_same(kind, out_a, out_b, level, f"{kind}, {impl_a.name} vs {impl_b.name}")


def states_from_one_init(impls: list[Impl], cfg: Config, *, key, scale: float = 1.0) -> list:
    """One initialisation (the first implementation's), scaled, converted into every implementation."""
    first = impls[0].init_state(cfg, key=key)
    params, opt = impls[0].state_to_flat(first)
    params = {k: v * scale for k, v in params.items()}
    return [impl.state_from_flat(params, opt, cfg) for impl in impls]


def pure_and_flax_states(cfg: Config, *, key, scale: float = 1.0):
    """The pair most checks start from: (pure's (params, opt_state), flax_port's TrainState)."""
    import flax_port
    import pure

    return tuple(states_from_one_init([pure.impl(), flax_port.impl()], cfg, key=key, scale=scale))
