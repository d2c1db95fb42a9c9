"""`python -m compare golden OUT.npz` and `python -m compare judge GOLDEN.npz CANDIDATE.npz`: the
reference's numbers in a file, for a port in another framework (PyTorch, NumPy, ...) that compare/
cannot import.

A golden file holds, under fixed names:
  golden                the marker: b"microgpt golden 1" (a file without it is never overwritten)
  config                the Config as JSON (the candidate must be built with it)
  inputs/<param>        the weights, in the checkpoint's flat names (common/checkpoint.py)
  tokens/inputs, tokens/targets, tokens/mask   (k, T): step i trains on row i; `where`'s entries use row 0
  tap/<t>, loss, tap_grad/<t>, grad/<param>, m/<param>, v/<param>, params/<param>
                        what `compare where` lines up, for row 0 (tap names: common/taps.py)
  steps/params/<param>  the parameters after k Adam steps, one row each
A candidate writes the same names (all but golden, config, inputs/ and tokens/) from the same inputs;
`judge` prints `where`'s table and its two lines (`first differs at:`, `first rounds at:`), exit 0 (bitwise or
float32 rounding) or 1.

Two kinds of rows can be beyond rounding against the file although the candidate is right, because
Adam amplifies a rounding difference of a gradient that nearly cancels (compare/where.py):
  - the one-step m/, v/, params/ rows are then judged on each side's own inputs (where.on_own_inputs:
    each side's step against pure/optim.py's in float64 from its own gradient rows and inputs/);
  - the steps/params/ rows carry that difference through the later steps, and the candidate writes
    no gradient after the first. When the one-step rows are at most rounding, a steps row beyond
    rounding is judged against pure's remaining k - 1 steps run from the candidate's own state
    after step 1 (its params/, m/, v/; `steps_on_own_state`): that removes what the first step
    carried, and leaves what steps 2 to k computed (the learning rate's decay, the bias correction
    past t = 1, the moments carried from step to step).
"""

import dataclasses
import json

import numpy as np

from common import checkpoint
from common.checkpoint import param_shapes
from common.cli import Parser, add_model_flags, make_config, plural, seed_value, setup_jax
from common.config import Config
from common.devices import check_memory
from common.errors import UserError
from compare import programs, where
from compare.tolerances import ON_OWN_INPUTS_ULPS
from compare.verdict import DIFFERENT, ROUNDING, ulps_of_scale

MARKER = b"microgpt golden 1"
GIVEN = ("golden", "config")  # and every inputs/ and tokens/ entry: what the candidate reads, not writes


def is_golden(path: str) -> bool:
    """A file this project's `golden` wrote (its marker inside)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return "golden" in f.files and f["golden"].tobytes() == MARKER
    except (OSError, ValueError, EOFError):
        return False


is_golden.kind = "a golden file it wrote carries the marker entry `golden`"


def judged(name: str) -> bool:
    return name not in GIVEN and not name.startswith(("inputs/", "tokens/"))


# ----------------------------------------------------------------------------- golden

NOT_WRITTEN = ("step", "forward", "loss_fn", "step_loss")  # where's own rows a golden file leaves out (write_golden)


def expected_entries(cfg: Config) -> list[str]:
    """The entries to match that `write_golden` writes for `cfg`, in where's order: every tap, the loss,
    every gradient, m, v and parameter after the first step, and the parameters after the last."""
    return [key for _, _, key in where.entry_order(cfg) if key not in NOT_WRITTEN] + \
        [f"steps/params/{p}" for p in param_shapes(cfg)]


def write_golden(path: str, cfg: Config, *, steps: int = 3, seed: int = 0, jit: bool = True) -> dict:
    """Run pure from the initialisation for `seed` (compare/programs.py: `start`) on `steps` names and write
    everything to `path`."""
    import jax

    import pure
    from common.data import Tokenizer, default_names, training_batches
    from common.runner import name_at

    ref = pure.impl()
    docs = default_names()
    tok = Tokenizer.from_names(docs)
    batches = training_batches(docs, tok, cfg.block_size, steps, seed)
    start = programs.start(cfg, seed)
    out = where.outputs(ref, start, name_at(batches, 0), cfg, jit=jit)
    for extra in NOT_WRITTEN:  # Adam's count, forward()'s, loss_fn()'s and train_step()'s own outputs, which
        del out[extra]  # `where` checks too, are not a golden file's entries
    stepped, _ = jax.jit(lambda s, b: ref.train_steps(s, b, cfg))(ref.state_from_flat(*start, cfg), batches)
    out |= {f"steps/params/{k}": np.asarray(v) for k, v in ref.state_to_flat(stepped)[0].items()}
    bad = [k for k in out if not np.isfinite(out[k]).all()]
    if bad:  # a learning rate of 1e30: NaN weights no candidate could match (seventeenth hostile pass)
        raise UserError(f"the reference's training diverged: {bad[0]} holds NaN or inf after {steps} step"
                        f"{'s' * (steps != 1)}; lower --lr (nothing written)")
    out |= {f"inputs/{k}": np.asarray(v) for k, v in start[0].items()}
    out |= {f"tokens/{f}": np.asarray(v) for f, v in zip(("inputs", "targets", "mask"), batches)}
    out |= {"golden": np.frombuffer(MARKER, np.uint8), "config": np.frombuffer(
        json.dumps({**cfg.__dict__}).encode(), np.uint8)}
    checkpoint.atomic_write(path, lambda f: np.savez(f, **out))
    return out


def main(argv) -> int:
    p = Parser(prog="compare golden", description="Write the reference's inputs and outputs to a .npz, for a port "
               "in another framework to be judged by `compare judge`.")
    p.add_argument("out", metavar="OUT.npz", help="the golden file to write")
    p.add_argument("--steps", type=int, default=3, help="Adam steps whose parameters are written (default 3)")
    p.add_argument("--seed", type=seed_value, default=0, help="initialisation and which names (default 0)")
    p.add_argument("--lr", type=float, default=0.01, help="peak learning rate (default 0.01)")
    p.add_argument("--schedule-steps", type=int, default=1000, help="the learning rate decays to 0 over this many "
                   "steps, as the trainers' --steps (default 1000)")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    add_model_flags(p)
    args = p.parse_args(argv)
    if not args.out.endswith(".npz"):
        raise UserError(f"{args.out}: a golden file is an .npz; give a path ending in .npz")
    if not 1 <= args.steps <= 1000:
        raise UserError(f"steps={args.steps}: write between 1 and 1000 steps")
    if not args.steps <= args.schedule_steps <= 1_000_000:
        raise UserError(f"schedule-steps={args.schedule_steps}: give from --steps ({args.steps}) to 1,000,000 (the "
                        "schedule covers the steps written)")
    checkpoint.check_outputs([("OUT", args.out, is_golden)])
    # a candidate judged only at lr 0.01 over 1000 steps passed with either hard-coded (tenth hostile pass):
    # the file's config says what it was made with, and a candidate reads it from there
    cfg = make_config(args, 27, steps=args.schedule_steps, lr=args.lr)
    # the floor of common/devices.py with five runs' worth of weights (15 copies): the file holds the
    # inputs, the parameters, gradients and both moments after a step and the parameters after all
    # steps, each held as JAX's array and as the NumPy copy written, beside the reference's own state.
    # A 400M-parameter golden file (n_embd 1024, 32 layers, block 1024) grew past 24 GB, about 15
    # copies, and the kernel killed it with no line (fifth hostile pass, 2026-12-07, 24 GiB machine)
    check_memory(dataclasses.replace(cfg, num_steps=args.steps), 1, runs=5, batches=False)
    setup_jax(args)
    out = write_golden(args.out, cfg, steps=args.steps, seed=args.seed)
    print(f"golden written to {args.out}: {sum(judged(k) for k in out)} entries to match, "
          f"{len(param_shapes(cfg))} weights and {plural(args.steps, 'name')} as inputs")
    return 0


# ----------------------------------------------------------------------------- judge

FORMAT = "docs/where.md, \"The golden file\""


def load(path: str, what: str) -> dict:
    """A golden file or a candidate, read through common/checkpoint.py's vetted reader (headers and
    sizes checked before anything is allocated), then held to the format: a golden file's config is
    JSON; a candidate's floats are float32 and finite."""
    import os

    if not os.path.exists(path):
        raise UserError(f"{what} {path} does not exist: give the path of an .npz (`compare golden` writes one)")
    fix = ("write it again with `python -m compare golden`" if what == "golden file"
           else f"write the candidate with np.savez, one float32 array per entry ({FORMAT})")
    entries = checkpoint.read_npz(path, what, fix)
    if what == "golden file" and "config" in entries:
        try:
            fields = json.loads(entries["config"].tobytes())
        except (ValueError, UnicodeDecodeError, RecursionError) as err:  # nested past the recursion limit too
            reason = "nested too deep" if isinstance(err, RecursionError) else err
            raise UserError(f"{what} {path}: its config is not JSON ({reason}): {fix}") from None
        try:
            cfg = Config(**fields)  # Config itself vets the values, one line each
        except TypeError:  # not an object, or keys a Config does not have
            raise UserError(f"{what} {path}: its config is not a model config: {fix}") from None
        except UserError as err:  # the file's value, not a flag of judge's
            raise UserError(f"{what} {path}: its config is bad ({err}): {fix}") from None
        from common.cli import MODEL_FIELDS

        lacking = [k for k in MODEL_FIELDS if k not in fields]  # a default would judge another model
        if lacking:
            raise UserError(f"{what} {path}: its config does not state {', '.join(lacking)}: {fix}")
        for name, shape in param_shapes(cfg).items():  # the weights the config describes, as it says
            held = entries.get(f"inputs/{name}")
            if held is None or held.shape != tuple(shape):
                found = "is missing" if held is None else f"is {held.shape}"
                raise UserError(f"{what} {path}: its config says {shape} for inputs/{name}, which {found}: the "
                                f"config and the arrays disagree; {fix}")
        for name, top in (("tokens/inputs", cfg.vocab_size), ("tokens/targets", cfg.vocab_size), ("tokens/mask", 2)):
            value = entries.get(name)  # a token out of range would be gathered as another row, and judged
            kinds = "iub" + ("f" if name == "tokens/mask" else "")  # the mask is 0.0 or 1.0
            if value is not None and (value.dtype.kind not in kinds or value.ndim != 2
                                      or value.shape[1] != cfg.block_size or value.size and not (
                                          (value == np.round(value)).all() and 0 <= value.min() < top
                                          and value.max() < top)):
                raise UserError(f"{what} {path}: {name!r} is not rows of {cfg.block_size} whole numbers from 0 "
                                f"to {top - 1}: {fix}")
        # the rows agree with each other, each name has a position to learn from, and the weights are numbers:
        # 1 row of inputs against 3 of targets, an all-zero mask, NaN in inputs/wte were judged as they were
        # (nineteenth hostile pass: "no step left: k = 1 ... steps 2 to 1")
        rows = {name: entries[name].shape[0] for name in ("tokens/inputs", "tokens/targets", "tokens/mask")
                if name in entries}
        if len(set(rows.values())) > 1 or 0 in rows.values():
            said = ", ".join(f"{n} {r}" for n, r in rows.items())
            raise UserError(f"{what} {path}: its token arrays hold {said} rows: one row per step, the same in each, "
                            f"at least one; {fix}")
        if "tokens/mask" in entries and not (np.asarray(entries["tokens/mask"]).sum(axis=1) > 0).all():
            raise UserError(f"{what} {path}: a row of 'tokens/mask' is all zeros (a name with no position to learn "
                            f"from: its loss divides by zero); {fix}")
        for name in param_shapes(cfg):
            held = entries[f"inputs/{name}"]
            if held.dtype.kind != "f" or not np.isfinite(held).all():
                raise UserError(f"{what} {path}: 'inputs/{name}' is not finite floats (the weights every step "
                                f"starts from); {fix}")
    if what == "candidate":
        for name, value in entries.items():
            # every entry judged is a float; what judge leaves alone (tokens, a marker) may be anything
            if value.dtype.kind in ("fiub" if judged(name) else "f") and value.dtype != np.float32:
                order = " little-endian" if value.dtype.kind == "f" and value.dtype.itemsize == 4 else ""
                raise UserError(f"{what} {path}: {name!r} is {value.dtype.str}: write{order} float32 (<f4), as the "
                                f"golden file holds ({FORMAT})")
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise UserError(f"{what} {path}: {name!r} holds NaN or inf: the candidate's computation overflowed "
                                "or divided by zero there; fix it before judging")
    return entries


def judge(golden: dict, candidate: dict, path: str = "the golden file") -> tuple[Config, where.Report]:
    """The same table as `where`, the golden file (at `path`) as `a` (its scales), the candidate as `b`."""
    if "golden" not in golden or golden["golden"].tobytes() != MARKER:
        held = golden["golden"].tobytes() if "golden" in golden else b""
        if held.startswith(MARKER.rsplit(b" ", 1)[0] + b" "):  # another version's ("microgpt golden 9")
            raise UserError(f"{path} is a golden file of another format ({held.decode('ascii', 'replace')!r}; this "
                            f"judge reads {MARKER.decode()!r}): write it again with this `python -m compare golden`")
        raise UserError(f"{path} has no golden marker: it is not a golden file; write one with "
                        "`python -m compare golden`")
    cfg = Config(**json.loads(golden["config"].tobytes()))  # load() has vetted it
    names = [k for k in golden if judged(k)]
    # the entries its config implies, every one: a golden file with some taken out judged the candidate on
    # the rest, and with every output taken out ended in a traceback (seventeenth hostile pass)
    absent = [k for k in expected_entries(cfg) if k not in golden]
    if absent:
        lacking = f"{len(absent)} entr{'y' if len(absent) == 1 else 'ies'} its config implies"
        raise UserError(f"{path} lacks {lacking}, first {absent[0]!r}: write it again with "
                        "`python -m compare golden`")
    missing = [k for k in names if k not in candidate]
    if missing:
        lacking = f"{len(missing)} entr{'y' if len(missing) == 1 else 'ies'}"
        raise UserError(f"the candidate lacks {lacking}, first {missing[0]!r}: write every name "
                        "of the golden file (docs/where.md, \"The golden file\")")
    wrong = [k for k in names if np.shape(candidate[k]) != np.shape(golden[k])]
    if wrong:
        k = wrong[0]
        raise UserError(f"{k!r} is {np.shape(candidate[k])} in the candidate, {np.shape(golden[k])} in the golden "
                        "file: the candidate was made for another shape; build it from this golden file's config")
    params = {p: golden[f"inputs/{p}"] for p in param_shapes(cfg)}
    start = (params, {"step": np.int32(0), "m": {p: np.zeros_like(w) for p, w in params.items()},
                      "v": {p: np.zeros_like(w) for p, w in params.items()}})
    steps = [f"steps/params/{p}" for p in params if f"steps/params/{p}" in names]  # in the order of the others
    steps += [k for k in names if k.startswith("steps/") and k not in steps]
    rows = where.rows_of(golden, candidate, cfg, extra=[("update", k, k) for k in steps], start=start)
    return cfg, where.summary(steps_on_own_state(rows, golden, candidate, cfg), golden, candidate, cfg, start)


def rerun_from_first_step(golden: dict, candidate: dict, cfg: Config) -> dict:
    """pure's steps 2 to k (tokens rows 1 to k - 1, jit) from the candidate's own state after step 1
    (its params/, m/, v/, step 1) -> the flat parameters after step k (numpy)."""
    import jax

    import pure
    from common.data import Batch

    names = list(param_shapes(cfg))
    params = {p: np.asarray(candidate[f"params/{p}"], np.float32) for p in names}
    rows = Batch(*(np.asarray(golden[f"tokens/{f}"])[1:] for f in ("inputs", "targets", "mask")))
    if not len(rows.inputs):
        return params
    ref = pure.impl()
    opt = {"step": np.int32(1), **{part: {p: np.asarray(candidate[f"{part}/{p}"], np.float32) for p in names}
                                   for part in ("m", "v")}}
    stepped, _ = jax.jit(lambda s, b: ref.train_steps(s, b, cfg))(ref.state_from_flat(params, opt, cfg), rows)
    return {p: np.asarray(w) for p, w in ref.state_to_flat(stepped)[0].items()}


def steps_on_own_state(rows: list, golden: dict, candidate: dict, cfg: Config) -> list:
    """When every one-step row is at most rounding, judge each steps/params/ row beyond rounding
    against `rerun_from_first_step` instead of the file: within ON_OWN_INPUTS_ULPS it is float32
    rounding (what the first step's amplified rounding carried forward), else different (steps 2 to k
    computed differently). Other rows are left as they are."""
    steps = [row for row in rows if row.tap.startswith("steps/")]
    if (not any(row.level == DIFFERENT for row in steps)
            or any(row.level == DIFFERENT for row in rows if not row.tap.startswith("steps/"))):
        return rows
    rerun = rerun_from_first_step(golden, candidate, cfg)
    k = len(golden["tokens/inputs"])
    later = f"pure's remaining {k - 1} step{'s' * (k != 2)}" if k > 1 else "pure's (no step left: k = 1)"
    span = f"step {k}" if k == 2 else f"steps 2 to {k}"
    # the one-step rows judged on their own inputs are where Adam amplified, named: "see the rows above" sent
    # the reader of steps/params/l0.wk (16.5 ulps) to l0.wk's rows, all within the bound, when the amplified
    # one was l0.wq's, which steps 2 to k carry into every weight (eighteenth hostile pass)
    amplified = [row.tap for row in rows if row.own and not row.tap.startswith("steps/")]
    carried = (f"what the first step carried forward, where Adam amplified a rounding difference of the gradient "
               f"({', '.join(amplified)}, above)" if amplified else
               f"the first step's rounding (within the bound in every row above) carried through {span}")
    out = []
    for row in rows:
        if not (row.tap.startswith("steps/") and row.level == DIFFERENT):
            out.append(row)
            continue
        p = row.tap.rsplit("/", 1)[1]
        ulps, at = ulps_of_scale(rerun[p], candidate[row.tap])
        against = (f"{row.ulps:.3g} ulps from the golden file's, {ulps:.3g} from {later} run from the candidate's "
                   "own state after step 1 (its params/, m/, v/)")
        if ulps <= ON_OWN_INPUTS_ULPS:
            note = f"{against}: {carried}; float32 rounding"
            out.append(dataclasses.replace(row, level=ROUNDING, own=note))
        else:
            note = (f"{against}, most at {where.element(p, row.shape, at)}, beyond {ON_OWN_INPUTS_ULPS:g}: {span} "
                    "computed another way (the learning rate's decay, the bias correction past t = 1, the moments "
                    "carried over), or Adam amplified rounding at a later step, which the file cannot show (it "
                    "holds no gradient after step 1): a different computation")
            out.append(dataclasses.replace(row, own=note))
    return out


def judge_main(argv) -> int:
    p = Parser(prog="compare judge", description="Judge a candidate's outputs against a golden file, entry by "
               "entry, in the order the computation runs.")
    p.add_argument("golden", metavar="GOLDEN.npz")
    p.add_argument("candidate", metavar="CANDIDATE.npz")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache (judge "
                   "compiles pure's steps 2 to k when it reruns them from the candidate's state)")
    args = p.parse_args(argv)
    setup_jax(args)
    cfg, report = judge(load(args.golden, "golden file"), load(args.candidate, "candidate"), args.golden)
    print("\n".join(report.lines(f"judge: {args.candidate} against {args.golden} ({cfg.n_layer} layer, "
                                 f"n_embd {cfg.n_embd}, block_size {cfg.block_size})")))
    return report.exit_code
