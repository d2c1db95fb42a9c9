"""`python -m compare check MODULE [--against pure] [--full] [--json PATH]`: the twins' equivalence grid on any port.

The grid is the one tests/ runs for pure, flax_port and nnx_port (compare/equivalence.py): logits,
loss and gradients, one update, ten updates and sampled names, with jit and without, at model
shapes around the default; loss, gradients and updates with batches of 8 names; and the same
split over 4 devices where the host has them. By default the quick grid (every kind at the default
shape and at one other, every shape, one name and eight; the tests' default tier), with --full the
whole product. Each check starts both implementations from one initialisation (drawn once per shape,
converted through the flat layout), feeds them the same names and compares the outputs in the flat
names, with the verdict's three levels (compare/verdict.py). The first check that comes out
"different" is localized by `compare where`. Exit 0 when no check is different, 1 otherwise, 2 for
bad input.

For a user's own pytest, the same grid, one test per check:

    import pytest
    from compare import check

    @pytest.mark.parametrize("case", check.cases(), ids=str)
    def test_my_port_matches_pure(case):
        check.assert_case("mypkg.port", case)

The programs and the reference's outputs are kept per process (compare/programs.py), so each is
compiled once however many tests or candidates use it.
"""

import dataclasses
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from common.errors import UserError
from common.impl import Impl
from compare import equivalence, impls, programs
from compare.equivalence import BATCH, DEVICES, Case
from compare.verdict import BITWISE, DIFFERENT, ROUNDING, Verdict

LEVELS = [BITWISE, ROUNDING, DIFFERENT]
FORCE_DEVICES = f"XLA_FLAGS=--xla_force_host_platform_device_count={DEVICES}"


# ----------------------------------------------------------------------------- the grid

def device_count() -> int:
    import jax

    return jax.device_count()


def cases(shapes=None, devices: bool | None = None, tier: str = "quick", modes=None) -> list[Case]:
    """The grid of a tier (compare/equivalence.py: QUICK by default, FULL with `tier="full"`) at
    `shapes` (default: all six) in `modes` (default: jit and no_jit); the 4-device checks when
    `devices` (default: when JAX sees at least 4)."""
    shapes = list(equivalence.SHAPES) if shapes is None else list(shapes)
    unknown = [s for s in shapes if s not in equivalence.SHAPES]
    if unknown or not shapes:
        raise UserError(f"--shapes {','.join(shapes)!r}: choose among {', '.join(equivalence.SHAPES)}")
    modes = list(equivalence.MODES) if modes is None else list(modes)
    if not modes or any(m not in equivalence.MODES for m in modes):
        raise UserError(f"--modes {','.join(modes)!r}: choose among {', '.join(equivalence.MODES)}")
    grid = equivalence.grid(tier, shapes, device_count() >= DEVICES if devices is None else devices)
    return [c for c in grid if c.mode in modes]


def runner(name: str | Impl, tier: str = "quick", only: frozenset | None = None) -> programs.Runner:
    """The Runner of an implementation (a name, a module path or an Impl) on a tier's grid; one per
    process, shared by every check that reads it (`only`: of some kinds, `--kinds`)."""
    return programs.runner(impls.resolve(name), tier, only)


@dataclasses.dataclass
class Result:
    case: Case
    verdict: Verdict
    expected: str  # what the twins reach on this check (compare/equivalence.py: expected_level)
    missing: list  # output names one side has and the other not
    error: str = ""  # what the candidate did instead of outputs of the right kind: raised, or gave another shape
    own: str = ""  # an update row beyond the bound judged on each side's own inputs (`on_own_inputs`): why
    own_level: str = ""  # and its level there, which is the row's

    @property
    def level(self) -> str:
        return DIFFERENT if self.missing or self.error else self.own_level or self.verdict.level

    def describe(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if self.missing:
            return f"outputs only one side has: {', '.join(self.missing[:4])}"
        v = self.verdict
        if v.level == BITWISE:
            return "0"
        worst = v.first_over or v.largest
        note = "" if LEVELS.index(self.level) <= LEVELS.index(self.expected) else f"; the twins: {self.expected}"
        own = f"; {self.own}" if self.own else ""
        return f"{worst.ulps:.3g} ulps of scale in {worst.name}{list(worst.element)}{own}{note}"


def judge(candidate: str | Impl, case: Case, reference: str | Impl = "pure", tier: str | None = None,
          only: frozenset | None = None) -> Result:
    """Run one check: the reference's outputs against the candidate's, as a verdict. `tier`: whose
    programs compute it (default: the smaller tier that holds the case); `only`: `--kinds`."""
    tier = tier or programs.tier_of(case)
    expected = equivalence.expected_level(case.kind, case.jit)
    a = runner(reference, tier, only).output(case)  # the reference raising is not a row: it is the reference
    try:
        b = runner(candidate, tier, only).output(case)
    except programs.PortError as err:
        return Result(case, Verdict(), expected, [], str(err))
    missing = sorted(set(a) ^ set(b))
    error = "" if missing else unreadable(a, b, runner(reference, tier, only).impl.name)
    verdict = Verdict()
    if not missing and not error:
        verdict.add(a, b)
    result = Result(case, verdict, expected, missing, error)
    if result.level == DIFFERENT and not (missing or error) and case.kind in ("update", "updates"):
        try:
            result.own_level, result.own = on_own_inputs(case, runner(reference, tier, only), runner(candidate, tier,
                                                                                                      only), a, b)
        except programs.PortError as err:  # the candidate's own function failing here: the row stays as judged
            result.own = f"not judged on its own inputs: {err}"
    return result


def on_own_inputs(case: Case, ref: programs.Runner, cand: programs.Runner, a: dict, b: dict) -> tuple[str, str]:
    """(level, why) of an update row beyond the bound: float32 rounding where Adam amplified the
    gradients' rounding, else different. A right port that rounds differently in its forward pass
    (RMSNorm as a division) was "different" in the 8-name update rows, 171 and 342 ulps, where a
    gradient nearly cancels and its first step is lr·g/(|g| + eps) (seventeenth hostile pass). The
    row is rounding when all of these hold:
      - the gradients of the first step's names, at the shared start, within rounding of each other;
      - each side's first step (its m, v, weights) within OWN_STEP_BUDGETS of microgpt's Adam in
        float64 on its own gradients, entry by entry (compare/explain.py: rounding_budget);
      - the ten (or two) updates: the reference's remaining steps run from the candidate's own state
        after its first step within ROUNDING_ULPS of the candidate's (the amplified entries then start
        equal: compare/golden.py does the same for a golden file's steps);
      - no drift along the weights: the candidate's weights against that run (one update: against the
        float64 step on its own gradients, less the reference's own rounding of that step) regressed on
        the weights, |t| at most BIAS_T: a weight decay's signature, which a budget a step cannot see
        (1e-5 is about 1.6 of them) and rounding does not have;
      - and before all of these, what Adam does not make: the first step's loss (from the shared start)
        and the step count within the bound against the reference's, and with ten updates the later
        losses against the reference's run from the candidate's own state. (A train_step returning
        twice the loss, or tests/planted.py's step_loss_summed, 1.4e7 and 6.4e8 ulps in loss[], was
        excused as amplified rounding: nineteenth hostile pass.)"""
    import numpy as np

    from common.checkpoint import param_shapes
    from compare import explain
    from compare.tolerances import BIAS_T, OWN_STEP_BUDGETS, ROUNDING_ULPS

    not_adam = Verdict()  # the loss of the first step and the step count: the same inputs on both sides
    not_adam.add({"loss": np.ravel(a["loss"])[:1], "step": a["step"]}, {"loss": np.ravel(b["loss"])[:1],
                                                                        "step": b["step"]})
    if not_adam.level == DIFFERENT:
        return DIFFERENT, (f"{not_adam.largest.describe()} from the shared start: the loss and the step count are "
                           "not Adam's to amplify")
    group, cfg = case.group, case.config()
    start = programs.start(cfg, 0, group.start_step)
    batch, rest = programs.data("update", group), None
    if case.kind == "updates":
        batches = programs.data("updates", group)
        batch, rest = type(batches)(*(c[0] for c in batches)), type(batches)(*(c[1:] for c in batches))
    stepped = {side: first_step(r, group, batch) for side, r in (("a", ref), ("b", cand))}
    grads = {side: g for side, (g, _) in stepped.items()}
    apart = Verdict()
    apart.add(grads["a"], grads["b"])
    if apart.level == DIFFERENT:
        return DIFFERENT, f"the gradients of the first step differ too ({apart.largest.ulps:.3g} ulps)"
    names = list(param_shapes(cfg))
    worst, first = (0.0, ""), {}
    for side, r in (("a", ref), ("b", cand)):
        first[side] = b if side == "b" and case.kind == "update" else stepped[side][1]
        for p in names:
            own = {p: np.asarray(grads[side][f"grads/{p}"])}
            with np.errstate(all="ignore"):
                made = explain.adam_step(start, own, cfg)
                for key in (f"m/{p}", f"v/{p}", f"params/{p}"):
                    off = explain.in_budgets(start, own, cfg, made, first[side], key)
                    worst = max(worst, (off, f"{ref.impl.name if side == 'a' else cand.impl.name}'s {key}"))
    if not worst[0] <= OWN_STEP_BUDGETS:
        return DIFFERENT, (f"{worst[1]} after the first step is {worst[0]:.3g} times what float32 rounding can move "
                           f"an entry from microgpt's Adam in float64 on its own gradients (a right Adam: within "
                           f"{OWN_STEP_BUDGETS:g})")
    if rest is None:  # one update: the candidate's weights against the float64 step on its own gradients, less
        # the reference's own float32 rounding of it (rounding an update of about lr to float32 is not
        # independent of the weight it is added to: t = -6.7 from float64 alone for the dividing port)
        made = {side: explain.adam_step(start, {p: np.asarray(grads[side][f"grads/{p}"]) for p in names}, cfg)
                for side in ("a", "b")}
        against = {p: made["b"][f"params/{p}"] + (np.asarray(first["a"][f"params/{p}"], np.float64)
                                                  - made["a"][f"params/{p}"]) for p in names}
        carried = ""
    else:
        import jax

        state = ref.impl.state_from_flat(*split_state(first["b"], names), cfg)  # the candidate's, as the reference's
        state = jax.tree.unflatten(jax.tree.structure(ref.state(group.shape)), jax.tree.leaves(state))
        fn = equivalence.bundle(("updates",), ref.impl, cfg, group.temperature)  # k - 1 steps: not the grid's program
        fn = jax.jit(fn) if group.jit else equivalence.op_by_op(fn)
        again = equivalence.flatten("updates", ref.impl, fn(*ref.inputs(group, state, kinds=("updates",),
                                                                          feed={"updates": rest}))["updates"])
        carried_on = Verdict()  # the weights, as a golden file's steps are judged (m and v round with the gradients:
        # 15 ulps of v's scale for the dividing port's second step, as in its own rows at one name)
        carried_on.add({f"params/{p}": again[f"params/{p}"] for p in names} | {"loss": again["loss"]},
                       {f"params/{p}": b[f"params/{p}"] for p in names} | {"loss": np.ravel(b["loss"])[1:]})
        if carried_on.level == DIFFERENT:
            return DIFFERENT, (f"{ref.impl.name}'s remaining {rest.inputs.shape[0]} steps run from the candidate's "
                               f"own state after its first are {carried_on.largest.ulps:.3g} ulps from its own in "
                               f"{carried_on.largest.name} (beyond {ROUNDING_ULPS:g})")
        against = {p: again[f"params/{p}"] for p in names}
        carried = (f", {ref.impl.name}'s remaining {rest.inputs.shape[0]} steps from the candidate's state after its "
                   f"first within {carried_on.largest.describe() if carried_on.largest else 0} of its own")
    t = drift_along_weights(b, against, first["b"], names)
    if not abs(t) <= BIAS_T:
        return DIFFERENT, (f"the candidate's weights drift along the weights themselves (t = {t:.3g}, rounding stays "
                           f"within {BIAS_T:g}): a weight decay, or a step scaled by the weights")
    return ROUNDING, (f"judged on each side's own inputs: the first step within {worst[0]:.2g} of microgpt's Adam "
                      f"in float64 on its own gradients{carried}, no drift along the weights (t = {t:.2g}): Adam "
                      "amplified the gradients' rounding where √v̂ is near 0; float32 rounding")


# The kinds the own-input judgement reads of a group, besides the update rows it judges: with --kinds
# update or updates, the group's program computes them too (check's `computed`), and the first step
# runs through that program with the first step's names (no program of its own; measured 2026-12-08:
# its test compiled 6 programs a port, 2 to 7 s each, where 2 now serve).
FIRST_STEP_KINDS = frozenset({"grads", "update"})


def computed_kinds(only: frozenset | None) -> frozenset | None:
    """The kinds the programs compute for `--kinds` `only`: FIRST_STEP_KINDS beside update rows."""
    return only | FIRST_STEP_KINDS if only is not None and only & {"update", "updates"} else only


def first_step(r: programs.Runner, group, batch) -> tuple[dict, dict]:
    """(gradients, update outputs) of one step from the group's start on `batch`: under jit through the
    group's compiled program, fed `batch`, where it computes both (it does for every group the commands
    build) and compiled whole; else the two kinds alone (op by op without jit)."""
    whole = group.jit and FIRST_STEP_KINDS <= set(r.kinds(group)) and not r.errors.get(group)  # (a kind of the
    # group that fails, a port's sampler that raises, left the group's program uncompiled: the two alone then)
    out = r.run(group, kinds=None if whole else tuple(sorted(FIRST_STEP_KINDS)),
                feed={kind: batch for kind in FIRST_STEP_KINDS})
    return out["grads"], out["update"]


def split_state(flat: dict, names: list[str]) -> tuple[dict, dict]:
    """An update kind's flat outputs -> (flat params, {"step", "m", "v"}), as state_from_flat takes them."""
    return ({p: flat[f"params/{p}"] for p in names},
            {"step": flat["step"], "m": {p: flat[f"m/{p}"] for p in names}, "v": {p: flat[f"v/{p}"] for p in names}})


def drift_along_weights(b: dict, against: dict, at: dict, names: list[str]) -> float:
    """The t statistic of the candidate's weights minus `against`'s, regressed on the weights after the
    first step (`at`), each in ulps of its tensor's scale: 0 give or take a few for rounding, far from it
    for a change proportional to the weights (a weight decay)."""
    import numpy as np

    d, w = [], []
    for p in names:
        scale = float(np.spacing(np.float32(np.max(np.abs(against[p]))))) or 1.0
        d.append((np.asarray(b[f"params/{p}"], np.float64) - np.asarray(against[p], np.float64)).ravel() / scale)
        w.append(np.asarray(at[f"params/{p}"], np.float64).ravel() / scale)
    d, w = np.concatenate(d), np.concatenate(w)
    if not (w @ w) or len(d) < 3:
        return 0.0
    slope = (d @ w) / (w @ w)
    residual = d - slope * w
    spread = np.sqrt((residual @ residual) / (len(d) - 1) / (w @ w))
    return float(slope / spread) if spread else (0.0 if not slope else float("inf"))


def unreadable(a: dict, b: dict, reference: str) -> str:
    """What makes the candidate's outputs not comparable with the reference's, entry by entry: another
    shape, another dtype (float64 where microgpt is float32: x64 turned on), values that are not finite
    where the reference's are; "" when there is none."""
    import numpy as np

    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape:
            return f"{key} has shape {y.shape} where {reference} gives {x.shape}"
        if x.dtype != y.dtype:
            return f"{key} is {y.dtype} where {reference} gives {x.dtype}"
        if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all() and np.isfinite(x).all():
            bad = int(np.size(y) - np.isfinite(y).sum())
            return f"{key} holds {bad} values that are not finite (NaN or inf) where {reference}'s are all finite"
    return ""


def assert_case(candidate: str | Impl, case: Case, reference: str | Impl = "pure") -> Result:
    """For a user's pytest: AssertionError (worded as the verdict) when the candidate's outputs are
    "different" from the reference's on this check; bitwise and float32 rounding pass. Both are
    named as a user has them: a name, a module path, or an Impl."""
    result = judge(candidate, case, reference)
    if result.level == DIFFERENT:
        label = candidate if isinstance(candidate, str) else candidate.name
        ref = reference if isinstance(reference, str) else reference.name
        raise AssertionError(f"{case}: {label} against {ref}: {DIFFERENT}: {result.describe()}")
    return result


# ----------------------------------------------------------------------------- localizing

def localize(candidate: Impl, case: Case, reference: Impl) -> list[str]:
    """`compare where --case` on a failing check: the same initialisation, names, mode and devices,
    and where the two first part (a step, a sampled position, a tap), and why."""
    from compare.where import case_report

    try:
        report = case_report(reference, candidate, case)
    except programs.PortError as err:
        return [f"where: {err}"]
    except UserError as err:  # what where cannot do for this port (no tapped_loss): the table stands
        return [f"where: cannot localize it: {err}"]
    lines = report.notes + report.summary()
    if report.first is not None:
        lines.append(f"why: {report.first.why}")
    if report.differs is None and case.kind == "samples":
        lines.append("note: where finds nothing beyond float32 rounding, and the row stays different: where draws "
                     "with the row's key, names and prompt, compares each side's sample_tokens and its tapped_sample "
                     "position by position; compare the row's names by hand, or run `python -m compare` on the pair")
    elif report.differs is None:  # the row stays different: where looks at other things, not at less
        lines.append("note: where finds nothing beyond float32 rounding, and the row stays different: the row "
                     "judges the two outputs against each other, where judges an update on each side's own "
                     "gradients (Adam amplifies their rounding where v is near 0), walks train_step (the ten-update "
                     "rows run train_steps) and lines up the loss of the tapped pass and of loss_fn; compare the "
                     "row's entry in both by hand, or run `python -m compare` on the pair")
    return lines


# ----------------------------------------------------------------------------- the command

def grid_line(grid: list[Case], tier: str, inits: list[str] | None = None, kinds: list[str] | None = None) -> str:
    inits = init_shapes(grid) if inits is None else inits
    shapes = sorted({c.shape for c in grid} | set(inits), key=list(equivalence.SHAPES).index)
    devices = device_count()
    if any(c.devices > 1 for c in grid):
        dev = f"split over {DEVICES} devices ({devices} seen)"
    else:
        dev = (f"{DEVICES}-device checks skipped: JAX sees {devices} device{'s' * (devices != 1)} (on a CPU host, "
               f"{FORCE_DEVICES} forces {DEVICES})")
    batches = f"batches of {BATCH} names; " if any(c.batch > 1 for c in grid) else ""
    which = ("the quick grid (every kind at the default shape and at one other, every shape; --full runs "
             "every kind at every shape)" if tier == "quick" else "the full grid")
    narrowed = [f"the {what} --{what} names" for what, fewer in (("shapes", len(shapes) < len(equivalence.SHAPES)),
                                                                 ("kinds", kinds is not None)) if fewer]
    if narrowed:  # --shapes: it said "every shape" of a run at one (twelfth pass)
        which = f"part of {which.split(' (')[0]}: {' and '.join(narrowed)}"
    modes = {c.mode for c in grid}
    how = "with jit and without" if len(modes) == 2 else "with jit only" if "jit" in modes else "without jit only"
    own = f"; the candidate's own init_state at {len(inits)} shape{'s' * (len(inits) != 1)}" if inits else ""
    own += ", under jit whatever --modes says" if inits and grid and "jit" not in modes else ""
    shown = [k for k in equivalence.KINDS if any(c.kind == k for c in grid)]
    n = checks_of(grid, inits)
    return (f"{n} check{'s' * (n != 1)}, {which}: {', '.join(shown) or 'no kind of the grid'} at {len(shapes)} "
            f"shape{'s' * (len(shapes) > 1)} ({', '.join(shapes)}), {how if grid else 'under jit'}; "
            f"{batches}{dev}{own}")


def init_shapes(grid: list[Case]) -> list[str]:
    """The shapes of INIT_SHAPES the grid runs: where the candidate's own init_state is checked."""
    return [s for s in INIT_SHAPES if s in {c.shape for c in grid}]


def checks_of(grid: list[Case], inits: list[str] | None = None) -> int:
    """The rows check prints for a grid: its cases and the init_state rows (not the processes')."""
    return len(grid) + len(init_shapes(grid) if inits is None else inits)


CHECK_KINDS = (*equivalence.KINDS, "init")  # what --kinds chooses among


def parse_kinds(text: str | None) -> list[str] | None:
    """--kinds: some of the grid's kinds and init, comma-separated; None for all."""
    if text is None:
        return None
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds or any(k not in CHECK_KINDS for k in kinds):
        raise UserError(f"--kinds {text!r}: choose among {', '.join(CHECK_KINDS)}, comma-separated")
    return kinds


def compile_threads() -> int:
    """Threads compiling the grid's programs ahead: one per core, at least two (measured on a 2-core
    machine, 2026-11-30: see docs/porting.md)."""
    return max(2, min(8, os.cpu_count() or 2))


def show(result: Result, candidate: str, reference: str) -> Result:
    """Print one row of the table as soon as its check is judged; under a row that is not bitwise, the
    `compare where` command that reproduces and localizes it."""
    from compare.where import command_for

    case = result.case
    where = f"{case.batch} names" if case.batch > 1 else "1 name"
    where += f", {case.devices} devices" if case.devices > 1 else ""
    label = f"{case.kind:<8} {case.shape:<16} {case.mode:<7} {where}"
    print(f"{label:<40} {result.level:<26} {result.describe()}")
    if result.level != BITWISE:
        print(f"{'':<4}localize: {command_for(case, candidate, reference)}")
    sys.stdout.flush()
    return result


# ----------------------------------------------------------------------------- over several processes

PROCESS_RUN = ("--steps", "10", "--log-every", "10", "--batch-size", "8", "--num-samples", "4")


@dataclasses.dataclass
class ProcessRow:
    """A row of `check --processes N`: a line of `python -m compare --processes N` run on the pair."""
    label: str
    level: str
    detail: str
    command: str  # what reproduces it


def process_rows(candidate: str, reference: str, processes: int) -> list[ProcessRow]:
    """`python -m compare --impls CANDIDATE,REFERENCE --processes N --devices N` (one device a process,
    8 names a step, one 10-step chunk), in a fresh interpreter of its own as a user would start it:
    the pair's verdict over N processes, and the candidate over N processes against one device."""
    import json
    import subprocess

    from common.outputs import scratch_folder
    from compare.bench import child_pythonpath

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with scratch_folder("microgpt-check-") as folder:
        out = os.path.join(folder, "verdict.json")
        argv = [sys.executable, "-m", "compare", "--impls", f"{candidate},{reference}", *PROCESS_RUN,
                "--devices", str(processes), "--processes", str(processes), "--json", out]
        try:
            done = subprocess.run(argv, env=dict(os.environ, PYTHONPATH=child_pythonpath(root)), cwd=os.getcwd(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
            payload = None
            if done.returncode in (0, 1) and os.path.exists(out):
                with open(out) as f:
                    payload = json.load(f)
        except subprocess.TimeoutExpired:
            done, payload = None, None
    where = f"{PROCESS_RUN[PROCESS_RUN.index('--batch-size') + 1]} names, {processes} processes"
    from compare.where import pythonpath_prefix

    again = pythonpath_prefix(candidate, reference) + " ".join(["uv run python -m compare", *argv[3:-2]])
    if payload is None:
        said = done.stderr.strip().splitlines() if done is not None else []
        why = "it ran past 600 s" if done is None else (said or [f"exit {done.returncode}"])[-1]
        if done is not None and done.returncode == 2 and out in why:  # check's own scratch file, not the port:
            # under `ulimit -f 1` a right port was "different" with a /tmp path (twentieth hostile pass)
            found = re.search(r"\(([^()]+)\)", why.split(out, 1)[1])  # "... verdict.json (File too large): ..."
            reason = found.group(1) if found else why
            raise UserError(f"the several-process rows' verdict could not be written in a scratch folder under "
                            f"{os.path.dirname(folder)} ({reason}): free space there, point TMPDIR at another "
                            "folder, or raise the file size limit")
        return [ProcessRow(f"{'updates':<8} {'default':<16} {'jit':<7} {where}", DIFFERENT,
                           f"error: python -m compare --processes {processes} failed: {why}", again)]
    pair = next(iter(payload["pairs"].values()))
    alone = payload["against_one_device"]
    return [ProcessRow(f"{'updates':<8} {'default':<16} {'jit':<7} {where}", pair["same_state_chunks"]["level"],
                       describe_level(pair["same_state_chunks"]), again),
            ProcessRow(f"{'updates':<8} {'default':<16} {'jit':<7} {where} vs 1 device",
                       alone["same_state_chunks"]["level"], describe_level(alone["same_state_chunks"]), again)]


INIT_SHAPES = ("default", "2layers", "n_embd24_3heads")  # the layer loop, and another width and head count


def init_rows(cand: Impl, candidate: str, reference: str, shapes) -> list[ProcessRow]:
    """The candidate's own init_state, which the grid never calls (every check starts both from one
    state drawn with NumPy, `python -m compare` from the first implementation's): Adam at step 0 with
    zero moments, bit for bit, and weights of the checkpoint's layout drawn N(0, init_std), each its own
    draw (`init_faults`). A port starting Adam at step 100 passed every row while its trainer
    diverged (fourteenth hostile pass)."""
    import jax
    import numpy as np

    from common.runner import init_state
    from compare.where import port_calls, pythonpath_prefix

    rows = []
    for shape in shapes:
        cfg = equivalence.Group(shape).config()
        label = f"{'init':<8} {shape:<16} {'jit':<7} own"
        again = pythonpath_prefix(candidate, reference) + (
            f"uv run python -m compare check {candidate}{'' if reference == 'pure' else f' --against {reference}'} "
            f"--kinds init --shapes {shape}")
        try:
            with port_calls(cand, "init_state"):  # jit's check of what it returns is outside the port's guard
                state = init_state(cand, cfg, key=jax.random.PRNGKey(0))
            faults = impls.fresh_state_faults(cand, state, cfg)
        except programs.PortError as err:
            rows.append(ProcessRow(label, DIFFERENT, f"error: {err}", again))
            continue
        if not faults:
            flat = {k: np.asarray(w, np.float64) for k, w in cand.state_to_flat(state)[0].items()}
            faults, (mean, std, kurtosis) = init_faults(flat, cfg.init_std)
        if faults:
            rows.append(ProcessRow(label, DIFFERENT, "; ".join(faults), again))
        else:
            rows.append(ProcessRow(label, BITWISE, f"Adam at step 0, zero moments, bit for bit; weights N(0, "
                                                   f"{cfg.init_std:g}) as far as sampling tells: mean {mean:.2g}, "
                                                   f"std {std:.3g}, kurtosis {kurtosis:.2f}", again))
    return rows


def init_faults(flat: dict, std_wanted: float) -> tuple[list[str], tuple[float, float, float]]:
    """What of a fresh initialisation's weights is not N(0, init_std) drawn afresh for each weight: all
    together, their mean, standard deviation and kurtosis (3 for a normal); each weight's standard
    deviation; and no two weights the same draw. Over microgpt's 4,192 weights (more at the other
    shapes) the sampling errors are, computed, 0.0012, 0.0009 and 0.076: the bounds are 5, 4 and 6.6 of
    them, and 5 of each weight's own for its std (the twins and the Equinox port at the three init
    shapes, measured 2026-12-08: at most 2.4 sampling errors in the mean, 1.7 in the std, 2.7 in a
    weight's std; 2026-12-07: means within 0.003, stds 0.0797 to 0.0814, kurtosis 2.93 to 3.05). A
    truncated normal (std 0.0702, kurtosis 2.33), std 0.0886, a uniform draw with the right std
    (kurtosis 1.77) and every weight drawn from one key passed the first bounds (fifteenth hostile
    pass); a std of 0.084 and wpe drawn 1.5x too wide the next (twentieth)."""
    import numpy as np

    every = np.concatenate([w.ravel() for w in flat.values()])
    mean, std = float(np.mean(every)), float(np.std(every))
    kurtosis = float(np.mean((every - mean) ** 4) / std**4) if std else 0.0
    faults = []
    # in sampling errors (a mean's sigma / sqrt(n), a std's sigma / sqrt(2n)): the std within 4 of them, where
    # 0.005 (5.7 at 4,192 weights) let a draw 5% too wide pass, and each weight's within 5 of its own, where
    # 0.5x to 2x let wpe drawn 1.5x too wide pass (twentieth hostile pass; z = 4.6 and 11 now)
    off = abs(std - std_wanted) / (std_wanted / np.sqrt(2 * every.size))
    if abs(mean) / (std_wanted / np.sqrt(every.size)) > 5 or off > 4 or abs(kurtosis - 3) > 0.5:
        faults.append(f"its weights have mean {mean:.3g}, std {std:.3g} ({off:.2g} sampling errors off) and kurtosis "
                      f"{kurtosis:.2f}, not those of N(0, {std_wanted:g}) (0, {std_wanted:g}, 3)")
    for name, w in flat.items():
        off = abs(float(np.std(w)) - std_wanted) / (std_wanted / np.sqrt(2 * w.size))
        if off > 5:
            faults.append(f"{name} has std {float(np.std(w)):.3g}, not {std_wanted:g} ({off:.2g} sampling errors off)")
            break
    names = list(flat)
    for i, a in enumerate(names):  # one key for two weights draws the same numbers first
        same = next((b for b in names[i + 1:] if np.array_equal(flat[a].ravel()[:16], flat[b].ravel()[:16])), None)
        if same is not None:
            faults.append(f"{a} and {same} begin with the same numbers: one key drew both (split it per weight)")
            break
    return faults, (mean, std, kurtosis)


def describe_level(verdict: dict) -> str:
    """A Verdict.as_dict() as the table's last column."""
    worst = verdict.get("first_over") or verdict.get("largest")
    if not worst:
        return "0"
    return f"{worst['ulps']:.3g} ulps of scale in {worst['name']}{list(worst['element'])}"


def run(candidate: str, reference: str = "pure", shapes=None, json_path: str | None = None,
        tier: str = "quick", modes=None, processes: int = 1, kinds: list[str] | None = None) -> int:
    """Print the table and the verdict; write `json_path`; return the exit code."""
    from compare.where import command_for

    if candidate == reference:
        raise UserError(f"check {candidate} --against {reference}: name another implementation to compare with")
    ref, cand = impls.resolve(reference), impls.resolve(candidate)  # one line naming what is missing, before any work
    t0 = time.perf_counter()
    grid = cases(shapes, tier=tier, modes=modes)
    # init_state runs under jit whatever --modes asks: its rows follow the shapes alone (with --modes no_jit
    # the 2layers row went, and the header said "under jit" unexplained: seventeenth hostile pass)
    asked = cases(shapes, tier=tier)
    inits = init_shapes(asked) if kinds is None or "init" in kinds else []
    only = None if kinds is None else frozenset(kinds) - {"init"}  # smaller programs: compare/programs.py
    if only is not None:
        grid = [c for c in grid if c.kind in only]
    no_batches = [one.name for one in (cand, ref) if one.batch_loss_fn is None]
    if no_batches:  # optional in the contract (common/impl.py): the checks of batches are left out, said so
        grid = [c for c in grid if c.batch == 1]
    if not grid and not inits:
        asked = [k for k in kinds or [] if k != "init"]  # it named init alone, where grads was asked (18th pass)
        grid_has = (f"the {tier} grid runs no {', '.join(asked)} check there" + (" (--full runs every kind at every "
                    "shape, with jit and without)" if tier == "quick" else "")) if asked else ""
        init_at = f"init runs at {', '.join(INIT_SHAPES)}, under jit" if "init" in (kinds or []) else ""
        raise UserError(f"--kinds {','.join(kinds or [])} at these shapes and modes leaves no check: "
                        f"{'; '.join(x for x in (grid_has, init_at) if x)}")
    print(f"compare check {candidate} against {reference}: {grid_line(grid, tier, inits, kinds)}")
    if no_batches:
        print(f"note: checks of batches skipped: {' and '.join(no_batches)} has no batch_loss_fn (optional, "
              "common/impl.py)")
    print(f"{'check':<40} {'verdict':<26} largest difference")
    computed = computed_kinds(only)  # the rows are `only`'s; the programs compute what judging them reads
    who = (programs.runner(ref, tier, computed), programs.runner(cand, tier, computed))
    pool = ThreadPoolExecutor(compile_threads())
    try:
        # the longest tasks first, so that none is left running alone at the end: a case without jit
        # runs op by op for seconds; a compile takes one or two
        for case in sorted(grid, key=lambda c: c.jit):
            for one in who:
                one.begin(case, pool)
        results = [show(judge(cand, case, ref, tier, computed), candidate, reference) for case in grid]
    finally:  # on Ctrl-C or an error, start no further compile; the ones running end first
        pool.shutdown(wait=True, cancel_futures=True)
    rows = init_rows(cand, candidate, reference, inits)
    rows += process_rows(candidate, reference, processes) if processes > 1 else []
    for row in rows:
        print(f"{row.label:<40} {row.level:<26} {row.detail}")
        if row.level != BITWISE:
            print(f"{'':<4}reproduce: {row.command}")
    counts = {lv: sum(r.level == lv for r in results + rows) for lv in LEVELS}
    level = max((r.level for r in results + rows), key=LEVELS.index)
    failed = [r for r in results if r.level == DIFFERENT]
    where_lines = []
    if failed:
        first = failed[0].case
        print(f"first failure: {first}; localizing it: {command_for(first, candidate, reference)}")
        where_lines = localize(cand, first, ref)
        for line in where_lines:
            print(line)
    summary = ", ".join(f"{n} {lv}" for lv, n in counts.items() if n)
    total = len(results) + len(rows)
    print(f"verdict: {level}: {summary} of {total} check{'s' * (total != 1)} ({time.perf_counter() - t0:.0f} s)")
    code = 1 if failed or any(r.level == DIFFERENT for r in rows) else 0
    if json_path:
        from common import outputs

        payload = {
            "candidate": candidate, "reference": reference, "level": level, "exit_code": code, "tier": tier,
            "shapes": sorted({c.shape for c in grid}, key=list(equivalence.SHAPES).index),
            "modes": sorted({c.mode for c in grid}, key=list(equivalence.MODES).index),
            "kinds": kinds or list(CHECK_KINDS),
            "devices_seen": device_count(),
            "checks": [{"case": str(r.case), **dataclasses.asdict(r.case), "level": r.level, "expected": r.expected,
                        "missing": r.missing, "error": r.error or None, "own_inputs": r.own or None,
                        # a row that never compared has no
                        "verdict": None if r.error or r.missing else r.verdict.as_dict()} for r in results],  # verdict
            "first_failure": {"case": str(failed[0].case), "where": where_lines} if failed else None,
            "init": [dataclasses.asdict(r) for r in rows if r.label.startswith("init")],
            "processes": [dataclasses.asdict(r) for r in rows if not r.label.startswith("init")],
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
    p.add_argument("--full", action="store_true", help="every kind at every shape, and without jit at three "
                   "(default: the quick grid, every kind and every shape at least once)")
    p.add_argument("--shapes", default=None, help=f"comma-separated, some of {', '.join(equivalence.SHAPES)} "
                   "(default all; batches and devices run with default)")
    p.add_argument("--modes", default=None, help="comma-separated, some of jit, no_jit (default both: no_jit "
                   "runs op by op and takes most of a warm run's time)")
    p.add_argument("--kinds", default=None, help=f"comma-separated, some of {', '.join(CHECK_KINDS)} (default "
                   "all; fewer kinds compile smaller programs: a quick first answer, not the proof)")
    p.add_argument("--json", metavar="PATH", help="also write every check's verdict as JSON")
    p.add_argument("--processes", type=int, default=1, help="also run both over this many local processes (python "
                   "-m compare --processes N, one device each): the pair, and the candidate against one device")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    args = p.parse_args(argv)
    from common.cli import setup_jax

    setup_jax(args)
    checkpoint.check_outputs([("--json", args.json, outputs.is_json)], inputs=[])
    tier = "full" if args.full else "quick"
    shapes = None if args.shapes is None else [s.strip() for s in args.shapes.split(",") if s.strip()]
    modes = None if args.modes is None else [m.strip() for m in args.modes.split(",") if m.strip()]
    cases(shapes, devices=False, tier=tier, modes=modes)  # refuses an unknown shape or mode before any work
    kinds = parse_kinds(args.kinds)
    if args.processes not in (1, 2, 4, 8):  # the run's 8 names a step split over them, one device each
        raise UserError(f"processes={args.processes}: use 2, 4 or 8 local processes (8 names a step split over "
                        "them), or 1 for none")
    return run(args.module, args.against, shapes, args.json, tier, modes, args.processes, kinds)
