"""`python -m compare check MODULE [--against pure] [--json PATH]`: the twins' equivalence grid, run on any port.

The grid is the one tests/ runs for pure, flax_port and nnx_port (compare/equivalence.py): logits,
loss and gradients, one update, ten updates and sampled names, at the six model shapes, with jit
and without; loss, gradients and updates with batches of 8 names; and the same split over 4
devices where the host has them. Each check starts both implementations from one initialisation
(the reference's, converted through the flat layout), feeds them the same names and compares the
outputs in the flat names, with the verdict's three levels (compare/verdict.py). The first check
that comes out "different" is localized by `compare where`. Exit 0 when no check is different, 1
otherwise, 2 for bad input.

For a user's own pytest, the same grid, one test per check:

    import pytest
    from compare import check

    @pytest.mark.parametrize("case", check.cases(), ids=str)
    def test_my_port_matches_pure(case):
        check.assert_case("mypkg.port", case)

Compiled functions and the reference's outputs are kept per process, so each is compiled once
however many tests or candidates use it.
"""

import dataclasses
import functools
import os
import string
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from common.config import Config
from common.errors import UserError
from compare import equivalence, impls
from compare.verdict import BITWISE, DIFFERENT, ROUNDING, Verdict

LEVELS = [BITWISE, ROUNDING, DIFFERENT]
ALPHABET = string.ascii_lowercase  # vocab 27: the census names' letters and BOS
WORD = "kaelyn"
LONG = ALPHABET  # longer than every block_size of the grid: truncated
UPDATE_WORDS = [WORD, "emma", "x", LONG, "olivia", "bo", "ava", "zoe", "kaelyn", "mia"]  # ten updates, one name each
BATCH_WORDS = ["emma", "a", LONG, "olivia", "bo", "kaelyn", "zoe", "ava", "mia", "x", "noah", "li"]
BATCH, DEVICES = 8, 4
FORCE_DEVICES = f"XLA_FLAGS=--xla_force_host_platform_device_count={DEVICES}"


# ----------------------------------------------------------------------------- the grid

@dataclasses.dataclass(frozen=True)
class Case:
    """One check: which output, at which model shape, with jit or without, how many names a step
    and over how many devices."""

    kind: str
    shape: str = "default"
    mode: str = "jit"
    batch: int = 1
    devices: int = 1

    def __str__(self) -> str:  # a pytest id: grads-default-b8-4dev-jit
        parts = [self.kind, self.shape] + [f"b{self.batch}"] * (self.batch > 1) + [f"{self.devices}dev"] * (
            self.devices > 1)
        return "-".join(parts + [self.mode])

    @property
    def jit(self) -> bool:
        return self.mode == "jit"

    def config(self) -> Config:
        return Config(vocab_size=len(ALPHABET) + 1, **equivalence.SHAPES[self.shape])


def device_count() -> int:
    import jax

    return jax.device_count()


def cases(shapes=None, devices: bool | None = None) -> list[Case]:
    """The grid: every kind at `shapes` (default: all six) under jit, without jit at three (see
    compare/equivalence.py); at the default shape, batches of 8 names, and 4 devices when
    `devices` (default: when JAX sees at least 4)."""
    shapes = list(equivalence.SHAPES) if shapes is None else list(shapes)
    unknown = [s for s in shapes if s not in equivalence.SHAPES]
    if unknown or not shapes:
        raise UserError(f"--shapes {','.join(shapes)!r}: choose among {', '.join(equivalence.SHAPES)}")
    grid = [Case(kind, shape, mode) for kind, shape, mode in equivalence.GRID if shape in shapes]
    if "default" in shapes:
        grid += [Case(kind, "default", mode, batch=BATCH) for kind in equivalence.BATCH_KINDS
                 for mode in equivalence.MODES]
        if device_count() >= DEVICES if devices is None else devices:
            grid += [Case(kind, "default", mode, batch=BATCH, devices=DEVICES)
                     for kind, mode in equivalence.DEVICES_GRID]
    return grid


# ----------------------------------------------------------------------------- running one implementation

class Runner:
    """One implementation on the grid, started from the reference's initialisation: its states,
    compiled functions and outputs, each made once."""

    def __init__(self, name: str, reference: str):
        self.impl, self.reference = impls.get(name), reference  # its name or module path, not Impl.name
        self.states, self.functions, self.outputs = {}, {}, {}
        self.started = {}  # Case -> a Future: its jit function compiled, or its no_jit outputs (`start`)

    def state(self, shape: str):
        if shape not in self.states:  # two threads may both convert: the first one kept is used by all
            made = self.impl.state_from_flat(*start(self.reference, shape), Case("logits", shape).config())
            self.states.setdefault(shape, made)
        return self.states[shape]

    def function(self, case: Case):
        key = (case.kind, case.shape, case.mode)
        if key not in self.functions:
            import jax

            fn = equivalence.raw(case.kind, self.impl, case.config())
            self.functions[key] = jax.jit(fn) if case.jit else fn
        return self.functions[key]

    def inputs(self, case: Case):
        """(x, data): params or a state, and the tokens, names or prompt of the check."""
        import jax

        from common.data import Batch, Tokenizer, encode_name, training_batches
        from common.runner import prompt_tokens

        tok, cfg, state = Tokenizer(ALPHABET), case.config(), self.state(case.shape)
        takes_state = case.kind in ("update", "updates")
        if case.batch > 1:
            batches = training_batches(BATCH_WORDS, tok, cfg.block_size, 2, 0, batch_size=case.batch)  # (2, B, T)
            if case.devices > 1:
                from common.devices import data_mesh, place_batches, place_state

                mesh = data_mesh(case.devices)
                state, batches = place_state(state, mesh), place_batches(batches, mesh)
            data = batches if case.kind == "updates" else Batch(*(col[0] for col in batches))
            return (state if takes_state else self.impl.params_of(state)), data
        if case.kind == "logits":
            return self.impl.params_of(state), encode_name(WORD, tok, cfg.block_size).inputs
        if case.kind in ("grads", "update"):
            return (state if takes_state else self.impl.params_of(state)), encode_name(WORD, tok, cfg.block_size)
        if case.kind == "updates":
            return state, training_batches(UPDATE_WORDS, tok, cfg.block_size, 10, 0)
        prompt, n = prompt_tokens(tok, "ka", cfg)
        return self.impl.params_of(state), (prompt, n, jax.random.PRNGKey(0))

    def start(self, case: Case, pool) -> None:
        """Begin a case in `pool`, ahead of `output`: a jit case's function compiled for its inputs,
        a case without jit run whole (op by op, each op compiled on its own). XLA compiles outside
        the GIL, so the grid's compiles, and the initialisations they need, run as many at once as
        the pool has threads."""
        if case not in self.started and case not in self.outputs:
            self.started[case] = pool.submit(self.compile if case.jit else self.output, case)

    def compile(self, case: Case):
        import jax

        x, data = self.inputs(case)
        return jax.jit(equivalence.raw(case.kind, self.impl, case.config())).lower(x, data).compile()

    def output(self, case: Case) -> dict:
        if case not in self.outputs:
            started = self.started.pop(case, None) if case.jit else None  # a no_jit case's future is this call
            if started is not None and not started.cancelled():
                fn = started.result()
            else:
                fn = self.function(case)
            x, data = self.inputs(case)
            self.outputs.setdefault(case, equivalence.flatten(case.kind, self.impl, fn(x, data)))
        return self.outputs[case]

    def result(self, case: Case) -> dict:
        """The case's outputs: begun in a pool (`start`), or computed now."""
        started = None if case.jit else self.started.pop(case, None)
        if started is not None and not started.cancelled():
            return started.result()
        return self.output(case)


STARTS: dict = {}  # (reference, shape) -> [a lock, its flat initialisation once made]
STARTS_LOCK = threading.Lock()


def start(reference: str, shape: str) -> tuple[dict, dict]:
    """The reference's initialisation at `shape` (key 0), in the flat layout: made once per process,
    by whichever thread needs it first (the others wait), and converted into every implementation,
    the reference's own state included."""
    with STARTS_LOCK:
        entry = STARTS.setdefault((reference, shape), [threading.Lock(), None])
    with entry[0]:
        if entry[1] is None:
            import jax

            ref = impls.get(reference)
            entry[1] = ref.state_to_flat(ref.init_state(Case("logits", shape).config(), key=jax.random.PRNGKey(0)))
    return entry[1]


@functools.cache
def runner(name: str, reference: str) -> Runner:
    """One Runner per (implementation, reference) and process: the reference's own is shared by every candidate."""
    return Runner(name, reference)


@dataclasses.dataclass
class Result:
    case: Case
    verdict: Verdict
    expected: str  # what the twins reach on this check (compare/equivalence.py: expected_level)
    missing: list  # output names one side has and the other not

    @property
    def level(self) -> str:
        return DIFFERENT if self.missing else self.verdict.level

    def describe(self) -> str:
        if self.missing:
            return f"outputs only one side has: {', '.join(self.missing[:4])}"
        v = self.verdict
        if v.level == BITWISE:
            return "0"
        worst = v.first_over or v.largest
        note = "" if LEVELS.index(v.level) <= LEVELS.index(self.expected) else f"; the twins: {self.expected}"
        return f"{worst.ulps:.3g} ulps of scale in {worst.name}{list(worst.element)}{note}"


def judge(candidate: str, case: Case, reference: str = "pure") -> Result:
    """Run one check: the reference's outputs against the candidate's, as a verdict."""
    a, b = runner(reference, reference).result(case), runner(candidate, reference).result(case)
    missing = sorted(set(a) ^ set(b))
    verdict = Verdict()
    if not missing:
        verdict.add(a, b)
    return Result(case, verdict, equivalence.expected_level(case.kind, case.jit), missing)


def assert_case(candidate: str, case: Case, reference: str = "pure") -> Result:
    """For a user's pytest: AssertionError (worded as the verdict) when the candidate's outputs are
    "different" from the reference's on this check; bitwise and float32 rounding pass."""
    result = judge(candidate, case, reference)
    if result.level == DIFFERENT:
        raise AssertionError(f"{case}: {candidate} against {reference}: {DIFFERENT}: {result.describe()}")
    return result


# ----------------------------------------------------------------------------- localizing

def localize(candidate: str, case: Case, reference: str) -> list[str]:
    """`compare where` on the first failing check: the operation where the two part, and why."""
    from compare.where import locate

    report = locate(impls.get(reference), impls.get(candidate), case.config(), batch_size=case.batch,
                    jit=case.jit, seed=0)
    lines = [report.first_line()]
    if report.first is not None and getattr(report.first, "why", None):
        lines.append(f"why: {report.first.why}")
    return lines


# ----------------------------------------------------------------------------- the command

def grid_line(grid: list[Case]) -> str:
    shapes = sorted({c.shape for c in grid}, key=list(equivalence.SHAPES).index)
    devices = device_count()
    if any(c.devices > 1 for c in grid):
        dev = f"split over {DEVICES} devices ({devices} seen)"
    else:
        dev = (f"{DEVICES}-device checks skipped: JAX sees {devices} device{'s' * (devices != 1)} (on a CPU host, "
               f"{FORCE_DEVICES} forces {DEVICES})")
    batches = f"batches of {BATCH} names; " if any(c.batch > 1 for c in grid) else ""
    return (f"{len(grid)} checks: {', '.join(equivalence.KINDS)} at {len(shapes)} shape{'s' * (len(shapes) > 1)} "
            f"({', '.join(shapes)}), with jit and without; {batches}{dev}")


def compile_threads() -> int:
    """Threads compiling the grid's jit functions ahead: one per core, at least two (measured on this
    2-core machine, 2026-11-30: see docs/porting.md)."""
    return max(2, min(8, os.cpu_count() or 2))


def show(result: Result) -> Result:
    """Print one row of the table as soon as its check is judged."""
    case = result.case
    where = f"{case.batch} names" if case.batch > 1 else "1 name"
    where += f", {case.devices} devices" if case.devices > 1 else ""
    label = f"{case.kind:<8} {case.shape:<16} {case.mode:<7} {where}"
    print(f"{label:<40} {result.level:<26} {result.describe()}")
    sys.stdout.flush()
    return result


def run(candidate: str, reference: str = "pure", shapes=None, json_path: str | None = None) -> int:
    """Print the table and the verdict; write `json_path`; return the exit code."""
    impls.get(reference), impls.get(candidate)  # one line naming what is missing, before any work
    if candidate == reference:
        raise UserError(f"check {candidate} --against {reference}: name another implementation to compare with")
    t0 = time.perf_counter()
    grid = cases(shapes)
    print(f"compare check {candidate} against {reference}: {grid_line(grid)}")
    print(f"{'check':<40} {'verdict':<26} largest difference")
    pool = ThreadPoolExecutor(compile_threads())
    try:
        # the longest tasks first, so that none is left running alone at the end: a case without jit
        # runs op by op for seconds; a compile takes one or two
        for case in sorted(grid, key=lambda c: c.jit):
            for who in (runner(reference, reference), runner(candidate, reference)):
                who.start(case, pool)
        results = [show(judge(candidate, case, reference)) for case in grid]
    finally:  # on Ctrl-C or an error, start no further compile; the ones running end first
        pool.shutdown(wait=True, cancel_futures=True)
    counts = {lv: sum(r.level == lv for r in results) for lv in LEVELS}
    level = max((r.level for r in results), key=LEVELS.index)
    failed = [r for r in results if r.level == DIFFERENT]
    where_lines = []
    if failed:
        first = failed[0].case
        print(f"first failure: {first}; localizing it with compare where ...")
        where_lines = localize(candidate, first, reference)
        for line in where_lines:
            print(line)
    summary = ", ".join(f"{n} {lv}" for lv, n in counts.items() if n)
    print(f"verdict: {level}: {summary} of {len(results)} checks ({time.perf_counter() - t0:.0f} s)")
    code = 1 if failed else 0
    if json_path:
        from common import outputs

        payload = {
            "candidate": candidate, "reference": reference, "level": level, "exit_code": code,
            "devices_seen": device_count(),
            "checks": [{"case": str(r.case), **dataclasses.asdict(r.case), "level": r.level, "expected": r.expected,
                        "missing": r.missing, "verdict": r.verdict.as_dict()} for r in results],
            "first_failure": {"case": str(failed[0].case), "where": where_lines} if failed else None,
        }
        outputs.write_json(json_path, payload)  # marked as this program's, written atomically
        print(f"verdict written to {json_path}")
    return code


def main(argv) -> int:
    from common import checkpoint, outputs
    from common.cli import Parser

    p = Parser(prog="compare check", description="Run the equivalence grid of the twins on any implementation "
               "against a reference; exit 0 when no check is different, 1 otherwise.")
    p.add_argument("module", help="pure, flax_port, nnx_port, or a module path whose impl() returns a "
                   "common.impl.Impl (e.g. examples.equinox_port)")
    p.add_argument("--against", default="pure", help="the reference: a name or module path (default pure)")
    p.add_argument("--shapes", default=None, help=f"comma-separated, some of {', '.join(equivalence.SHAPES)} "
                   "(default all; batches and devices run with default)")
    p.add_argument("--json", metavar="PATH", help="also write every check's verdict as JSON")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    args = p.parse_args(argv)
    from common.cli import setup_jax

    setup_jax(args)
    checkpoint.check_outputs([("--json", args.json, outputs.is_json)], inputs=[])
    shapes = None if args.shapes is None else [s.strip() for s in args.shapes.split(",") if s.strip()]
    if shapes is not None:
        cases(shapes, devices=False)  # refuses an unknown shape before any work
    return run(args.module, args.against, shapes, args.json)
