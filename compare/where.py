"""`python -m compare where --impls A,B`: the first operation where two implementations part, and why.

One initialisation (compare/programs.py: `start`, the one `compare check` draws, converted into each
through the checkpoint's flat layout) and one name (or a batch) go through both. What comes out is
lined up in the order the computation runs:
  forward   every tap (common/taps.py) of the forward pass, then the loss
  backward  the loss's gradient with respect to each tap, from the loss back to the embedding
  gradient  the loss's gradient with respect to each parameter, in the order the backward reaches them
  update    one Adam step from there: the moments m and v, the new parameters, the step count
Each row is judged as compare/verdict.py judges a tensor (ulps of its own scale; an integer exactly).
Two rows are named, always: the first beyond float32 rounding (`first differs at:`, what is wrong,
and the exit code follows it) and the first that is not bitwise equal (`first rounds at:`, with its
level): a port that rounds differently early and has a real mistake later gets both, each on its
line. Why each parts is compare/explain.py's: what was equal before it, the operation, its readers.

Beyond one step:
  --steps K   the first K steps of a run, each from the same state (the first implementation's after
              the step before, converted into the second), so that what each step adds is seen on
              its own: the table of the first step where they part, with the step named;
  --sample    the sampled names position by position: the tokens, then at the first position where
              a token differs the sampling taps (the forward's logits on the tokens so far, what the
              categorical draws from: Impl.tapped_sample);
  --case C    a row of `compare check` (its id, e.g. grads-default-b8-no_jit): its shape,
              batch, mode, devices and data, so that the row is reproduced and localized; `check`
              prints this command beside every row that is not bitwise.

The update rows are judged on more than the two values, because Adam amplifies: where a gradient
entry nearly cancels (√v̂ a few eps), the first step m̂/(√v̂ + eps) ≈ g/(|g| + eps) turns a fraction
of an ulp of the gradient's scale into hundreds of ulps of the weight's. So an update row beyond
rounding, when every earlier row is at most rounding and this parameter's gradients are not bitwise
equal, is judged on each side's own inputs (`on_own_inputs`): each side's m, v and new parameters
against pure/optim.py's step computed in float64 from that side's own gradient and the shared start.
A right Adam lands within 1 ulp of it (measured; the bound is ON_OWN_INPUTS_ULPS,
compare/tolerances.py), and the row is float32 rounding, named as Adam's amplification with its
entries; a wrong beta1, beta2, eps, learning rate or bias correction lands far off, and the row stays
different, with the change to Adam that reproduces it where one does (compare/explain.py).

`locate`, `walk` and `sample_report` take two `Impl`s (compare.impls.resolve turns a name or module
path into one); `compare check` calls them to localize a failure. `rows_of` and `report` are shared
with `compare judge` (compare/golden.py), which fills the same table from files.
"""

import dataclasses
import functools
import warnings

import numpy as np

from common.checkpoint import param_shapes
from common.cli import Parser, add_model_flags, check_sampling_flags, make_config, plural, seed_value, setup_jax
from common.config import Config
from common.devices import check_batch_flags, check_memory
from common.errors import UserError
from common.impl import Impl
from compare import explain
from compare.explain import ADAM
from compare.tolerances import ON_OWN_INPUTS_ULPS, OWN_STEP_BUDGETS, ROUNDING_ULPS, VARIANT_BUDGETS
from compare.verdict import BITWISE, DIFFERENT, ROUNDING, ulps_of_scale

PHASES = ("forward", "backward", "gradient", "update", "sampling")
LEVELS = (BITWISE, ROUNDING, DIFFERENT)


# ----------------------------------------------------------------------------- the table

@dataclasses.dataclass(frozen=True)
class Row:
    phase: str  # one of PHASES
    tap: str  # a tap name, "loss", a parameter's flat name, "m/<name>", "v/<name>", "params/<name>", "step"
    shape: tuple
    absolute: float  # largest |a - b|
    ulps: float  # that, in ulps of max |a| of the tensor (compare/verdict.py); for integers, inf when apart
    level: str
    own: str = ""  # set when the row was judged on each side's own inputs (`on_own_inputs`): what was found
    note: str = ""  # what makes the two not comparable: another shape or dtype

    def line(self) -> str:
        shape = "x".join(map(str, self.shape)) or "scalar"
        ulps = "-" if self.ulps == float("inf") and np.isfinite(self.absolute) else f"{self.ulps:.3g}"  # integers
        return f"{self.phase:<9} {self.tap:<22} {shape:<10} {self.absolute:>10.3g} {ulps:>10}  {self.level}"


@dataclasses.dataclass(frozen=True)
class Parting:
    """A row where two implementations part, and why."""

    tap: str
    phase: str
    why: str
    level: str = DIFFERENT
    ulps: float = 0.0
    at: str = ""  # when not the first step's table: "at step 2", "at position 3 of name 5"
    note: str = ""  # what makes the two not comparable (another shape or dtype), said in place of ulps

    def place(self) -> str:
        return f"{self.tap} ({self.phase}{', ' + self.at if self.at else ''})"


@dataclasses.dataclass
class Report:
    rows: list[Row]
    level: str  # the verdict's level over every row
    differs: Parting | None  # the first row beyond float32 rounding: what is wrong; None when there is none
    rounds: Parting | None  # the first row that is not bitwise equal, of whatever level; None when all are
    notes: list[str] = dataclasses.field(default_factory=list)  # said above the two lines (steps, samples)

    @property
    def exit_code(self) -> int:
        return 1 if self.level == DIFFERENT else 0

    @property
    def first(self) -> Parting | None:
        """The row to act on: the first different one, else the first that rounds."""
        return self.differs or self.rounds

    def summary(self) -> list[str]:
        """The two lines, always: where the two first differ (beyond float32 rounding: the exit code
        follows it) and where they first stop being bitwise equal, each with its level."""

        def line(label: str, found: Parting | None, none: str) -> str:
            if found is None:
                return f"{label}: none: {none}"
            ulps = "integers apart" if found.ulps == float("inf") else f"{found.ulps:.3g} ulps of its scale"
            ulps = found.note or ulps
            return f"{label}: {found.place()}: {found.level}, {ulps}"

        return [line("first differs at", self.differs, "no row beyond float32 rounding"),
                line("first rounds at", self.rounds, "every row bitwise equal")]

    def first_line(self) -> str:
        return self.summary()[0]

    def lines(self, title: str) -> list[str]:
        head = f"{'phase':<9} {'tap':<22} {'shape':<10} {'|a - b|':>10} {'ulps':>10}  level"
        out = [title, head] + [row.line() for row in self.rows]
        own = [row for row in self.rows if row.own]
        if own:  # every row excused as rounding, and the first that stayed different
            out.append("judged on each side's own inputs (beyond rounding against each other, with inputs that "
                       "differ by rounding):")
            shown = [row for row in own if row.level != DIFFERENT] + [row for row in own if row.level == DIFFERENT][:1]
            out += [f"  {row.tap} ({row.phase}): {row.own}" for row in own if row in shown]
            if len(own) > len(shown):
                out.append(f"  and {len(own) - len(shown)} more rows different on their own inputs too")
        parted = sum(row.level != BITWISE for row in self.rows)
        out.append(f"where: {self.level}; {parted} of {len(self.rows)} entries not bitwise equal")
        out += self.notes + self.summary()
        if self.first is not None:
            out.append(f"why: {self.first.why}")
        return out


def entry_order(cfg: Config) -> list[tuple[str, str, str]]:
    """(phase, row name, key in the flat outputs) in the order the computation runs."""
    from common.taps import tap_names

    taps, params = tap_names(cfg), list(param_shapes(cfg))
    order = [("forward", t, f"tap/{t}") for t in taps] + [("forward", "forward()", "forward")]
    order += [("forward", "loss", "loss"), ("forward", "loss_fn()", "loss_fn"),
              ("forward", "train_step()", "step_loss")]
    order += [("backward", t, f"tap_grad/{t}") for t in reversed(taps)]
    order += [("gradient", p, f"grad/{p}") for p in reversed(params)]
    order += [("update", f"{part}/{p}", f"{part}/{p}") for part in ("m", "v", "params") for p in params]
    return order + [("update", "step", "step")]


def level_of(ulps: float) -> str:
    return BITWISE if ulps == 0 else ROUNDING if ulps <= ROUNDING_ULPS else DIFFERENT


def row_of(phase: str, name: str, x, y) -> Row:
    """One entry of both sides as a row: floats in ulps of the first side's scale, integers exactly;
    another shape or dtype is a different row that says so."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.dtype != y.dtype:
        what = f"shape {y.shape}" if x.shape != y.shape else f"dtype {y.dtype}"
        given = x.shape if x.shape != y.shape else x.dtype
        return Row(phase, name, tuple(x.shape), float("inf"), float("inf"), DIFFERENT,
                   note=f"the second gives {what} where the first gives {given}")
    if np.issubdtype(x.dtype, np.integer) or np.issubdtype(y.dtype, np.integer):
        apart = float(np.max(np.abs(x.astype(np.int64) - y.astype(np.int64)))) if x.size else 0.0
        return Row(phase, name, tuple(x.shape), apart, float("inf") if apart else 0.0, DIFFERENT if apart else BITWISE)
    lost = int(np.sum(~np.isfinite(y) & np.isfinite(x)))  # NaN or inf on the second side only
    if lost:
        return Row(phase, name, tuple(x.shape), float("inf"), float("inf"), DIFFERENT,
                   note=f"the second gives {lost} values that are not finite (NaN or inf) where the first's are")
    ulps, _ = ulps_of_scale(x, y)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN slice: named below, not warned about
        absolute = float(np.nanmax(np.abs(x.astype(np.float64) - y))) if x.size and ulps else 0.0
    if ulps and np.isnan(absolute):
        absolute = float("inf")
    return Row(phase, name, tuple(x.shape), absolute, ulps, level_of(ulps))


def rows_of(a: dict, b: dict, cfg: Config, extra=(), start: tuple[dict, dict] | None = None) -> list[Row]:
    """Two sets of flat outputs ({key: array}, as `outputs` makes them) -> the table's rows;
    `extra` (phase, name, key) rows come last (the golden file's k steps). An entry one side lacks
    (a golden file's step count) is left out. With `start`, the state both stepped from (flat
    params, {"step", "m", "v"}), the update rows are judged on each side's own inputs where their
    gradients differ by rounding (`on_own_inputs`)."""
    rows = [row_of(phase, name, a[key], b[key]) for phase, name, key in [*entry_order(cfg), *extra]
            if key in a and key in b]  # (judge holds a candidate to the golden file's entries before this)
    return rows if start is None else on_own_inputs(rows, a, b, cfg, start)


# ----------------------------------------------------------------------------- the update on its own inputs

def adam_float64(start: tuple[dict, dict], grads: dict, cfg: Config) -> dict:
    """pure/optim.py's Adam step in float64 NumPy, from `start` (flat params, {"step", "m", "v"}) and
    one side's gradients {param: array} -> {"m/<p>", "v/<p>", "params/<p>"} (float64): the learning
    rate lr·(1 - step/num_steps) for the 0-based step, bias corrections 1 - beta**(step + 1)."""
    return explain.adam_step(start, grads, cfg)


def element(name: str, shape: tuple, flat_index: int) -> str:
    return f"{name}{list(int(i) for i in np.unravel_index(flat_index, shape))}" if shape else name


def amplified_entries(a: dict, b: dict, p: str, key: str, cfg: Config, start: tuple[dict, dict],
                      most: int = 3) -> str:
    """The entries of row `key` (params/<p>, m/<p> or v/<p>) more than ROUNDING_ULPS of its scale apart,
    with their √v̂ (from `a`'s v), against the median √v̂ of the parameter, and their gradients."""
    x, y = np.asarray(a[key], np.float64), np.asarray(b[key], np.float64)
    ulp = float(np.spacing(np.float32(np.max(np.abs(a[key]))))) or float(np.finfo(np.float32).smallest_subnormal)
    far = np.flatnonzero(np.abs(x - y).ravel() > ROUNDING_ULPS * ulp)
    far = far[np.argsort(-np.abs(x - y).ravel()[far], kind="stable")]
    step = int(np.asarray(start[1]["step"]))
    root = np.sqrt(np.asarray(a[f"v/{p}"], np.float64).ravel() / (1 - cfg.beta2 ** (step + 1)))
    median = float(np.median(root[root > 0])) if (root > 0).any() else 0.0  # unread rows of wte hold v = 0
    ga, gb = np.asarray(a[f"grad/{p}"], np.float64).ravel(), np.asarray(b[f"grad/{p}"], np.float64).ravel()
    gulp = float(np.spacing(np.float32(np.max(np.abs(a[f"grad/{p}"]))))) or 1.0
    said = []
    for i in far[:most]:
        apart = abs(ga[i] - gb[i]) / abs(ga[i]) if ga[i] else float("inf")
        said.append(f"{element(p, np.shape(x), int(i))} ({abs(x.ravel()[i] - y.ravel()[i]) / ulp:.3g} ulps; √v̂ "
                    f"{root[i]:.2g}, {root[i] / median if median else float('inf'):.2g} of {p}'s median, "
                    f"eps {cfg.adam_eps:g}; gradients {ga[i]:.3g} and {gb[i]:.3g}, {apart:.2%} apart, "
                    f"{abs(ga[i] - gb[i]) / gulp:.2g} ulps of grad/{p}'s scale)")
    more = f" and {len(far) - most} more" if len(far) > most else ""
    return ", ".join(said) + more


def on_own_inputs(rows: list[Row], a: dict, b: dict, cfg: Config, start: tuple[dict, dict]) -> list[Row]:
    """Judge the one-step update rows on each side's own inputs, when every forward, backward and
    gradient row is at most rounding:
      - a row beyond rounding whose parameter's gradients are not bitwise equal: each side's m, v and
        new params against `adam_float64` of its own gradients from `start`. Both within
        ON_OWN_INPUTS_ULPS: float32 rounding, the gradients' rounding amplified by Adam (the
        entries are named); else different, Adam itself.
      - a row within rounding, not bitwise: different where one side is more than OWN_STEP_BUDGETS
        from microgpt's Adam on its own inputs, entry by entry in what float32 rounding can move each
        (explain.rounding_budget), and a change to Adam (explain.closest_variant: a weight decay, a
        gradient scale, ...) gives that side's numbers within VARIANT_BUDGETS: a weight decay
        of 5e-5 moves each weight a few ulps a step, within rounding of the other side after one step
        and beyond it after ten (`check` said different, `where` rounding: the sixth session).
    Other rows are left as they are."""
    if any(row.level == DIFFERENT for row in rows if row.phase != "update"):
        return rows
    names = list(param_shapes(cfg))
    steps = {}  # side -> its float64 step, computed once when first needed
    variants = {}  # (side, param) -> explain.closest_variant's answer
    out = []
    for row in rows:
        part, _, p = row.tap.partition("/")
        if row.phase != "update" or part not in ("m", "v", "params") or p not in names or row.level == BITWISE:
            out.append(row)
        elif row.level == ROUNDING:
            out.append(named_variant(row, a, b, cfg, start, variants))
        elif np.array_equal(a[f"grad/{p}"], b[f"grad/{p}"]):
            out.append(row)
        else:
            out.append(amplified(row, a, b, cfg, start, steps))
    return out


def named_variant(row: Row, a: dict, b: dict, cfg: Config, start, variants: dict) -> Row:
    """A row within rounding of the other side, judged by how each side's Adam step came out on its own
    inputs (`on_own_inputs`, second case)."""
    part, _, p = row.tap.partition("/")
    for side, flat in (("a", a), ("b", b)):
        if (side, p) not in variants:
            variants[side, p] = explain.closest_variant(start, flat, cfg, p, VARIANT_BUDGETS, per_entry=True)
        variant = variants[side, p][1]
        grads = {p: flat[f"grad/{p}"]}  # this row's own entries: an m row that only rounds is not blamed for
        with np.errstate(all="ignore"):  # the weights' Adam (a wrong eps moves the params row, not m)
            itself = explain.in_budgets(start, grads, cfg, explain.adam_step(start, grads, cfg), flat, row.tap)
        if itself > OWN_STEP_BUDGETS and variant is not None:
            note = (f"{row.ulps:.3g} ulps apart, within rounding of each other after one step; but {side}'s "
                    f"{row.tap} is {itself:.3g} times what float32 rounding can move an entry from pure/optim.py's "
                    f"step in float64 from its own gradient (a right Adam stays within {OWN_STEP_BUDGETS:g}), and "
                    f"microgpt's Adam with {variant.says} gives its m, v and new {p} within {VARIANT_BUDGETS:g}: "
                    f"{ADAM[part]} computed another way, a difference that grows with every step: a different "
                    "computation")
            return dataclasses.replace(row, level=DIFFERENT, own=note)
    return row


def amplified(row: Row, a: dict, b: dict, cfg: Config, start, steps: dict) -> Row:
    """A row beyond rounding while its gradients round (`on_own_inputs`, first case)."""
    names = list(param_shapes(cfg))
    part, _, p = row.tap.partition("/")
    own = []
    for side, flat in (("a", a), ("b", b)):
        if side not in steps:
            steps[side] = adam_float64(start, {n: flat[f"grad/{n}"] for n in names}, cfg)
        own.append(ulps_of_scale(steps[side][row.tap], flat[row.tap])[0])
    against = (f"{row.ulps:.3g} ulps apart; each side against pure/optim.py's step in float64 from its own "
               f"gradient: a {own[0]:.3g}, b {own[1]:.3g} ulps")
    if max(own) <= ON_OWN_INPUTS_ULPS:
        note = (f"{against}: Adam amplified a rounding difference of the gradient where √v̂ is near 0: "
                f"entries {amplified_entries(a, b, p, row.tap, cfg, start)}; float32 rounding")
        return dataclasses.replace(row, level=ROUNDING, own=note)
    off = "b" if own[1] > ON_OWN_INPUTS_ULPS else "a"
    found = explain.reproduced_by(start, b if off == "b" else a, cfg, p)
    note = (f"{against}, {off}'s beyond {ON_OWN_INPUTS_ULPS:g}: {ADAM[part]} computed another way ({found}): "
            "a different computation")
    return dataclasses.replace(row, own=note)


def report(a: dict, b: dict, cfg: Config, extra=(), start: tuple[dict, dict] | None = None, at: str = "") -> Report:
    """The table (`rows_of`), its level and where it first parts. `start`: see `rows_of`."""
    return summary(rows_of(a, b, cfg, extra, start), a, b, cfg, start, at)


def summary(rows: list[Row], a: dict, b: dict, cfg: Config | None = None, start=None, at: str = "") -> Report:
    """Rows -> the Report: the level over every row, the first row beyond rounding and the first that
    is not bitwise equal, each with why (compare/explain.py)."""
    level = max((row.level for row in rows), key=LEVELS.index)
    cfg = cfg or Config()

    def parting(row):
        if row is None:
            return None
        return Parting(row.tap, row.phase, explain.why(row, a, b, rows, cfg, start), row.level, row.ulps, at,
                       row.note)

    differs = next((row for row in rows if row.level == DIFFERENT), None)
    rounds = next((row for row in rows if row.level != BITWISE), None)
    return Report(rows, level, parting(differs), parting(rounds))


# ----------------------------------------------------------------------------- one implementation's outputs

def one_batch(cfg: Config, *, batch_size: int = 1, seed: int = 0, data: str | None = None, steps: int = 1):
    """The first name (or `batch_size` names) a run with this seed trains on; with `steps`, the first
    `steps` of them stacked (steps, T) or (steps, B, T)."""
    from common.data import Tokenizer, load_names, training_batches
    from common.runner import name_at

    docs = load_names(data)
    tok = Tokenizer.from_names(docs)
    if tok.vocab_size != cfg.vocab_size:
        raise UserError(f"the names use {tok.vocab_size} tokens, the config says vocab_size={cfg.vocab_size}")
    from common.devices import check_batch_flags

    check_batch_flags(batch_size, 1, steps, cfg.block_size)  # the trainers' bounds: held in memory
    batches = training_batches(docs, tok, cfg.block_size, steps, seed, batch_size)
    return batches if steps > 1 else name_at(batches, 0)


@functools.cache
def tapped_step(impl: Impl, cfg: Config, jit: bool):
    """(state, batch, zeros) -> (loss, taps, tap gradients, gradients, stepped state): one function per
    implementation, config and mode, compiled once for its shapes (jit) or run op by op."""
    import jax

    from compare.equivalence import op_by_op

    def run(state, batch, zeros):
        params = impl.params_of(state)
        # params passed in, not closed over: NNX refuses a module from outside the transform
        (loss, taps), tap_grads = jax.value_and_grad(
            lambda z, p: impl.tapped_loss(p, batch, cfg, z), has_aux=True)(zeros, params)
        loss_fn = impl.loss_fn if batch.inputs.ndim == 1 else impl.batch_loss_fn
        own_loss, grads = jax.value_and_grad(loss_fn)(params, batch, cfg)
        stepped, step_loss = impl.train_step(state, batch, cfg)
        return loss, own_loss, step_loss, taps, tap_grads, grads, stepped

    return jax.jit(run) if jit else op_by_op(run)


@functools.cache
def forwarded(impl: Impl, cfg: Config, jit: bool):
    """(state, tokens (T,) or (B, T)) -> impl.forward's logits (under vmap for B names)."""
    import jax

    from compare.equivalence import op_by_op

    def run(state, tokens):
        params = impl.params_of(state)
        if tokens.ndim == 1:
            return impl.forward(params, tokens, cfg)
        return jax.vmap(lambda t: impl.forward(params, t, cfg))(tokens)

    return jax.jit(run) if jit else op_by_op(run)


def outputs(impl: Impl, start: tuple[dict, dict], batch, cfg: Config, *, jit: bool = True, place=None) -> dict:
    """Everything `where` lines up, from `impl`, in flat names: "tap/<t>", "loss", "tap_grad/<t>",
    "grad/<param>", "m/<param>", "v/<param>", "params/<param>", "step" (numpy arrays). `place` puts the
    state and batch on devices (a --case split over several)."""
    from common.taps import zero_perturbations

    if impl.tapped_loss is None:
        raise UserError(f"{impl.name} has no tapped_loss (common/impl.py): it cannot show its taps")
    with port_calls(impl, "state_from_flat"):
        state = impl.state_from_flat(*start, cfg)
    zeros = zero_perturbations(cfg, batch.inputs.shape)
    if place is not None:
        state, batch = place(state, batch)
    with port_calls(impl, "tapped_loss, loss_fn or train_step"):
        loss, own_loss, step_loss, taps, tap_grads, grads, stepped = tapped_step(impl, cfg, jit)(state, batch, zeros)
    with port_calls(impl, "forward"):  # the model's own function, beside the tapped pass's logits
        forward = forwarded(impl, cfg, jit)(state, batch.inputs)
    with port_calls(impl, "state_to_flat"):
        params, opt = impl.state_to_flat(stepped)
    flat = {"loss": loss, "loss_fn": own_loss, "step_loss": step_loss, "step": opt["step"], "forward": forward}
    flat |= {f"tap/{t}": v for t, v in taps.items()} | {f"tap_grad/{t}": v for t, v in tap_grads.items()}
    flat |= {f"grad/{p}": v for p, v in impl.to_flat(grads).items()}
    flat |= {f"m/{p}": v for p, v in opt["m"].items()} | {f"v/{p}": v for p, v in opt["v"].items()}
    flat |= {f"params/{p}": v for p, v in params.items()}
    return {k: np.asarray(v) for k, v in flat.items()}


def locate(a: Impl, b: Impl, cfg: Config, *, batch_size: int = 1, jit: bool = True, seed: int = 0,
           batch=None, start=None, place=None) -> Report:
    """Run `a` and `b` from one initialisation (`start`, default the one for `seed`) on one name (or
    `batch_size` names, or `batch`) and report where they first part."""
    from compare.programs import start as draw

    batch = batch if batch is not None else one_batch(cfg, batch_size=batch_size, seed=seed)
    start = start if start is not None else draw(cfg, seed)
    out_a, out_b = (outputs(impl, start, batch, cfg, jit=jit, place=place) for impl in (a, b))
    return report(out_a, out_b, cfg, start=start)


# ----------------------------------------------------------------------------- several steps

class port_calls:  # noqa: N801 (a context manager read as a phrase: `with port_calls(impl, "forward"):`)
    """Turns whatever a port's function raises into compare/programs.py's PortError, naming it: a port's
    exception is a line of the report, not a traceback."""

    def __init__(self, impl: Impl, function: str):
        self.impl, self.function = impl, function

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        from compare.programs import PortError

        if err is None or isinstance(err, (PortError, UserError, KeyboardInterrupt)) or kind is None:
            return False
        if not isinstance(err, Exception):
            return False
        raise PortError(self.impl, self.function, err) from err


def flat_state(out: dict, cfg: Config) -> tuple[dict, dict]:
    """The state after a step, from `outputs`: (flat params, {"step", "m", "v"})."""
    names = list(param_shapes(cfg))
    return ({p: out[f"params/{p}"] for p in names},
            {"step": out["step"], "m": {p: out[f"m/{p}"] for p in names}, "v": {p: out[f"v/{p}"] for p in names}})


def walk(a: Impl, b: Impl, cfg: Config, batches, *, jit: bool = True, start=None, seed: int = 0, place=None) -> Report:
    """Step by step over `batches` (k, T) or (k, B, T), each step from the same state: `a`'s after
    the step before, converted into each. The table is the first step's where the two differ beyond
    rounding (else the last step's); the two lines name the step of each."""
    from common.runner import name_at
    from compare.programs import start as draw

    state = start if start is not None else draw(cfg, seed)
    k = len(batches.inputs)
    rounds = last = None
    for i in range(k):
        out_a, out_b = (outputs(impl, state, name_at(batches, i), cfg, jit=jit, place=place) for impl in (a, b))
        last = report(out_a, out_b, cfg, start=state, at=f"step {i + 1} of {k}")
        rounds = rounds or last.rounds
        if last.differs is not None:
            break
        state = flat_state(out_a, cfg)
    note = (f"steps: {i + 1} of {k} walked, each from the same state (the first implementation's after the step "
            f"before); the table is of step {i + 1}")
    level = max((last.level, rounds.level if rounds else BITWISE), key=LEVELS.index)
    return Report(last.rows, level, last.differs, rounds, [note])


# ----------------------------------------------------------------------------- sampling

def sampled(impl: Impl, start, prompt, prompt_len, cfg: Config, *, key, num_samples: int, temperature,
            jit: bool = True) -> dict:
    """One implementation's sampled tokens, and its sampling taps where it has them (Impl.tapped_sample)."""
    import jax

    from compare.equivalence import op_by_op

    with port_calls(impl, "state_from_flat or params_of"):
        params = impl.params_of(impl.state_from_flat(*start, cfg))
    fn = impl.tapped_sample or impl.sample_tokens

    def run(params, prompt, prompt_len, key, temperature):
        return fn(params, prompt, prompt_len, cfg, key=key, num_samples=num_samples, temperature=temperature)

    with port_calls(impl, "tapped_sample" if impl.tapped_sample else "sample_tokens"):
        out = (jax.jit(run) if jit else op_by_op(run))(params, prompt, prompt_len, key, temperature)
    tokens, taps = out if impl.tapped_sample else (out, {})
    own = tokens
    if impl.tapped_sample:  # the sampler the trainers and `check` run, beside the tapped one: a sample_tokens
        # that dropped the prompt while tapped_sample kept it was bitwise equal here (fourteenth hostile pass)
        def plain(params, prompt, prompt_len, key, temperature):
            return impl.sample_tokens(params, prompt, prompt_len, cfg, key=key, num_samples=num_samples,
                                      temperature=temperature)

        with port_calls(impl, "sample_tokens"):
            own = (jax.jit(plain) if jit else op_by_op(plain))(params, prompt, prompt_len, key, temperature)
    return {"tokens": np.asarray(tokens), "own_tokens": np.asarray(own), **{k: np.asarray(v) for k, v in taps.items()}}


def sample_report(a: Impl, b: Impl, cfg: Config, *, prompt, prompt_len, key, num_samples: int = 8,
                  temperature: float = 0.5, jit: bool = True, start=None, seed: int = 0) -> Report:
    """The sampled names of both, position by position. Every position up to a name's first token
    that differs drew from the same tokens so far, so its sampling taps (the forward's logits, what
    the categorical draws from, where both have Impl.tapped_sample) are compared there: the table is
    of the earliest position where a tap is different, else where a token differs, else of every
    position; the first position where a tap only rounds is named in its own line. Only the first
    token-differing position was once compared, and a forward wrong everywhere was placed at
    position 10 with "every earlier sampling tap bitwise equal" (ninth hostile pass)."""
    from compare.programs import start as draw

    start = start if start is not None else draw(cfg, seed)
    temperature = np.float32(temperature)
    sa, sb = (sampled(impl, start, prompt, prompt_len, cfg, key=key, num_samples=num_samples,
                      temperature=temperature, jit=jit) for impl in (a, b))
    taps = [t for t in ("logits", "scaled") if t in sa and t in sb and sa[t].shape == sb[t].shape]
    tokens_a, tokens_b = sa["tokens"], sb["tokens"]
    same_shape = tokens_a.shape == tokens_b.shape
    apart = np.argwhere(tokens_a != tokens_b) if same_shape else np.zeros((0, 2), int)  # (name, position)
    first_token = min(apart.tolist(), key=lambda np_: (np_[1], np_[0])) if len(apart) else None
    # the taps' level at every comparable position, earliest position first, then name
    levels = {}
    if taps and same_shape:
        names, positions = tokens_a.shape
        last = np.full(names, positions - 1)
        for n, p in apart.tolist():
            last[n] = min(last[n], p)
        same = np.all([np.all((sa[t] == sb[t]) | (np.isnan(sa[t]) & np.isnan(sb[t])), axis=-1) for t in taps], axis=0)
        for p in range(positions):
            for n in range(names):
                if p <= last[n]:  # bit for bit (most positions) without a row's arithmetic
                    levels[(n, p)] = BITWISE if same[n, p] else max(
                        (row_of("sampling", t, sa[t][n, p], sb[t][n, p]).level for t in taps), key=LEVELS.index)
    ordered = sorted(levels, key=lambda np_: (np_[1], np_[0]))
    first_different = next((k for k in ordered if levels[k] == DIFFERENT), None)
    first_rounding = next((k for k in ordered if levels[k] != BITWISE), None)
    chosen = first_different or (tuple(first_token) if first_token is not None else None)

    def at_position(where):
        n, p = where
        pick = {t: (sa[t][n, p], sb[t][n, p]) for t in taps}
        pick["token"] = (tokens_a[n, p], tokens_b[n, p])
        return pick, f"position {p} of name {n}"

    shown = f"{plural(num_samples, 'name')} of {cfg.block_size} positions"
    if chosen is not None:
        pick, at = at_position(chosen)
        where_tokens = (f"the first token that differs is at position {first_token[1]} of name {first_token[0]}"
                        if first_token is not None else "every token the same")
        note = (f"sampled: {shown}; {where_tokens} ({'with' if taps else 'without'} sampling taps: "
                f"{'both have' if taps else 'one has no'} Impl.tapped_sample"
                + (", compared at every position up to each name's first token that differs" if taps else "") + ")")
    else:
        pick = {t: (sa[t], sb[t]) for t in taps} | {"token": (tokens_a, tokens_b)}
        at = ""
        note = f"sampled: {shown}; every token the same"
    if a.tapped_sample or b.tapped_sample:  # every name, from each side's own sampler
        pick["sample_tokens()"] = (sa["own_tokens"], sb["own_tokens"])
    rows = [row_of("sampling", t, x, y) for t, (x, y) in pick.items()]
    reasons = {"logits": "the forward's logits on the same tokens so far", "scaled": "the categorical's input (the "
               "logits over the temperature)", "token": "the token drawn with the same key",
               "sample_tokens()": "the names of the implementation's own sample_tokens (the sampler the trainers and "
                                  "`compare check` run, outside the tapped one)"}
    report_ = summary(rows, {r.tap: pick[r.tap][0] for r in rows}, {r.tap: pick[r.tap][1] for r in rows}, cfg)

    def named(p: Parting | None, where: str, first_rows, position: int | None) -> Parting | None:
        if p is None:
            return None
        earlier = explain.before(next(r for r in first_rows if r.tap == p.tap), first_rows)
        if p.tap == "sample_tokens()":
            own = [side for side, s in (("a", sa), ("b", sb)) if s["own_tokens"].shape != s["tokens"].shape
                   or not np.array_equal(s["own_tokens"], s["tokens"])]
            whose = f"{' and '.join(own)}'s sample_tokens" if own else "sample_tokens"
            return dataclasses.replace(p, at="", why=(
                f"the tapped samplers' tokens and taps were {earlier}, and {reasons[p.tap]} are not the same "
                f"({p.level}): {whose} itself, beside its tapped_sample, returns other names (an implementation's "
                "sample_tokens must draw what its tapped_sample draws, common/impl.py)"))
        if position is None:
            before = f"over every position, every earlier sampling tap was {earlier}"
        elif not taps:
            before = f"the tokens before {where} were the same (no sampling tap was compared: one side has none)"
        else:
            before = (f"the tokens before {where} were the same and every sampling tap before it bitwise equal"
                      if position else f"{where} is the first position") + f"; there, every earlier tap was {earlier}"
        why = f"{before}; {reasons[p.tap]} is not the same ({p.level})"
        if p.tap == "token" and taps and not first_rows[0].level == DIFFERENT:
            why += " (the distributions drawn from agree: the draw itself, a key split or the categorical)"
        return dataclasses.replace(p, why=why, at=where)

    position = chosen[1] if chosen is not None else None
    differs = named(report_.differs, at, rows, position)
    rounds = named(report_.rounds, at, rows, position)
    if first_rounding is not None and chosen is not None and (first_rounding[1], first_rounding[0]) < (
            chosen[1], chosen[0]):  # a position before the table's where a tap rounds only
        early, early_at = at_position(first_rounding)
        early_rows = [row_of("sampling", t, x, y) for t, (x, y) in early.items()]
        early_report = summary(early_rows, {t: v[0] for t, v in early.items()}, {t: v[1] for t, v in early.items()},
                               cfg)
        rounds = named(early_report.rounds, early_at, early_rows, first_rounding[1])
    return Report(rows, report_.level, differs, rounds, [note])


# ----------------------------------------------------------------------------- a row of compare check

def case_of(text: str):
    """A check's id (as `compare check` prints it: kind-shape[-bB][-Ndev]-mode) -> its Case."""
    from compare.equivalence import KINDS, MODES, SHAPES, Case, grid

    parts = text.split("-")
    if len(parts) < 3 or parts[0] not in KINDS or parts[1] not in SHAPES or parts[-1] not in MODES:
        raise UserError(f"--case {text!r}: give a check's id as `compare check` prints it, e.g. "
                        "grads-default-b8-no_jit (kind-shape[-bB][-Ndev]-mode)")
    batch, devices = 1, 1
    for extra in parts[2:-1]:
        if extra.startswith("b") and extra[1:].isdigit():
            batch = int(extra[1:])
        elif extra.endswith("dev") and extra[:-3].isdigit():
            devices = int(extra[:-3])
        else:
            raise UserError(f"--case {text!r}: {extra!r} is neither a batch (b8) nor a device count (4dev)")
    case = Case(parts[0], parts[1], parts[-1], batch, devices)
    if case in grid("full") and str(case) != text:  # e.g. b8-1dev: check writes the row b8
        raise UserError(f"--case {text!r}: check writes this row {case}; give that id")
    if case not in grid("full"):  # only what check runs: its grid fixes every other input of a row
        raise UserError(f"--case {text!r}: not a check of `compare check --full` (its ids are kind-shape[-b8]"
                        "[-4dev]-mode, for the kinds, shapes, batches and devices of compare/equivalence.py)")
    return case


def command_for(case, candidate: str, reference: str) -> str:
    """The `compare where` command that reproduces and localizes a row of `compare check`, to paste
    in the project's folder: with the PYTHONPATH a port outside it was imported from (the command
    said "no module of that name" without it)."""
    prefix = pythonpath_prefix(candidate, reference)
    prefix += f"XLA_FLAGS=--xla_force_host_platform_device_count={case.devices} " if case.devices > 1 else ""
    return f"{prefix}uv run python -m compare where --impls {reference},{candidate} --case {case}"


def pythonpath_prefix(candidate: str, reference: str) -> str:
    """`PYTHONPATH=FOLDERS ` for the ports imported from outside the project (nothing for its own)."""
    import os
    import shlex
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = []
    for name in (reference, candidate):
        module = sys.modules.get(name)
        where = os.path.abspath(getattr(module, "__file__", None) or "") if module else ""
        if not where or where.startswith(root + os.sep):
            continue
        base = os.path.dirname(where)  # the folder holding the top package: up one per dot, and the package's own
        for _ in range(name.count(".") + (os.path.basename(where) == "__init__.py")):
            base = os.path.dirname(base)
        if base not in paths:
            paths.append(base)
    return f"PYTHONPATH={shlex.quote(os.pathsep.join(paths))} " if paths else ""


def case_report(a: Impl, b: Impl, case) -> Report:
    """`where` on a row of `compare check`: the grid's initialisation, data, mode and devices."""
    from compare import programs
    from compare.equivalence import SAMPLES, Group

    group = Group(case.shape, case.mode, case.batch, case.devices)
    cfg, jit = group.config(), group.jit
    start = programs.start(cfg, 0, group.start_step)
    place = None
    if case.devices > 1:
        from common.devices import data_mesh, place_batches, place_state

        mesh = data_mesh(case.devices)

        def place(state, batch):
            stacked = type(batch)(*(np.asarray(c)[None] for c in batch))
            return place_state(state, mesh), type(batch)(*(c[0] for c in place_batches(stacked, mesh)))

    if case.kind == "samples":
        prompt, n, key = programs.data("samples", group)
        return sample_report(a, b, cfg, prompt=prompt, prompt_len=n, key=key, num_samples=SAMPLES, jit=jit,
                             start=start, temperature=group.temperature)
    if case.kind == "updates":
        report = walk(a, b, cfg, programs.data("updates", group), jit=jit, start=start, place=place)
    else:
        report = locate(a, b, cfg, jit=jit, batch=programs.data("grads", group), start=start, place=place)
    if case.kind in ("update", "updates") and report.level != DIFFERENT:
        return with_the_row(report, a, b, case)
    return report


def with_the_row(report: Report, a: Impl, b: Impl, case) -> Report:
    """The check's own row beside the walk: the walk runs each step from a shared state, with train_step,
    where the row runs the case's steps on, with train_steps. A schedule off by one in its denominator
    (1e-6 of lr a step) stays within rounding at every step of the walk and adds up to 25 ulps over the
    row's ten; a train_steps returning its losses shifted by one is not walked at all: both were
    "equal to float32 rounding" or "bitwise equal" here, on the very case check sent the user to
    (twentieth hostile pass). Such a row is the verdict, with why the walk could not see it."""
    from compare import check

    row = check.judge(b, case, a)
    if row.level != DIFFERENT:
        return report
    steps = case.kind == "updates"
    adds_up = "over its steps a small difference adds up (a learning-rate schedule, a decay), or " if steps else ""
    unwalked = ("train_steps, where the walk steps with train_step" if steps else  # one update: train_step in both
                "the row's judgement of the whole step, its loss and its drift along the weights, where the walk "
                "judges an entry at a time")
    why = (f"the check's row is different ({row.describe()}), while every step walked from a shared state is "
           f"within float32 rounding: {adds_up}it lies in what the row runs and the walk does not ({unwalked})")
    tap = "train_steps()" if case.kind == "updates" else "train_step()"
    worst = row.verdict.first_over or row.verdict.largest
    ulps = worst.ulps if worst is not None else 0.0
    return dataclasses.replace(report, level=DIFFERENT, differs=Parting(tap, "update", why, DIFFERENT, ulps,
                                                                         at=f"the check's {case}"))


# ----------------------------------------------------------------------------- the command

def main(argv) -> int:

    p = Parser(prog="compare where", description="Name the first operation where two implementations part: "
               "forward taps, their gradients, the parameter gradients, one Adam update; over several steps "
               "(--steps), through sampling (--sample), or for a row of `compare check` (--case).")
    p.add_argument("--impls", default="pure,flax_port", help="two implementations: names or module paths "
                   "(default pure,flax_port)")
    p.add_argument("--case", default=None, help="a row of `compare check`, by the id it prints (e.g. "
                   "update-n_embd24_3heads-no_jit): its shape, batch, mode, devices and names; the other "
                   "flags are then not taken")
    p.add_argument("--steps", type=int, default=1, help="walk this many steps, each from the same state, and "
                   "show the first where the two part (default 1)")
    p.add_argument("--sample", action="store_true", help="compare the sampled names position by position, with "
                   "the sampling taps")
    p.add_argument("--num-samples", type=int, default=8, help="names sampled with --sample (default 8)")
    p.add_argument("--temperature", type=float, default=0.5, help="the temperature of --sample (default 0.5)")
    p.add_argument("--batch-size", type=int, default=1, help="names in a step (default 1)")
    p.add_argument("--seed", type=seed_value, default=0, help="initialisation, names and sampling key (default 0)")
    p.add_argument("--data", default=None, help="names file (default: the census names of the `names` package)")
    p.add_argument("--no-jit", action="store_true", help="run op by op, under jax.disable_jit()")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    add_model_flags(p)
    args = p.parse_args(argv)

    options = [o for a in p._actions for o in a.option_strings if o.startswith("--")]

    def spelled(word: str) -> str:
        """The option a word of the command line is, abbreviations resolved as argparse resolves them."""
        name = word.split("=", 1)[0]
        if not name.startswith("--") or name in options:
            return name
        matches = [o for o in options if o.startswith(name)]
        return matches[0] if len(matches) == 1 else name

    def given(*dests: str, but: tuple = ()) -> list[str]:
        """The flags of `dests` (all but `but` where none) given on the command line, even at their default
        and abbreviated (`--temp 0.9` got past these refusals: review of the twelfth pass)."""
        words = {spelled(x) for x in argv}
        return [a.option_strings[0] for a in p._actions
                if a.option_strings and (a.dest in dests if dests else a.dest not in but)
                and any(o in words for o in a.option_strings)]

    if args.case is not None:  # a check's row fixes the rest: a flag given beside it would be ignored
        ignored = given(but=("case", "impls", "no_cache", "help"))
        if ignored:
            raise UserError(f"--case {args.case} takes its shape, batch, mode, devices and names from the check: "
                            f"drop {', '.join(ignored)}")
    if args.sample and given("steps", "batch_size"):  # they were ignored, the header said "4 names a step"
        raise UserError(f"--sample compares the names sampled from the initialisation, with no step: drop "
                        f"{', '.join(given('steps', 'batch_size'))}")
    sampling = given("num_samples", "temperature")
    if not args.sample and sampling:
        raise UserError(f"{' and '.join(sampling)} {'belongs' if len(sampling) == 1 else 'belong'} to --sample: add "
                        "--sample, or drop " + ("it" if len(sampling) == 1 else "them"))
    names = [n.strip() for n in args.impls.split(",") if n.strip()]
    if len(set(names)) != 2 or len(names) != 2:  # as compare, check and the lesson refuse one named twice
        raise UserError(f"--impls {args.impls!r}: name exactly two different implementations, e.g. pure,flax_port")
    if not 1 <= args.steps <= 1000:
        raise UserError(f"--steps {args.steps}: walk between 1 and 1000 steps")
    if not 1 <= args.num_samples <= 1000:  # where's own bound, before the trainers' (10,000) would say theirs
        raise UserError(f"--num-samples {args.num_samples}: sample between 1 and 1000 names")
    check_sampling_flags(args)  # the temperature
    from compare.programs import PortError

    try:
        title, a, b, result = run(args, names)
    except PortError as err:  # a port's exception is a line, not a traceback
        print(f"where: {DIFFERENT}: {err}")
        return 1
    if a is b:
        result.notes.insert(0, f"note: {names[0]} and {names[1]} are the same implementation: it is compared with "
                            "itself")
    print("\n".join(result.lines(title)))
    return result.exit_code



def run(args, names: list[str]):
    """The command's work: (title, a, b, Report)."""
    from common.data import Tokenizer, load_names
    from compare import impls as impls_mod

    if args.case is not None:
        case = case_of(args.case)
        setup_jax(args)
        a, b = (impls_mod.resolve(n) for n in names)
        title = f"where: {names[0]} vs {names[1]}, the check {case} (the grid's names and initialisation)"
        return title, a, b, case_report(a, b, case)
    docs = load_names(args.data)
    cfg = make_config(args, Tokenizer.from_names(docs).vocab_size)
    # the trainers' bounds, then their floor for two implementations side by side (a run past it
    # grew until the kernel or the user stopped it)
    check_batch_flags(args.batch_size, 1, args.steps, cfg.block_size)
    check_memory(dataclasses.replace(cfg, num_steps=args.steps), args.batch_size, runs=2)
    setup_jax(args)
    a, b = (impls_mod.resolve(n) for n in names)
    jit = not args.no_jit
    if args.sample:
        from common.runner import prompt_tokens
        from compare import programs

        prompt, n = prompt_tokens(Tokenizer.from_names(docs), "", cfg)
        result = sample_report(a, b, cfg, prompt=prompt, prompt_len=n, key=programs.sample_key(args.seed),
                               num_samples=args.num_samples, jit=jit, seed=args.seed, temperature=args.temperature)
    elif args.steps > 1:
        batches = one_batch(cfg, batch_size=args.batch_size, seed=args.seed, data=args.data, steps=args.steps)
        result = walk(a, b, cfg, batches, jit=jit, seed=args.seed)
    else:
        batch = one_batch(cfg, batch_size=args.batch_size, seed=args.seed, data=args.data)
        result = locate(a, b, cfg, jit=jit, seed=args.seed, batch=batch)
    mode = "op by op (--no-jit)" if args.no_jit else "jit"
    what = "sampling" if args.sample else f"{args.steps} steps" if args.steps > 1 else "one step"
    title = (f"where: {names[0]} vs {names[1]}, one initialisation (seed {args.seed}), "
             f"{args.batch_size} name{'s' if args.batch_size > 1 else ''} a step, {what}, {mode}")
    return title, a, b, result
