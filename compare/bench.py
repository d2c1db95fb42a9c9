"""`python -m compare bench`: where the time goes, pure/ and flax_port/ side by side.

Same data, same weights (one initialisation converted into both), the persistent compilation
cache off so that compile times are real. Prints one table; `--json PATH` writes the figures.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from common import checkpoint
from common.cli import Parser, chunk_size, compile_steps, init_state, sample_names, stack_slice
from common.config import Config
from common.data import Tokenizer, load_names, training_batches
from common.errors import UserError

IMPORT_SNIPPET = (
    "import time; t = time.perf_counter(); import {pkg}.train, {pkg}.sample, {pkg}.model; "
    "print(time.perf_counter() - t)"
)


def import_seconds(pkg: str, repeats: int) -> float:
    """Median wall time of importing one implementation in a fresh interpreter (jax included)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET.format(pkg=pkg)], env=env, cwd=root,
                             capture_output=True, text=True)
        if out.returncode:
            last = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"importing {pkg} in a fresh interpreter failed ({last}): run `uv sync` first")
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def bench_one(impl, state0, cfg: Config, batches, tok, *, repeats: int, eager_steps: int, key):
    import jax

    from common.compiles import count_compiles

    row = {}
    k = chunk_size(cfg.num_steps, 100)
    with count_compiles() as compiles:
        t0 = time.perf_counter()
        steps = compile_steps(impl, state0, stack_slice(batches, 0, k), cfg, jit=True)
        row["compile_train_s"] = time.perf_counter() - t0

        def whole_run():
            state = state0
            t = time.perf_counter()
            for start in range(0, cfg.num_steps, k):
                state, losses = steps(state, stack_slice(batches, start, start + k))
                np.asarray(losses)  # the trainers read the losses back every chunk too
            jax.block_until_ready(state)
            return time.perf_counter() - t, state

        row["first_run_s"], state = whole_run()  # includes the executable's first-call warm-up
        runs = [whole_run()[0] for _ in range(repeats)]
        row["compiles_during_training"] = len(compiles)
    row["run_s"] = statistics.median(runs)
    row["step_us"] = 1e6 * row["run_s"] / cfg.num_steps

    params = impl.params_of(state)
    _, row["compile_sampler_s"], _ = sample_names(impl, params, tok, cfg, key=key, num_samples=20, temperature=0.5)
    row["sample_20_s"] = statistics.median(
        sample_names(impl, params, tok, cfg, key=key, num_samples=20, temperature=0.5)[2] for _ in range(repeats)
    )

    eager = compile_steps(impl, state0, stack_slice(batches, 0, 1), cfg, jit=False)
    eager(state0, stack_slice(batches, 0, 1))  # first eager call compiles each primitive once
    t0 = time.perf_counter()
    state = state0
    for i in range(1, 1 + eager_steps):
        state, _ = eager(state, stack_slice(batches, i, i + 1))
    jax.block_until_ready(state)
    row["eager_step_ms"] = 1e3 * (time.perf_counter() - t0) / eager_steps
    return row


ROWS = [
    ("import_s", "import (fresh interpreter, jax included)", "{:.2f} s"),
    ("compile_train_s", "compile the train step", "{:.2f} s"),
    ("compile_sampler_s", "compile the sampler", "{:.2f} s"),
    ("first_run_s", "first {steps}-step run (incl. first-call warm-up)", "{:.3f} s"),
    ("run_s", "{steps}-step run, steady (median)", "{:.3f} s"),
    ("step_us", "per step, steady", "{:.1f} us"),
    ("sample_20_s", "sample 20 names after compile (median)", "{:.4f} s"),
    ("eager_step_ms", "per step with jit disabled", "{:.1f} ms"),
    ("compiles_during_training", "compilations while training", "{:d}"),
]


def main(argv) -> int:
    p = Parser(prog="compare bench", description="Time pure/ and flax_port/ side by side.")
    p.add_argument("--data", default=None, help="names file (default: the census names of the `names` package)")
    p.add_argument("--steps", type=int, default=1000, help="steps per timed run (default 1000)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported (default 5)")
    p.add_argument("--eager-steps", type=int, default=5, help="steps timed with jit disabled (default 5)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.eager_steps < 1 or args.steps < 1:
        raise UserError("--steps, --repeats and --eager-steps must each be at least 1")
    if args.json:
        checkpoint.writable_target(args.json)
    docs = load_names(args.data)
    tok = Tokenizer.from_names(docs)
    cfg = Config(vocab_size=tok.vocab_size, num_steps=args.steps)
    batches = training_batches(docs, tok, cfg.block_size, cfg.num_steps, args.seed)

    import jax

    import flax_port
    import pure
    from compare import convert

    impls = [pure.impl(), flax_port.impl()]
    init_key, sample_key = jax.random.split(jax.random.PRNGKey(args.seed))
    pure_state = init_state(impls[0], cfg, key=init_key)
    states = [pure_state, convert.state_pure_to_flax(pure_state, cfg)]
    results = {}
    for impl, state, pkg in zip(impls, states, ["pure", "flax_port"]):
        print(f"timing {impl.name} ...", file=sys.stderr)
        row = bench_one(
            impl, state, cfg, batches, tok, repeats=args.repeats, eager_steps=args.eager_steps, key=sample_key
        )
        row["import_s"] = import_seconds(pkg, repeats=3)
        results[impl.name] = row

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"jax {jax.__version__}, {jax.devices()[0].device_kind}"
    )
    print(f"bench: {len(docs)} names, {cfg.num_steps} steps, {args.repeats} repeats; {machine}")
    print(f"{'':48} {'pure':>12} {'flax_port':>12} {'flax/pure':>10}")
    for key, label, fmt in ROWS:
        a, b = results["pure"][key], results["flax_port"][key]
        ratio = f"{b / a:.2f}" if a else "-"
        print(f"{label.format(steps=cfg.num_steps):48} {fmt.format(a):>12} {fmt.format(b):>12} {ratio:>10}")
    if args.json:
        payload = {"machine": machine, "steps": cfg.num_steps, "repeats": args.repeats, "results": results}
        checkpoint.atomic_write(args.json, lambda f: f.write(json.dumps(payload, indent=2).encode()))
        print(f"figures written to {args.json}")
    return 0
