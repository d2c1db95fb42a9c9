"""How a run proceeds, for any implementation: chunks of steps compiled once and called in a loop,
the divergence replay, compile timing, and the sampling driver.

What differs between implementations comes in through an `Impl` (common/impl.py); flags and errors
live in common/cli.py, which calls into this file.
"""

import dataclasses
import time

import numpy as np

from common.checkpoint import param_shapes
from common.config import Config
from common.data import Tokenizer
from common.errors import UserError

# ----------------------------------------------------------------------------- training

# At most this many names per jitted call, whatever --log-every asks: a signal (Ctrl-C, a CI job's
# SIGTERM) is handled between two calls, never inside one, so a run of 300,000 steps logged once
# took 18 s to stop after Ctrl-C, and a SIGTERM 283 s (fifth hostile pass, 2026-12-07, this 2-core
# AMD EPYC, jax 0.12.0.1). A call of 1000 names of the default model takes about 50 ms here.
CHUNK_NAMES = 1000


def chunk_size(num_steps: int, log_every: int, batch_size: int = 1) -> int:
    """Steps per jitted call: the largest divisor of num_steps up to log_every (and up to
    CHUNK_NAMES names), so every call has the same shape and training compiles exactly once
    whatever the step count."""
    target = max(1, min(log_every, num_steps, CHUNK_NAMES // max(1, batch_size)))
    return max(k for k in range(1, target + 1) if num_steps % k == 0)


@dataclasses.dataclass
class Timings:
    train_compile_s: float = 0.0
    train_s: float = 0.0
    sample_compile_s: float = 0.0
    sample_s: float = 0.0
    compiles: int = 0


def compiled(fn, *example_args, jit: bool):
    """`fn` compiled ahead of time for the shapes of `example_args` (a call with other shapes
    raises instead of recompiling), or, with `jit=False`, `fn` run under jax.disable_jit()."""
    import jax

    if not jit:
        def eager(*args):
            with jax.disable_jit():
                return fn(*args)
        return eager
    return jax.jit(fn).lower(*example_args).compile()


def compile_steps(impl, state, batches, cfg: Config, jit: bool):
    """The function the loop calls on (state, k names): compiled ahead of time, or eager."""
    return compiled(lambda s, b: impl.train_steps(s, b, cfg), state, batches, jit=jit)


def init_state(impl, cfg: Config, *, key, jit: bool = True):
    """The implementation's fresh state, initialised in one compiled call (eagerly, each
    random draw would compile on its own: measured 1.3 s against about 0.2 s)."""
    import jax

    if not jit:
        with jax.disable_jit():
            return impl.init_state(cfg, key=key)
    return jax.jit(impl.init_state, static_argnums=0)(cfg, key=key)


def nonfinite_params(impl, state, cfg: Config) -> list[str]:
    """The seed names of the parameters holding a NaN or an inf, in the model's order (the
    checkpoint's flat layout gives both)."""
    flat = impl.to_flat(impl.params_of(state))
    return [name for name in param_shapes(cfg) if not np.isfinite(np.asarray(flat[name])).all()]


def check_chunk(impl, before, after, batches, losses: np.ndarray, first_step: int, cfg: Config, jit: bool) -> None:
    """Every loss of a chunk finite, and the weights it ends with (which no loss has seen yet).
    If not, replay the chunk from `before` one step at a time, to name the step that diverged and
    the parameters its update made non-finite (a chunk's end state would blame them all)."""
    import jax

    if np.isfinite(losses).all() and all(np.isfinite(np.asarray(w)).all() for w in jax.tree.leaves(after)):
        return
    step = compiled(lambda s, b: impl.train_step(s, b, cfg), before, name_at(batches, 0), jit=jit)
    state = before
    for i in range(len(losses)):
        state, loss = step(state, name_at(batches, i))
        where = f"{impl.name}: training diverged at step {first_step + i + 1}"
        if not np.isfinite(loss):
            raise UserError(f"{where}: the loss is {float(loss)} while the weights are finite; "
                            "nothing was saved: lower --lr")
        bad = nonfinite_params(impl, state, cfg)
        if bad:
            raise UserError(f"{where}: its update made {', '.join(bad)} non-finite; nothing was saved: lower --lr")
    raise UserError(f"{impl.name}: training diverged between steps {first_step + 1} and {first_step + len(losses)}; "
                    "nothing was saved: lower --lr")


def stack_slice(batches, start: int, stop: int):
    """Names start..stop-1 of a stacked Batch, still stacked."""
    return type(batches)(*(col[start:stop] for col in batches))


def name_at(batches, i: int):
    """Step i of a stacked Batch, as the Batch a single train step takes: one name (T,) or B names (B, T)."""
    return type(batches)(*(col[i] for col in batches))


def format_step(step: int, num_steps: int, loss: float, mean: float, since: int) -> str:
    """The seed's line (this step's loss, one name: it jumps around) and the mean loss over steps
    `since`..`step`, the ones since the previous line, which shows the trend."""
    steps = f"step {since}" if since == step else f"steps {since}-{step}"
    return f"step {step:4d} / {num_steps:4d} | loss {loss:.4f} | mean {mean:.4f} ({steps})"


def run_training(impl, state, cfg: Config, batches, *, jit=True, log_every=100, on_log=None, mesh=None):
    """Train from `state` over the run's stacked names, (num_steps, T) or (num_steps, B, T);
    returns (state, all losses, Timings).

    The loop calls one compiled function on chunks of equal size, so a run compiles once
    (`Timings.compiles` counts every XLA compilation the training triggered). With a `mesh`
    (common/devices.py) the state is replicated over its devices and each step's names split
    across them; jit inserts the cross-device sum of the gradients."""
    import jax

    from common.compiles import count_compiles
    from common.devices import place_batches, place_state

    timings = Timings()
    k = chunk_size(cfg.num_steps, log_every, batches.inputs.shape[1] if batches.inputs.ndim == 3 else 1)
    place = (lambda chunk: place_batches(chunk, mesh)) if mesh is not None else (lambda chunk: chunk)
    if mesh is not None:
        state = place_state(state, mesh)
    all_losses = []
    unlogged = []  # the losses since the last line printed
    with count_compiles() as compiles:
        t0 = time.perf_counter()
        steps = compile_steps(impl, state, place(stack_slice(batches, 0, k)), cfg, jit=jit)
        timings.train_compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for start in range(0, cfg.num_steps, k):
            chunk = place(stack_slice(batches, start, start + k))
            before = state
            state, losses = steps(state, chunk)
            losses = np.asarray(losses)
            check_chunk(impl, before, state, chunk, losses, start, cfg, jit)
            all_losses.append(losses)
            for i, loss in enumerate(losses, start + 1):
                unlogged += [loss] if on_log else []
                if on_log and (i == 1 or i % log_every == 0 or i == cfg.num_steps):
                    on_log(i, float(loss), float(np.mean(unlogged)), i - len(unlogged) + 1)
                    unlogged = []
        jax.block_until_ready(state)
        timings.train_s = time.perf_counter() - t0
        timings.compiles = len(compiles)
    return state, np.concatenate(all_losses), timings


# ----------------------------------------------------------------------------- sampling

def prompt_tokens(tok: Tokenizer, prefix: str, cfg: Config):
    """A block_size buffer holding BOS and the prefix, and how many of its places are given."""
    if len(prefix) > cfg.block_size - 1:
        raise UserError(
            f"--prefix {prefix!r} has {len(prefix)} characters, more than block_size - 1 = "
            f"{cfg.block_size - 1}: give a shorter start"
        )
    try:
        ids = [tok.bos] + tok.encode(prefix)
    except UserError as err:  # the flag named, as the length's message names it
        raise UserError(f"--prefix {err}") from None
    buf = np.full(cfg.block_size, tok.bos, np.int32)
    buf[: len(ids)] = ids
    return buf, np.int32(len(ids))


def sample_names(impl, params, tok: Tokenizer, cfg: Config, *, key, num_samples, temperature, prefix="", jit=True):
    """Names decoded from `impl.sample_tokens`, plus (compile seconds, sample seconds)."""
    import jax

    prompt, prompt_len = prompt_tokens(tok, prefix, cfg)
    temperature = np.float32(temperature)
    t0 = time.perf_counter()
    if jit:
        fn = jax.jit(impl.sample_tokens, static_argnames=("cfg", "num_samples"))
        fn = fn.lower(params, prompt, prompt_len, cfg=cfg, key=key, num_samples=num_samples,
                      temperature=temperature).compile()
        t1 = time.perf_counter()
        out = fn(params, prompt, prompt_len, key=key, temperature=temperature)
    else:
        t1 = time.perf_counter()
        with jax.disable_jit():
            out = impl.sample_tokens(params, prompt, prompt_len, cfg, key=key,
                                     num_samples=num_samples, temperature=temperature)
    out = np.asarray(out)
    t2 = time.perf_counter()
    if out.dtype.kind not in "iu" or out.size and not (0 <= out.min() and out.max() < tok.vocab_size):
        from common.errors import PortFailure  # a port's sampler (the twins' give token ids)

        raise PortFailure(f"{impl.name}'s sample_tokens gave {out.dtype} tokens from {out.min()} to {out.max()}: "
                          f"token ids are whole numbers from 0 to {tok.vocab_size - 1}")
    names = [prefix + tok.decode(row[len(prefix):]) for row in out]
    return names, t1 - t0, t2 - t1


def format_sample(i: int, name: str) -> str:
    return f"sample {i:2d}: {name}"
