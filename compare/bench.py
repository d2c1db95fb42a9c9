"""`python -m compare bench`: where the time goes, pure/ and flax_port/ side by side.

Same data, same weights (one initialisation converted into each), the persistent compilation
cache off so that compile times are real. Prints one table, then the scaling table (B names a
step, B = 1, 8, 32, 128, and B = 32 on 1, 2 and 4 devices); `--json PATH` writes the figures.
"""

import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from common import checkpoint, outputs
from common.cli import Parser, check_jax_environment, plural, seed_value
from common.config import Config
from common.data import Tokenizer, data_file, load_names, training_batches
from common.errors import UserError
from common.runner import chunk_size, compile_steps, init_state, name_at, sample_names, stack_slice

IMPORT_SNIPPET = (  # the module a user named and its impl(): a twin's package, or a port of any shape
    "import time, importlib; t = time.perf_counter(); importlib.import_module({pkg!r}).impl(); "
    "print(time.perf_counter() - t)"
)


def child_pythonpath(root: str) -> str:
    """The project, then where this process finds a port given by module path: the current directory
    and the caller's PYTHONPATH (a fresh interpreter started in the project's root sees neither)."""
    return os.pathsep.join([root, os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def import_seconds(pkg: str, repeats: int) -> float:
    """Median wall time of importing one implementation in a fresh interpreter (jax included)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=child_pythonpath(root))
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET.format(pkg=pkg)], env=env, cwd=root,
                             capture_output=True, text=True)
        if out.returncode:
            last = (out.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"importing {pkg} and calling its impl() in a fresh interpreter failed ({last}): "
                            "the fresh interpreter starts at the project's root with PYTHONPATH and this directory")
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


class Timed:
    """One implementation, compiled and warmed up, with its timed runs; `main` rotates the
    repeats of every implementation in turn, so that a slow spell of the machine hits them alike."""

    def __init__(self, impl, state0, cfg: Config, batches, tok, *, key):
        import jax

        from common.compiles import count_compiles

        self.impl, self.state0, self.cfg, self.batches, self.tok, self.key = impl, state0, cfg, batches, tok, key
        self.row = {"compiles_during_training": 0}
        self.samples = {"run_s": [], "loop_s": [], "sample_20_s": []}
        self.k = chunk_size(cfg.num_steps, 100)
        with count_compiles() as compiles:
            t0 = time.perf_counter()
            self.steps = compile_steps(impl, state0, stack_slice(batches, 0, self.k), cfg, jit=True)
            self.row["compile_train_s"] = time.perf_counter() - t0
        self.row["compiles_during_training"] += len(compiles)
        # A first call pays one-off costs, more for the first executable of the process: whichever
        # implementation ran first looked 25 ms slower (measured both ways round). Not timed.
        self.whole_run()

        # The alternative to the scan: a Python loop around the jitted single step, reading each
        # loss back as a printing loop would. Timed so that the choice of lax.scan stays measured.
        one_step = jax.jit(impl.train_step, static_argnames="cfg")
        self.one_step = one_step.lower(state0, name_at(batches, 0), cfg=cfg).compile()
        self.loop_run()  # first-call warm-up

        params = impl.params_of(self.state)
        _, self.row["compile_sampler_s"], _ = sample_names(
            impl, params, tok, cfg, key=key, num_samples=20, temperature=0.5
        )

    def whole_run(self) -> float:
        """The trainers' loop: the compiled scan over chunks, losses read back after each."""
        import jax

        from common.compiles import count_compiles

        state = self.state0
        with count_compiles() as compiles:
            t = time.perf_counter()
            for start in range(0, self.cfg.num_steps, self.k):
                state, losses = self.steps(state, stack_slice(self.batches, start, start + self.k))
                np.asarray(losses)
            jax.block_until_ready(state)
            elapsed = time.perf_counter() - t
        self.row["compiles_during_training"] += len(compiles)
        self.state = state
        return elapsed

    def loop_run(self) -> float:
        import jax

        state = self.state0
        t = time.perf_counter()
        for i in range(self.cfg.num_steps):
            state, loss = self.one_step(state, name_at(self.batches, i))
            float(loss)
        jax.block_until_ready(state)
        return time.perf_counter() - t

    def repeat(self) -> None:
        """One timed repeat of each measurement."""
        self.samples["run_s"].append(self.whole_run())
        self.samples["loop_s"].append(self.loop_run())
        params = self.impl.params_of(self.state)
        self.samples["sample_20_s"].append(
            sample_names(self.impl, params, self.tok, self.cfg, key=self.key, num_samples=20, temperature=0.5)[2]
        )

    def eager_step_ms(self, eager_steps: int) -> float:
        import jax

        eager = compile_steps(self.impl, self.state0, stack_slice(self.batches, 0, 1), self.cfg, jit=False)
        eager(self.state0, stack_slice(self.batches, 0, 1))  # the first eager call compiles each primitive
        t0 = time.perf_counter()
        state = self.state0
        for i in range(1, 1 + eager_steps):
            j = i % self.cfg.num_steps  # the run's names again if it has fewer than eager_steps + 1
            state, _ = eager(state, stack_slice(self.batches, j, j + 1))
        jax.block_until_ready(state)
        return 1e3 * (time.perf_counter() - t0) / eager_steps

    def result(self) -> dict:
        row, n = dict(self.row), self.cfg.num_steps
        row["run_s"] = statistics.median(self.samples["run_s"])
        row["step_us"] = 1e6 * row["run_s"] / n
        row["loop_step_us"] = 1e6 * statistics.median(self.samples["loop_s"]) / n
        row["sample_20_s"] = statistics.median(self.samples["sample_20_s"])
        return row


ROWS = [
    ("import_s", "import (fresh interpreter, jax included)", "{:.2f} s"),
    ("compile_train_s", "compile the train step", "{:.2f} s"),
    ("compile_sampler_s", "compile the sampler", "{:.2f} s"),
    ("run_s", "{steps}-step run, steady (median)", "{:.3f} s"),
    ("step_us", "per step, steady (lax.scan, as the trainers run)", "{:.1f} us"),
    ("loop_step_us", "per step, Python loop around a jitted step", "{:.1f} us"),
    ("sample_20_s", "sample 20 names after compile (median)", "{:.4f} s"),
    ("eager_step_ms", "per step with jit disabled", "{:.1f} ms"),
    ("compiles_during_training", "compilations while training", "{:d}"),
]


# ----------------------------------------------------------------------------- scaling

SCALING_BATCHES = (1, 8, 32, 128)
SCALING_DEVICES = (1, 2, 4)
DEVICES_BATCH = 32
FORCED_DEVICES = "--xla_force_host_platform_device_count=4"


# How bench asks its child for the devices rows: the variable holds the parent's pid, and the child
# prints the rows as one line of JSON (ROWS_LINE) on its standard output, which the parent reads. It
# was a hidden flag, --devices-rows-json PATH, which any user could give (a checkpoint overwritten) and
# `compare bench --devices 4` reached by abbreviation (nineteenth hostile pass); then the variable
# held a path, and a user's shell is the parent of every command typed in it, so setting it there
# overwrote a file too (twentieth). The child now writes no file at all.
ROWS_CHILD = "MICROGPT_BENCH_DEVICES_ROWS"
ROWS_LINE = "microgpt devices rows: "


def rows_child() -> bool:
    """This is the child forced_devices_rows started (its parent's pid in ROWS_CHILD)."""
    return os.environ.get(ROWS_CHILD, "") == str(os.getppid())


def forced_devices_rows(args) -> list[dict]:
    """The devices rows measured in a fresh interpreter with 4 forced host devices (XLA reads the
    count when JAX starts). Not in this process: forcing host devices made the one-name step
    slower (measured 77 against 52-57 us), which would skew the other rows."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=child_pythonpath(root),
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + FORCED_DEVICES).strip())
    env[ROWS_CHILD] = str(os.getpid())
    from common import shell

    data = args.data if args.data in (None, "makemore") else os.path.abspath(args.data)  # the child runs elsewhere
    argv = ["--data", data] * (data is not None) + ["--seed", str(args.seed), "--repeats", str(args.repeats),
            "--scaling-steps", str(args.scaling_steps), *(["--impls", args.impls] if args.impls else [])]
    # a signal ends this process at once: its handler ends the child (shell.children)
    with subprocess.Popen([sys.executable, "-m", "compare", "bench", *argv], env=env, cwd=root,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        shell.children.add(child.pid)
        try:
            stdout, stderr = child.communicate()
        except BaseException:  # an exception here (no handler installed: a caller in-process)
            child.kill()
            raise
        finally:
            shell.children.discard(child.pid)
    rows = [line[len(ROWS_LINE):] for line in stdout.splitlines() if line.startswith(ROWS_LINE)]
    if child.returncode or not rows:
        last = (stderr.strip().splitlines() or [f"exit {child.returncode}, no rows"])[-1]
        raise UserError(f"the devices rows failed in a fresh interpreter ({last})")
    return json.loads(rows[-1])


def scaling_timer(impl, state, cfg: Config, batches, mesh):
    """A function timing one pass over `batches` (steps, B, T) or (steps, T) in compiled chunks,
    as the trainers run them, with the chunks already placed on `mesh`."""
    import jax

    from common.devices import place_batches, place_state

    k = chunk_size(cfg.num_steps, 100)
    state = place_state(state, mesh)
    chunks = [place_batches(stack_slice(batches, i, i + k), mesh) for i in range(0, cfg.num_steps, k)]
    steps = compile_steps(impl, state, chunks[0], cfg, jit=True)

    def run() -> float:
        s = state
        t = time.perf_counter()
        for chunk in chunks:
            s, losses = steps(s, chunk)
            np.asarray(losses)
        jax.block_until_ready(s)
        return time.perf_counter() - t

    run()  # the first call pays one-off costs
    return run


def scaling_rows(impls, states, docs, tok, cfg: Config, seed: int, repeats: int, layouts) -> list[dict]:
    """µs per step and per name for each (B, devices) of `layouts`, every implementation's repeats
    in turn, each going first in its share of them."""
    from common.devices import data_mesh

    rows = []
    for batch_size, n in layouts:
        batches = training_batches(docs, tok, cfg.block_size, cfg.num_steps, seed, batch_size)
        mesh = data_mesh(n)
        timers = [scaling_timer(impl, state, cfg, batches, mesh) for impl, state in zip(impls, states)]
        samples = [[] for _ in timers]
        for r in range(repeats):
            order = list(range(len(timers)))
            for i in order[r % len(order):] + order[:r % len(order)]:
                samples[i].append(timers[i]())
        row = {"batch_size": batch_size, "devices": n}
        for impl, times in zip(impls, samples):
            step_us = 1e6 * statistics.median(times) / cfg.num_steps
            spread = (max(times) - min(times)) / statistics.median(times)
            row[impl.name] = {"step_us": step_us, "name_us": step_us / batch_size, "spread": spread}
        rows.append(row)
    return rows


def short(name: str) -> str:
    return name.split("_")[0]  # pure, flax, nnx


def print_scaling(rows: list[dict], names: list[str]) -> None:
    print()
    print("scaling: us per step and per name (median; spread = (max - min) / median of the repeats)")
    head = "".join(f" {n + ' step':>15} {n + ' name':>15}" for n in names)
    ratios = "".join(f" {short(n) + '/' + short(names[0]):>10}" for n in names[1:])
    print(f"{'B':>5} {'devices':>8}{head}{ratios} {'spread':>7}")
    for row in rows:
        cells = "".join(f" {row[n]['step_us']:15.1f} {row[n]['name_us']:15.2f}" for n in names)
        cells += "".join(f" {row[n]['step_us'] / row[names[0]]['step_us']:10.2f}" for n in names[1:])
        spread = max(row[n]["spread"] for n in names)
        print(f"{row['batch_size']:>5} {row['devices']:>8}{cells} {spread:6.0%}")
    if any(row["devices"] > 1 for row in rows):
        print("devices > 1 on a CPU host: host devices forced by XLA_FLAGS (timed in a fresh interpreter, with its own "
              "B = 32 row on 1 device); they share this machine's cores: the cost of splitting, not a speed-up")


# The most a run may ask for: a timed run of 10^6 steps is about a minute per implementation and
# repeat here, 1,000 repeats of the default a quarter of an hour, 10^4 eager steps about twenty
# minutes; past these a mistyped number would run until killed.
MAX_STEPS, MAX_REPEATS, MAX_EAGER_STEPS = 1_000_000, 1000, 10_000


def main(argv) -> int:
    p = Parser(prog="compare bench", description="Time the implementations side by side.")
    p.add_argument("--data", default=None, help="names file (default: the census names of the `names` package)")
    p.add_argument("--steps", type=int, default=1000, help="steps per timed run (default 1000)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported (default 5)")
    p.add_argument("--eager-steps", type=int, default=5, help="steps timed with jit disabled (default 5)")
    p.add_argument("--seed", type=seed_value, default=42, help="init, data order and sampling (default 42)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--scaling-steps", type=int, default=200, help="steps per timed run of the scaling table "
                   "(default 200)")
    p.add_argument("--impls", default=None, help="comma-separated names or module paths to time (default: the "
                   "three present); e.g. pure,examples.equinox_port")
    args = p.parse_args(argv)
    for flag, value, most in (("--steps", args.steps, MAX_STEPS), ("--scaling-steps", args.scaling_steps, MAX_STEPS),
                              ("--repeats", args.repeats, MAX_REPEATS), ("--eager-steps", args.eager_steps,
                                                                         MAX_EAGER_STEPS)):
        if not 1 <= value <= most:
            raise UserError(f"{flag} {value}: give between 1 and {most:,}")
    checkpoint.check_outputs([("--json", args.json, outputs.is_json)], inputs=[data_file(args.data)])
    docs = load_names(args.data)
    tok = Tokenizer.from_names(docs)
    cfg = Config(vocab_size=tok.vocab_size, num_steps=args.steps)
    batches = training_batches(docs, tok, cfg.block_size, cfg.num_steps, args.seed)
    check_jax_environment()  # bench times with the cache off: setup_jax's checks, not its cache

    import jax

    from compare import convert
    from compare import impls as impls_mod

    names = impls_mod.parse(args.impls, minimum=1)
    # each shown by its short label (pure, flax, nnx, equinox: a module path's last part)
    impls = [dataclasses.replace(impls_mod.get(n), name=label) for n, label in zip(names, impls_mod.labels(names))]
    init_key, sample_key = jax.random.split(jax.random.PRNGKey(args.seed))
    pure_state = init_state(impls[0], cfg, key=init_key)
    states = [pure_state] + [convert.state(pure_state, impls[0], impl, cfg) for impl in impls[1:]]
    scaling_cfg = Config(vocab_size=tok.vocab_size, num_steps=args.scaling_steps)
    scaling_states = [pure_state] + [convert.state(pure_state, impls[0], impl, scaling_cfg)  # optax's schedule length
                                     for impl in impls[1:]]
    if rows_child():  # the child of forced_devices_rows: its rows on one line, to its parent's pipe
        rows = scaling_rows(impls, scaling_states, docs, tok, scaling_cfg, args.seed, args.repeats,
                            [(DEVICES_BATCH, n) for n in SCALING_DEVICES])
        print(ROWS_LINE + json.dumps(rows))
        return 0
    print(f"compiling and warming up {', '.join(names)} ...", file=sys.stderr)
    timed = [Timed(impl, state, cfg, batches, tok, key=sample_key) for impl, state in zip(impls, states)]
    print(f"timing them, {plural(args.repeats, 'repeat')}, the order rotating ...", file=sys.stderr)
    # What is alive now (three models, their compiled functions, NNX's module graph) lives to the end:
    # frozen, Python's garbage collector stops walking it at every collection the timed loops trigger.
    # Measured: with nnx_port loaded, every implementation's steady step went from 54-57 to 80 us
    # unfrozen (pure and flax_port alone: 56 us); frozen, all three 53-55 us.
    gc.freeze()
    for r in range(args.repeats):
        for t in timed[r % len(timed):] + timed[:r % len(timed)]:  # each goes first in turn
            t.repeat()
    gc.unfreeze()
    results = {}
    for t, pkg in zip(timed, names):
        results[t.impl.name] = t.result()
        results[t.impl.name]["eager_step_ms"] = t.eager_step_ms(args.eager_steps)
        results[t.impl.name]["import_s"] = import_seconds(pkg, repeats=3)

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"jax {jax.__version__}, {jax.devices()[0].device_kind}"
    )
    print(f"bench: {len(docs)} names, {plural(cfg.num_steps, 'step')}, {plural(args.repeats, 'repeat')}; {machine}")
    shown = [impl.name for impl in impls]
    ratios = [f"{short(n)}/{short(shown[0])}" for n in shown[1:]]
    print(f"{'':48}" + "".join(f" {n:>12}" for n in shown) + "".join(f" {r:>10}" for r in ratios))
    for key, label, fmt in ROWS:
        values = [results[n][key] for n in shown]
        cells = "".join(f" {fmt.format(v):>12}" for v in values)
        cells += "".join(f" {v / values[0]:10.2f}" if values[0] else f" {'-':>10}" for v in values[1:])
        print(f"{label.format(steps=cfg.num_steps):48}{cells}")
    print("timing the scaling table ...", file=sys.stderr)
    scaling = scaling_rows(impls, scaling_states, docs, tok, scaling_cfg, args.seed, args.repeats,
                           [(b, 1) for b in SCALING_BATCHES])
    if jax.device_count() >= max(SCALING_DEVICES):  # the devices are there already (a GPU host, or XLA_FLAGS)
        scaling += scaling_rows(impls, scaling_states, docs, tok, scaling_cfg, args.seed, args.repeats,
                                [(DEVICES_BATCH, n) for n in SCALING_DEVICES])
    else:
        scaling += forced_devices_rows(args)
    print_scaling(scaling, [impl.name for impl in impls])
    if args.json:
        payload = {"machine": machine, "steps": cfg.num_steps, "repeats": args.repeats, "results": results,
                   "scaling_steps": scaling_cfg.num_steps, "scaling": scaling}
        outputs.write_json(args.json, payload)
        print(f"figures written to {args.json}")
    return 0
