"""`python -m compare.nnx_styles`: what each way of running an NNX train step costs per step.

It measures the choice nnx_port/train.py makes (it lives in compare/ as it runs pure/ beside it).
The same 1000 names, the same model and optimizer, run four ways (each compiled and warmed up
first, then timed in alternating repeats; the median is printed):
  nnx.jit per step          `step(model, optimizer, batch)`, step under @nnx.jit: NNX splits
                            and merges the modules in Python on every call;
  nnx.jit + cached_partial  the same through nnx.cached_partial, which caches that graph traversal;
  split/merge + jax.jit     nnx_port's train_step on (graphdef, variables), one jax.jit call per step;
  lax.scan (nnx_port)       nnx_port's train_steps: 100 steps per call, as the trainer runs them;
and pure/'s train_step, jitted per step and scanned, for reference.

`python -m compare.nnx_styles [REPEATS]` (default 5 repeats).
"""

import argparse
import os
import statistics
import sys
import time

if __name__ == "__main__":
    try:  # the current folder last on the path: a names.py or jax.py there must not shadow a dependency
        if sys.path[0] in ("", os.getcwd()):
            sys.path.append(sys.path.pop(0))
    except (IndexError, OSError):  # no path, or the current folder was deleted
        pass

from common.cli import Parser, check_jax_environment, run_cli
from common.config import Config
from common.data import Tokenizer, default_names, training_batches
from common.runner import name_at, stack_slice


def idiomatic_train_step(cfg: Config):
    """One training step as Flax's guides write NNX: @nnx.jit on the live model and optimizer,
    nnx.value_and_grad, optimizer.update in place. The lesson shows it facing the twins' steps."""
    from flax import nnx  # here, as in main: a bad argument costs no jax import

    from nnx_port import model

    @nnx.jit
    def train_step(gpt, optimizer, batch):
        loss, grads = nnx.value_and_grad(model.loss_fn)(gpt, batch, cfg)
        optimizer.update(gpt, grads)  # in place
        return loss

    return train_step


def repeats_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid repeats {text!r}: give a whole number, 1 or more") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"repeats {value}: time at least 1 repeat (the median needs one)")
    if value > MAX_REPEATS:  # each repeat times every way for 1000 steps: seconds each
        raise argparse.ArgumentTypeError(f"repeats {value}: time at most {MAX_REPEATS:,} (each takes seconds)")
    return value


MAX_REPEATS = 1000


def parser() -> Parser:
    p = Parser(prog="compare.nnx_styles", description="What each way of running an NNX train step costs per step.")
    p.add_argument("repeats", nargs="?", type=repeats_value, default=5,
                   help="timed repeats of each way, in alternating order; the median is printed (default 5)")
    return p


def per_step_us(run, steps: int) -> float:
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(run())
    return 1e6 * (time.perf_counter() - t0) / steps


def main(argv) -> int:
    repeats = parser().parse_args(argv).repeats  # before jax loads: a bad argument costs nothing
    check_jax_environment()
    import jax
    from flax import nnx

    from nnx_port import model, optim, train
    from pure import train as pure_train

    docs = default_names()
    tok = Tokenizer.from_names(docs)
    cfg = Config(vocab_size=tok.vocab_size)
    batches = training_batches(docs, tok, cfg.block_size, cfg.num_steps, seed=0)
    names = [name_at(batches, i) for i in range(cfg.num_steps)]
    key = jax.random.PRNGKey(0)

    gpt = model.init_params(cfg, key=key)
    optimizer = nnx.Optimizer(gpt, optim.adam(cfg), wrt=nnx.Param)
    nnx_jit = idiomatic_train_step(cfg)
    cached = nnx.cached_partial(nnx_jit, gpt, optimizer)

    state = train.init_state(cfg, key=key)
    split_step = jax.jit(lambda s, b: train.train_step(s, b, cfg))
    k = 100
    scan_steps = jax.jit(lambda s, b: train.train_steps(s, b, cfg))
    chunks = [stack_slice(batches, i, i + k) for i in range(0, cfg.num_steps, k)]

    pure_state = pure_train.init_state(cfg, key=key)
    pure_step = jax.jit(lambda s, b: pure_train.train_step(s, b, cfg))
    pure_scan = jax.jit(lambda s, b: pure_train.train_steps(s, b, cfg))

    def loop(step, s):
        """One call per name."""
        for b in names:
            s, _ = step(s, b)
        return s

    def scan_loop(steps, s):
        """One call per chunk of k names."""
        for c in chunks:
            s, _ = steps(s, c)
        return s

    runs = {
        "nnx.jit per step": lambda: [nnx_jit(gpt, optimizer, b) for b in names][-1],
        "nnx.jit + cached_partial": lambda: [cached(b) for b in names][-1],
        "split/merge + jax.jit": lambda: loop(split_step, state),
        "lax.scan (nnx_port)": lambda: scan_loop(scan_steps, state),
        "pure: jax.jit per step": lambda: loop(pure_step, pure_state),
        "pure: lax.scan": lambda: scan_loop(pure_scan, pure_state),
    }
    for run in runs.values():  # compile and warm up
        run()
    times = {name: [] for name in runs}
    for r in range(repeats):
        for name in runs if r % 2 == 0 else reversed(list(runs)):
            times[name].append(per_step_us(runs[name], cfg.num_steps))
    print(f"{cfg.num_steps} steps, median of {repeats} repeats, {jax.devices()[0].platform}")
    for name, ts in times.items():
        print(f"{name:<26} {statistics.median(ts):8.1f} us/step  (min {min(ts):.1f}, max {max(ts):.1f})")
    return 0


if __name__ == "__main__":
    from common.shell import leave

    leave(run_cli(main))
