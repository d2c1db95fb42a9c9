"""`python -m compare where --impls A,B`: the first operation where two implementations part, and why.

One initialisation (compare/programs.py: `start`, the one `compare check` draws, converted into each
through the checkpoint's flat layout) and one name
(or a batch) go through both. What comes out is lined up in the order the computation runs:
  forward   every tap (common/taps.py) of the forward pass, then the loss
  backward  the loss's gradient with respect to each tap, from the loss back to the embedding
  gradient  the loss's gradient with respect to each parameter, in the order the backward reaches them
  update    one Adam step from there: the moments m and v, then the new parameters
Each row is judged as compare/verdict.py judges a tensor (ulps of its own scale). The first row that
is not bitwise equal is where the two part: every row before it was equal, so the inputs of the
operation that made it were equal and the operation itself made the difference. Within
ROUNDING_ULPS it is float32 rounding (the same arithmetic summed in another order); beyond, a
different computation.

The update rows are the exception, because Adam amplifies: where a gradient entry nearly cancels
(√v̂ a few eps), the first step m̂/(√v̂ + eps) ≈ g/(|g| + eps) turns a fraction of an ulp of the
gradient's scale into hundreds of ulps of the weight's. So an update row beyond rounding, when every
earlier row is at most rounding and this parameter's gradients are not bitwise equal, is judged on
each side's own inputs (`on_own_inputs`): each side's m, v and new parameters against pure/optim.py's
step computed in float64 from that side's own gradient and the shared start. A right Adam lands
within 1 ulp of it (measured; the bound is ON_OWN_INPUTS_ULPS, compare/tolerances.py), and the row
is float32 rounding, named as Adam's amplification with its entries; a wrong beta1, beta2, eps,
learning rate or bias correction lands far off, and the row stays different.

`locate` is the function behind the command; `compare check` calls it to localize a failure.
`rows_of` and `report` are shared with `compare judge` (compare/golden.py), which fills the same
table from files instead of from two implementations.
"""

import dataclasses

import numpy as np

from common.checkpoint import param_shapes
from common.cli import Parser, add_model_flags, make_config, seed_value, setup_jax
from common.config import Config
from common.errors import UserError
from common.impl import Impl
from compare.tolerances import ON_OWN_INPUTS_ULPS, ROUNDING_ULPS
from compare.verdict import BITWISE, DIFFERENT, ROUNDING, ulps_of_scale

PHASES = ("forward", "backward", "gradient", "update")
LEVELS = (BITWISE, ROUNDING, DIFFERENT)

# What computes each tap (its name within a layer), for the `why` of a forward parting.
OPERATIONS = {
    "embed": "wte[tokens] + wpe[positions]",
    "norm_in": "the RMSNorm of the embeddings",
    "norm_attn": "the RMSNorm before attention",
    "q": "x @ wq, split into heads",
    "k": "x @ wk, split into heads",
    "v": "x @ wv, split into heads",
    "attn_weights": "the softmax of the scaled, causally masked scores q·k",
    "attn_out": "the weighted values, joined, @ wo",
    "res_attn": "the residual sum after attention",
    "norm_mlp": "the RMSNorm before the MLP",
    "mlp_hidden": "relu(x @ fc1)",
    "mlp_out": "hidden @ fc2",
    "res_mlp": "the residual sum after the MLP",
    "logits": "x @ lm_head.T",
    "loss": "the mean negative log-likelihood of the logits",
}
ADAM = {
    "m": "Adam's first moment, b1·m + (1 − b1)·g (beta1)",
    "v": "Adam's second moment, b2·v + (1 − b2)·g² (beta2)",
    "params": "Adam's step, p − lr·m̂/(√v̂ + eps) (learning rate, bias correction, eps)",
}


# ----------------------------------------------------------------------------- the table

@dataclasses.dataclass(frozen=True)
class Row:
    phase: str  # one of PHASES
    tap: str  # a tap name, "loss", a parameter's flat name, or "m/<name>", "v/<name>", "params/<name>"
    shape: tuple
    absolute: float  # largest |a - b|
    ulps: float  # that, in ulps of max |a| of the tensor (compare/verdict.py)
    level: str
    own: str = ""  # set when the row was judged on each side's own inputs (`on_own_inputs`): what was found

    def line(self) -> str:
        shape = "x".join(map(str, self.shape)) or "scalar"
        return f"{self.phase:<9} {self.tap:<22} {shape:<10} {self.absolute:>10.3g} {self.ulps:>10.3g}  {self.level}"


@dataclasses.dataclass(frozen=True)
class Parting:
    tap: str
    phase: str
    why: str


@dataclasses.dataclass
class Report:
    rows: list[Row]
    level: str  # the verdict's level over every row
    first: Parting | None  # None when every row is bitwise equal

    @property
    def exit_code(self) -> int:
        return 1 if self.level == DIFFERENT else 0

    def first_line(self) -> str | None:
        return None if self.first is None else f"first parts at: {self.first.tap} ({self.first.phase})"

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
        if self.first is not None:
            out += [self.first_line(), f"why: {self.first.why}"]
        return out


def entry_order(cfg: Config) -> list[tuple[str, str, str]]:
    """(phase, row name, key in the flat outputs) in the order the computation runs."""
    from common.taps import tap_names

    taps, params = tap_names(cfg), list(param_shapes(cfg))
    order = [("forward", t, f"tap/{t}") for t in taps] + [("forward", "loss", "loss")]
    order += [("backward", t, f"tap_grad/{t}") for t in reversed(taps)]
    order += [("gradient", p, f"grad/{p}") for p in reversed(params)]
    order += [("update", f"{part}/{p}", f"{part}/{p}") for part in ("m", "v", "params") for p in params]
    return order


def level_of(ulps: float) -> str:
    return BITWISE if ulps == 0 else ROUNDING if ulps <= ROUNDING_ULPS else DIFFERENT


def rows_of(a: dict, b: dict, cfg: Config, extra=(), start: tuple[dict, dict] | None = None) -> list[Row]:
    """Two sets of flat outputs ({key: array}, as `outputs` makes them) -> the table's rows;
    `extra` (phase, name, key) rows come last (the golden file's k steps). With `start`, the state
    both stepped from (flat params, {"step", "m", "v"}), the update rows are judged on each side's
    own inputs where their gradients differ by rounding (`on_own_inputs`)."""
    rows = []
    for phase, name, key in [*entry_order(cfg), *extra]:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        ulps, _ = ulps_of_scale(x, y)
        absolute = float(np.nanmax(np.abs(x.astype(np.float64) - y))) if x.size and ulps else 0.0
        if ulps and np.isnan(absolute):
            absolute = float("inf")
        rows.append(Row(phase, name, tuple(x.shape), absolute, ulps, level_of(ulps)))
    return rows if start is None else on_own_inputs(rows, a, b, cfg, start)


# ----------------------------------------------------------------------------- the update on its own inputs

def adam_float64(start: tuple[dict, dict], grads: dict, cfg: Config) -> dict:
    """pure/optim.py's Adam step in float64 NumPy, from `start` (flat params, {"step", "m", "v"}) and
    one side's gradients {param: array} -> {"m/<p>", "v/<p>", "params/<p>"} (float64): the learning
    rate lr·(1 - step/num_steps) for the 0-based step, bias corrections 1 - beta**(step + 1)."""
    params, opt = start
    b1, b2, eps = cfg.beta1, cfg.beta2, cfg.adam_eps
    step = int(np.asarray(opt["step"]))
    lr = cfg.learning_rate * (1 - step / cfg.num_steps)
    c1, c2 = 1 - b1 ** (step + 1), 1 - b2 ** (step + 1)
    out = {}
    for p, g in grads.items():
        g = np.asarray(g, np.float64)
        m = (1 - b1) * g + b1 * np.asarray(opt["m"][p], np.float64)
        v = (1 - b2) * g * g + b2 * np.asarray(opt["v"][p], np.float64)
        out[f"m/{p}"], out[f"v/{p}"] = m, v
        out[f"params/{p}"] = np.asarray(params[p], np.float64) - lr * (m / c1) / (np.sqrt(v / c2) + eps)
    return out


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
    """Judge the one-step update rows that are beyond rounding against each other on each side's own
    inputs, when every forward, backward and gradient row is at most rounding and that parameter's
    gradients are not bitwise equal: each side's m, v and new params against `adam_float64` of its own
    gradients from `start`. Both within ON_OWN_INPUTS_ULPS: float32 rounding, the gradients' rounding
    amplified by Adam (the entries are named); else different, Adam itself. Other rows are left as
    they are."""
    if any(row.level == DIFFERENT for row in rows if row.phase != "update"):
        return rows
    names = list(param_shapes(cfg))
    steps = {}  # side -> its float64 step, computed once when first needed
    out = []
    for row in rows:
        part, _, p = row.tap.partition("/")
        grad = f"grad/{p}"
        if (row.level != DIFFERENT or row.phase != "update" or part not in ADAM or p not in names
                or np.array_equal(a[grad], b[grad])):
            out.append(row)
            continue
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
            out.append(dataclasses.replace(row, level=ROUNDING, own=note))
        else:
            off = "b" if own[1] > ON_OWN_INPUTS_ULPS else "a"
            note = (f"{against}, {off}'s beyond {ON_OWN_INPUTS_ULPS:g}: {ADAM[part]} computed another way: "
                    "a different computation")
            out.append(dataclasses.replace(row, own=note))
    return out


def why(row: Row, a: dict, b: dict) -> str:
    """Why the first row that parts does: which operation, and rounding or another computation."""
    layer_local = row.tap.split(".", 1)[-1]
    if row.phase == "forward":
        what = (f"the inputs of {OPERATIONS.get(layer_local, row.tap)} (every earlier tap, and the weights) were "
                f"bitwise equal and its output {row.tap} is not: the operation itself")
    elif row.phase == "backward":
        what = (f"every forward value and the gradient of every later tap were bitwise equal, d loss/d {row.tap} "
                f"is not: the backward of the operation that reads {row.tap}")
    elif row.phase == "gradient":
        what = (f"every tap and its gradient were bitwise equal, d loss/d {row.tap} is not: the backward of the "
                f"operation that reads the weight {row.tap}, or how the gradient is put in the flat layout")
    elif row.own:
        return f"{row.tap}: {row.own}"
    else:
        part = row.tap.split("/", 1)[0]
        what = (f"the gradients and the state before the step were bitwise equal, {row.tap} is not: "
                f"{ADAM.get(part, 'Adam over several steps')}")
    key = {"forward": "tap/", "backward": "tap_grad/", "gradient": "grad/"}.get(row.phase, "")
    key = "loss" if row.tap == "loss" else key + row.tap
    key = key if key in a else row.tap
    x, y = np.asarray(a[key]), np.asarray(b[key])
    if x.ndim == 2 and x.shape[0] == x.shape[1] and np.array_equal(x, y.T):
        return (f"{what}; it is exactly the transpose of the other's: a weight laid out the other way round "
                "(to_flat/from_flat)")
    if row.level == ROUNDING:
        return f"{what}; {row.ulps:.3g} ulps of its scale: float32 rounding (the same arithmetic in another order)"
    return f"{what}; {row.ulps:.3g} ulps of its scale, beyond {ROUNDING_ULPS:g}: a different computation"


def report(a: dict, b: dict, cfg: Config, extra=(), start: tuple[dict, dict] | None = None) -> Report:
    """The table (`rows_of`), its level and where it first parts. `start`: see `rows_of`."""
    return summary(rows_of(a, b, cfg, extra, start), a, b)


def summary(rows: list[Row], a: dict, b: dict) -> Report:
    """Rows -> the Report: the level over every row, the first row that is not bitwise equal and why."""
    level = max((row.level for row in rows), key=LEVELS.index)
    first = next((row for row in rows if row.level != BITWISE), None)
    return Report(rows, level, None if first is None else Parting(first.tap, first.phase, why(first, a, b)))


# ----------------------------------------------------------------------------- one implementation's outputs

def one_batch(cfg: Config, *, batch_size: int = 1, seed: int = 0, data: str | None = None):
    """The first name (or `batch_size` names) a run with this seed trains on."""
    from common.data import Tokenizer, load_names, training_batches
    from common.runner import name_at

    docs = load_names(data)
    tok = Tokenizer.from_names(docs)
    if tok.vocab_size != cfg.vocab_size:
        raise UserError(f"the names use {tok.vocab_size} tokens, the config says vocab_size={cfg.vocab_size}")
    if batch_size < 1:
        raise UserError(f"batch-size={batch_size}: use 1 or more names")
    return name_at(training_batches(docs, tok, cfg.block_size, 1, seed, batch_size), 0)


def outputs(impl: Impl, start: tuple[dict, dict], batch, cfg: Config, *, jit: bool = True) -> dict:
    """Everything `where` lines up, from `impl`, in flat names: "tap/<t>", "loss", "tap_grad/<t>",
    "grad/<param>", "m/<param>", "v/<param>", "params/<param>" (numpy arrays)."""
    import jax

    from common.taps import zero_perturbations

    if impl.tapped_loss is None:
        raise UserError(f"{impl.name} has no tapped_loss (common/impl.py): it cannot show its taps")
    state = impl.state_from_flat(*start, cfg)
    zeros = zero_perturbations(cfg, batch.inputs.shape)

    def run(state, batch, zeros):
        params = impl.params_of(state)
        # params passed in, not closed over: NNX refuses a module from outside the transform
        (loss, taps), tap_grads = jax.value_and_grad(
            lambda z, p: impl.tapped_loss(p, batch, cfg, z), has_aux=True)(zeros, params)
        loss_fn = impl.loss_fn if batch.inputs.ndim == 1 else impl.batch_loss_fn
        _, grads = jax.value_and_grad(loss_fn)(params, batch, cfg)
        stepped, _ = impl.train_step(state, batch, cfg)
        return loss, taps, tap_grads, grads, stepped

    if jit:
        loss, taps, tap_grads, grads, stepped = jax.jit(run)(state, batch, zeros)
    else:
        with jax.disable_jit():
            loss, taps, tap_grads, grads, stepped = run(state, batch, zeros)
    params, opt = impl.state_to_flat(stepped)
    flat = {"loss": loss}
    flat |= {f"tap/{t}": v for t, v in taps.items()} | {f"tap_grad/{t}": v for t, v in tap_grads.items()}
    flat |= {f"grad/{p}": v for p, v in impl.to_flat(grads).items()}
    flat |= {f"m/{p}": v for p, v in opt["m"].items()} | {f"v/{p}": v for p, v in opt["v"].items()}
    flat |= {f"params/{p}": v for p, v in params.items()}
    return {k: np.asarray(v) for k, v in flat.items()}


def locate(a: Impl, b: Impl, cfg: Config, *, batch_size: int = 1, jit: bool = True, seed: int = 0,
           batch=None) -> Report:
    """Run `a` and `b` from one initialisation on one name (or `batch_size` names, or `batch`) and
    report where they first part."""
    from compare.programs import start as draw

    batch = batch if batch is not None else one_batch(cfg, batch_size=batch_size, seed=seed)
    start = draw(cfg, seed)
    return report(outputs(a, start, batch, cfg, jit=jit), outputs(b, start, batch, cfg, jit=jit), cfg, start=start)


# ----------------------------------------------------------------------------- the command

def main(argv) -> int:
    from compare import impls as impls_mod

    p = Parser(prog="compare where", description="Name the first operation where two implementations part: "
               "forward taps, their gradients, the parameter gradients, one Adam update.")
    p.add_argument("--impls", default="pure,flax_port", help="two implementations: names or module paths "
                   "(default pure,flax_port)")
    p.add_argument("--batch-size", type=int, default=1, help="names in the one step (default 1)")
    p.add_argument("--seed", type=seed_value, default=0, help="initialisation and which name (default 0)")
    p.add_argument("--data", default=None, help="names file (default: the census names of the `names` package)")
    p.add_argument("--no-jit", action="store_true", help="run op by op, under jax.disable_jit()")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    add_model_flags(p)
    args = p.parse_args(argv)
    names = [n.strip() for n in args.impls.split(",") if n.strip()]
    if len(names) != 2:
        raise UserError(f"--impls {args.impls!r}: name exactly two implementations, e.g. pure,flax_port")
    from common.data import Tokenizer, load_names

    docs = load_names(args.data)
    cfg = make_config(args, Tokenizer.from_names(docs).vocab_size)
    setup_jax(args)
    a, b = (impls_mod.get(n) for n in names)
    batch = one_batch(cfg, batch_size=args.batch_size, seed=args.seed, data=args.data)
    result = locate(a, b, cfg, jit=not args.no_jit, seed=args.seed, batch=batch)
    mode = "op by op (--no-jit)" if args.no_jit else "jit"
    title = (f"where: {a.name} vs {b.name}, one initialisation (seed {args.seed}), "
             f"{args.batch_size} name{'s' if args.batch_size > 1 else ''}, {mode}")
    print("\n".join(result.lines(title)))
    return result.exit_code
