"""`python -m compare`: one initialisation converted into both, trained in lockstep, compared.

Each implementation runs its own compiled train step (as its trainer does), over the same names;
after every step the parameters of both are compared in pure's layout.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from common import checkpoint
from common.cli import prepare_run, setup_jax, train_parser
from common.runner import check_chunk, chunk_size, compiled, init_state, sample_names, stack_slice
from compare.tolerances import TRAJECTORY_ATOL


def trajectory_steps(impl, cfg):
    """k steps in one call, returning each step's loss and the parameters after it."""
    import jax

    def run(state, batches):
        def step(s, batch):
            s, loss = impl.train_step(s, batch, cfg)
            return s, (loss, impl.params_of(s))

        return jax.lax.scan(step, state, batches)

    return run


def step_differences(flat_p: dict, flat_f: dict) -> tuple[np.ndarray, list[str]]:
    """(k, n_params) largest |pure - flax| per step and parameter, and the parameter names."""
    names = sorted(flat_p)
    k = len(next(iter(flat_p.values())))
    diffs = [np.abs(np.asarray(flat_p[n]) - np.asarray(flat_f[n])).reshape(k, -1).max(axis=1) for n in names]
    return np.stack(diffs, axis=1), names


class Progress:
    """A one-line bar on stderr between table rows, drawn only on a terminal."""

    def __init__(self, total: int):
        self.total, self.on = total, sys.stderr.isatty()

    def show(self, done: int):
        if self.on:
            filled = int(30 * done / self.total)
            sys.stderr.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}")
            sys.stderr.flush()

    def clear(self):
        if self.on:
            sys.stderr.write("\r" + " " * 50 + "\r")


def save_plot(path: str, losses_p, losses_f, divergence) -> None:
    """Both loss curves and the divergence per step (log scale) in one PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(losses_p) + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(steps, losses_p, lw=0.8, label="pure")
    top.plot(steps, losses_f, lw=0.8, ls="--", label="flax_port")
    top.set_ylabel("loss (one name per step)")
    top.legend()
    differ = divergence != 0  # a log scale has no 0: the steps where both agree bitwise are marked apart
    if differ.any():
        bottom.semilogy(steps[differ], divergence[differ], ".", ms=2, color="C3", label="steps that differ")
    if TRAJECTORY_ATOL > 0:
        bottom.axhline(TRAJECTORY_ATOL, color="k", lw=0.6, ls=":", label=f"tolerance {TRAJECTORY_ATOL:g}")
    if not differ.all():
        same = int((~differ).sum())
        bottom.text(0.5, 0.5, f"{same} of {len(steps)} steps bitwise equal (difference 0)",
                    transform=bottom.transAxes, ha="center", va="center")
    if not differ.any():
        bottom.set_yticks([])
    bottom.set_ylabel("largest |pure - flax| over params")
    bottom.set_xlabel("step")
    if differ.any() or TRAJECTORY_ATOL > 0:
        bottom.legend()
    fig.tight_layout()
    try:
        checkpoint.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def main(argv) -> int:
    parser = train_parser("compare", "Train pure/ and flax_port/ side by side from one initialisation.", {
        "diff": "show pure's code beside flax_port's, concept by concept (see `compare diff --help`)",
        "bench": "time both, compile and steady state (see `compare bench --help`)",
    })
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of both loss curves and their divergence")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    docs, tok, cfg, batches = prepare_run(args)  # checks --save and --plot too
    setup_jax(args)
    import jax

    import flax_port
    import pure
    from compare import convert

    impls = pure.impl(), flax_port.impl()
    init_key, sample_key = jax.random.split(jax.random.PRNGKey(args.seed))
    pure_state = init_state(impls[0], cfg, key=init_key, jit=not args.no_jit)
    states = [pure_state, convert.state_pure_to_flax(pure_state, cfg)]
    n_params = sum(int(np.size(v)) for v in pure_state[0].values())
    print(f"compare: {len(docs)} names, vocab {cfg.vocab_size}, {n_params} parameters in each, seed {args.seed}; "
          "one initialisation converted into both")

    k = chunk_size(cfg.num_steps, min(10, args.log_every))
    first = stack_slice(batches, 0, k)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:  # XLA compiles outside the GIL: both at once on 2 cores
        runners = list(pool.map(
            lambda impl, s: compiled(trajectory_steps(impl, cfg), s, first, jit=not args.no_jit), impls, states
        ))
    compile_s = time.perf_counter() - t0

    print(f"{'step':<16} | {'pure loss':>9} | {'flax loss':>9} | largest |pure - flax| over params (which)")
    losses = [[], []]
    divergence, worst = [], (0.0, 0, "")
    first_over = None
    progress = Progress(cfg.num_steps)
    t0 = time.perf_counter()
    for start in range(0, cfg.num_steps, k):
        chunk = stack_slice(batches, start, start + k)
        outs = []
        for i, (impl, run) in enumerate(zip(impls, runners)):
            before = states[i]
            states[i], (loss, params) = run(before, chunk)
            loss = np.asarray(loss)
            check_chunk(impl, before, states[i], chunk, loss, start, cfg, jit=not args.no_jit)
            losses[i].append(loss)
            outs.append(impl.to_flat(params))
        diffs, names = step_differences(*outs)
        for j, row in enumerate(diffs):
            step = start + j + 1
            col = int(np.argmax(row))
            divergence.append(float(row[col]))
            if not np.isnan(worst[0]) and (np.isnan(row[col]) or row[col] > worst[0]):
                worst = (float(row[col]), step, names[col])
            if first_over is None and not row[col] <= TRAJECTORY_ATOL:  # NaN counts as over
                first_over = (step, names[col], float(row[col]))
            if step == 1 or step % args.log_every == 0 or step == cfg.num_steps:
                progress.clear()
                where = f"{row[col]:.2e} ({names[col]})" if row[col] else "0 (all bitwise equal)"
                print(f"step {step:4d} / {cfg.num_steps:4d} | "
                      f"{float(losses[0][-1][j]):9.4f} | {float(losses[1][-1][j]):9.4f} | {where}")
        progress.show(start + k)
    progress.clear()
    jax.block_until_ready(states)
    train_s = time.perf_counter() - t0

    params = [impl.params_of(s) for impl, s in zip(impls, states)]
    with ThreadPoolExecutor(2) as pool:
        sampled = list(pool.map(
            lambda impl, p: sample_names(impl, p, tok, cfg, key=sample_key, num_samples=args.num_samples,
                                         temperature=args.temperature, jit=not args.no_jit)[0],
            impls, params,
        ))
    width = max(len(n) for n in sampled[0] + ["pure"]) + 2
    print(f"{'':11}{'pure':<{width}}flax_port")
    for i, (a, b) in enumerate(zip(*sampled), 1):
        print(f"sample {i:2d}: {a:<{width}}{b}{'' if a == b else '   <- differs'}")
    same_names = sampled[0] == sampled[1]

    losses_p, losses_f = np.concatenate(losses[0]), np.concatenate(losses[1])
    if args.plot:
        save_plot(args.plot, losses_p, losses_f, np.asarray(divergence))
        print(f"plot written to {args.plot}")
    if args.save:
        checkpoint.save(args.save, {n: np.asarray(v) for n, v in params[0].items()}, cfg, tok.chars)
        print(f"saved {args.save} (pure's weights; flax_port's are within the tolerance of them)")

    mode = "eager (--no-jit)" if args.no_jit else "jit"
    print(f"compare [{mode}]: compile {compile_s:.2f} s for both train steps, "
          f"train {cfg.num_steps} steps of both {train_s:.3f} s, whole run {time.perf_counter() - t_start:.1f} s")
    agree = first_over is None and same_names
    verdict = "AGREE" if agree else "DISAGREE"
    if worst[0] == 0:
        detail = f"parameters bitwise equal at every one of {cfg.num_steps} steps (largest difference 0)"
    else:
        detail = (f"largest parameter difference {worst[0]:.2e} ({worst[2]} at step {worst[1]}), "
                  f"tolerance {TRAJECTORY_ATOL:g}")
    if first_over:
        detail += f"; first exceeded at step {first_over[0]} by {first_over[1]} ({first_over[2]:.2e})"
    detail += "; sampled names identical" if same_names else "; sampled names differ"
    print(f"verdict: {verdict}: {detail}")
    return 0 if agree else 1


