"""Why two implementations part at a row of `compare where`'s table, from the evidence in the table.

`where` (compare/where.py) lines everything up in the order the computation runs and names the first
row that is not bitwise equal and the first beyond float32 rounding. This file says what that row
means: which operation made it (a forward tap), which operations read it (a tap's gradient: the
backward of its readers), which weight's product (a parameter's gradient), and, for an Adam update
whose gradients and state were equal, which change to microgpt's Adam reproduces the other side's
numbers (the learning rate of another step, weight decay, moments not carried over, gradients
rescaled before the step, another beta or epsilon, no bias correction), tried one by one in float64.
"""

import dataclasses

import numpy as np

from common.checkpoint import param_shapes
from common.config import Config
from compare.tolerances import ON_OWN_INPUTS_ULPS, ROUNDING_ULPS
from compare.verdict import BITWISE, ROUNDING, ulps_of_scale

# What computes each tap (its name within a layer), for a forward row.
OPERATIONS = {
    "forward()": "the model's own forward(params, tokens)",
    "loss_fn()": "the model's own loss_fn (or batch_loss_fn), whose gradients are the gradient rows",
    "train_step()": "the loss train_step returns (the trainers print it)",
    "embed": "wte[tokens] + wpe[positions]",
    "norm_in": "the RMSNorm of the embeddings",
    "norm_attn": "the RMSNorm before attention",
    "q": "x @ wq, split into heads",
    "k": "x @ wk, split into heads",
    "v": "x @ wv, split into heads",
    "attn_weights": "the softmax of the scaled, causally masked scores q·k",
    "attn_out": "the weighted values, joined, @ wo",
    "res_attn": "the residual sum after attention, x + attn_out",
    "norm_mlp": "the RMSNorm before the MLP",
    "mlp_hidden": "relu(x @ fc1)",
    "mlp_out": "hidden @ fc2",
    "res_mlp": "the residual sum after the MLP, x + mlp_out",
    "logits": "x @ lm_head.T",
    "loss": "the mean negative log-likelihood of the logits",
}

# The weight each parameter's gradient comes through: (the operation, the tap it makes).
WEIGHT_OF = {
    "wte": ("the embedding lookup wte[tokens]", "embed"), "wpe": ("the position lookup wpe[positions]", "embed"),
    "lm_head": ("x @ lm_head.T", "logits"), "wq": ("x @ wq", "q"), "wk": ("x @ wk", "k"), "wv": ("x @ wv", "v"),
    "wo": ("the joined heads @ wo", "attn_out"), "fc1": ("x @ fc1 (before the ReLU)", "mlp_hidden"),
    "fc2": ("hidden @ fc2", "mlp_out"),
}

COMPILED = ("the same arithmetic in another order: XLA's fusion, contraction into fused multiply-adds, or the order "
            "of a sum (docs/where.md)")


def readers(tap: str, cfg: Config) -> list[tuple[str, str]]:
    """The operations that read a tap, each with the tap it makes: the gradient with respect to `tap`
    is the backward of these, from the gradients of what they make."""
    if tap == "embed":
        return [(OPERATIONS["norm_in"], "norm_in")]
    if tap == "logits":
        return [(OPERATIONS["loss"], "loss")]
    if tap == "norm_in" or tap.endswith(".res_mlp"):
        nxt = 0 if tap == "norm_in" else int(tap[1:tap.index(".")]) + 1
        if nxt == cfg.n_layer:
            return [(OPERATIONS["logits"], "logits")]
        return [(OPERATIONS["norm_attn"], f"l{nxt}.norm_attn"), (OPERATIONS["res_attn"], f"l{nxt}.res_attn")]
    layer, local = tap.split(".", 1)
    scores = "the scaled, masked scores q·k and their softmax"
    table = {
        "norm_attn": [("x @ wq", "q"), ("x @ wk", "k"), ("x @ wv", "v")],
        "q": [(scores, "attn_weights")], "k": [(scores, "attn_weights")],
        "v": [("the weighted values, joined, @ wo", "attn_out")],
        "attn_weights": [("the weighted values, joined, @ wo", "attn_out")],
        "attn_out": [(OPERATIONS["res_attn"], "res_attn")],
        "res_attn": [(OPERATIONS["norm_mlp"], "norm_mlp"), (OPERATIONS["res_mlp"], "res_mlp")],
        "norm_mlp": [("relu(x @ fc1)", "mlp_hidden")],
        "mlp_hidden": [("hidden @ fc2", "mlp_out")],
        "mlp_out": [(OPERATIONS["res_mlp"], "res_mlp")],
    }
    return [(what, f"{layer}.{made}") for what, made in table.get(local, [])]


def before(row, rows) -> str:
    """What the rows above `row` were: bitwise, or at most rounding from some row on."""
    earlier = rows[:rows.index(row)] if row in rows else []
    rounded = next((r for r in earlier if r.level != BITWISE), None)
    if rounded is None:
        return "bitwise equal"
    return f"at most float32 rounding (the first not bitwise: {rounded.tap} ({rounded.phase}))"


def why(row, a: dict, b: dict, rows, cfg: Config, start=None) -> str:
    """Why `row` parts: which operation, what was equal before it, and rounding or another computation."""
    local = row.tap.split(".", 1)[-1]
    earlier = before(row, rows)
    if getattr(row, "note", ""):
        return f"{row.tap}: {row.note}: the function that makes it returns something else than the other's"
    if row.tap == "train_step()":
        return (f"every earlier tap was {earlier}, and the loss train_step returns (the one the trainers print) is "
                f"not{'' if row.level != ROUNDING else ' bitwise'}: train_step computes its loss its own way; "
                f"{row.ulps:.3g} ulps of its scale")
    if row.tap == "loss_fn()":  # the tapped pass's loss may be right while the function trained on is not
        return (f"every earlier tap was {earlier}, and the loss of the implementation's own loss_fn (or "
                f"batch_loss_fn) is not{'' if row.level != ROUNDING else ' bitwise'}: that function itself, outside "
                f"the tapped pass (the tapped loss above was {'equal' if earlier == 'bitwise equal' else earlier}), "
                f"and its gradients are the gradient rows below; {row.ulps:.3g} ulps of its scale")
    if row.tap == "forward()":
        return (f"every earlier tap was {earlier}, and the logits of the implementation's own forward(params, "
                f"tokens) are not{'' if row.level != ROUNDING else ' bitwise'}: forward itself, outside the tapped "
                f"pass (the tapped logits above were {'equal' if earlier == 'bitwise equal' else earlier}); "
                f"{row.ulps:.3g} ulps of its scale")
    if row.phase == "forward":
        what = (f"every earlier tap and the weights were {earlier}, and {row.tap} is not: "
                f"{OPERATIONS.get(local, row.tap)} itself")
    elif row.phase == "backward":
        reads = readers(row.tap, cfg)
        named = " and ".join(f"{op} (making {made})" for op, made in reads) or "what reads it"
        one = "the backward of the operation that reads" if len(reads) == 1 else \
            f"the backward of one of the {len(reads)} operations that read"
        what = (f"every forward value and the gradients of later taps were {earlier}, and d loss/d {row.tap} is "
                f"not: {one} {row.tap}, {named}")
    elif row.phase == "gradient":
        name = row.tap.split(".", 1)[-1]
        op, made = WEIGHT_OF.get(name, ("its product", "?"))
        layer = row.tap.split(".", 1)[0] + "." if "." in row.tap else ""
        what = (f"every tap and its gradient were {earlier}, and d loss/d {row.tap} is not: the backward of {op} "
                f"given d loss/d {layer if made != 'embed' and made != 'logits' else ''}{made}, or how the gradient "
                "is put in the flat layout")
    elif row.own:
        return f"{row.tap}: {row.own}"
    elif row.phase == "sampling":
        return f"every earlier sampling tap was {earlier}, and {row.tap} is not: {row.level}"
    else:
        what = update_why(row, a, b, cfg, start, earlier)
    key = {"forward": "tap/", "backward": "tap_grad/", "gradient": "grad/"}.get(row.phase, "")
    key = "loss" if row.tap == "loss" else key + row.tap
    key = key if key in a else row.tap
    x, y = np.asarray(a[key]), np.asarray(b[key])
    if x.ndim == 2 and x.shape[0] == x.shape[1] and np.array_equal(x, y.T):
        if row.phase in ("gradient", "update"):  # a weight's own entry: its layout is the converters'
            return (f"{what}; it is exactly the transpose of the other's: a weight laid out the other way round "
                    "(to_flat/from_flat)")
        return f"{what}; it is exactly the transpose of the other's: a value laid out the other way round"
    if row.level == ROUNDING:
        return f"{what}; {row.ulps:.3g} ulps of its scale: float32 rounding ({COMPILED})"
    return f"{what}; {row.ulps:.3g} ulps of its scale, beyond {ROUNDING_ULPS:g}: a different computation"


# ----------------------------------------------------------------------------- Adam, by hypothesis

ADAM = {
    "m": "Adam's first moment, b1·m + (1 − b1)·g",
    "v": "Adam's second moment, b2·v + (1 − b2)·g²",
    "params": "Adam's step, p − lr·m̂/(√v̂ + eps)",
    "step": "Adam's step count",
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One change to microgpt's Adam, as a port might have it."""

    says: str  # what it is, as a sentence's end
    lr_step: int = 0  # the learning rate of step + lr_step
    carry: bool = True  # the moments carried over from the state
    weight_decay: float = 0.0  # decoupled (AdamW): p − lr·(update + wd·p)
    grad_scale: float = 1.0  # the gradient multiplied by this before Adam
    bias_correction: bool = True
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None


def adam_step(start: tuple[dict, dict], grads: dict, cfg: Config, v: Variant = Variant("")) -> dict:
    """pure/optim.py's step, changed as `v` says, in float64 NumPy from `start` (flat params,
    {"step", "m", "v"}) and a side's gradients -> {"m/<p>", "v/<p>", "params/<p>"}."""
    params, opt = start
    b1, b2 = v.beta1 or cfg.beta1, v.beta2 or cfg.beta2
    eps = v.eps or cfg.adam_eps
    step = int(np.asarray(opt["step"]))
    lr = cfg.learning_rate * (1 - (step + v.lr_step) / cfg.num_steps)
    c1, c2 = (1 - b1 ** (step + 1), 1 - b2 ** (step + 1)) if v.bias_correction else (1.0, 1.0)
    out = {}
    for p, g in grads.items():
        g = np.asarray(g, np.float64) * v.grad_scale
        m0, v0 = (np.asarray(opt[k][p], np.float64) if v.carry else 0.0 for k in ("m", "v"))
        m, sq = (1 - b1) * g + b1 * m0, (1 - b2) * g * g + b2 * v0
        w = np.asarray(params[p], np.float64)
        out[f"m/{p}"], out[f"v/{p}"] = m, sq
        out[f"params/{p}"] = w - lr * ((m / c1) / (np.sqrt(sq / c2) + eps) + v.weight_decay * w)
    return out


def fitted(start, grads: dict, b: dict, cfg: Config, p: str) -> list[Variant]:
    """Variants with a number to fit, fitted to side b's row of parameter `p`: the weight decay that
    explains its new weights, the factor that explains its first moment."""
    out = []
    right = adam_step(start, {p: grads[p]}, cfg)
    params, opt = start
    step = int(np.asarray(opt["step"]))
    lr = cfg.learning_rate * (1 - step / cfg.num_steps)
    w = np.asarray(params[p], np.float64)
    big = np.abs(w) > 0.5 * np.abs(w).max()
    if big.any() and lr:
        wd = float(np.median((right[f"params/{p}"] - np.asarray(b[f"params/{p}"], np.float64))[big] / (lr * w[big])))
        if abs(wd) > 1e-6:
            out.append(Variant(f"weight decay {wd:.3g} (AdamW's decoupled p − lr·wd·p)", weight_decay=wd))
    g = np.asarray(grads[p], np.float64)
    keep = np.abs(g) > 0.5 * np.abs(g).max()
    if keep.any() and f"m/{p}" in b:  # m = b1·m0 + (1 − b1)·c·g: the factor c on g
        m0 = np.asarray(opt["m"][p], np.float64)
        scale = float(np.median((np.asarray(b[f"m/{p}"], np.float64) - cfg.beta1 * m0)[keep]
                                / ((1 - cfg.beta1) * g[keep])))
        if abs(scale - 1) > 1e-4:
            out.append(Variant(f"the gradient multiplied by {scale:.4g} before the step (clipped, or a loss scale)",
                               grad_scale=scale))
    return out


VARIANTS = [
    Variant("the learning rate of the next step (the schedule one step ahead)", lr_step=1),
    Variant("the learning rate of the step before (the schedule one step behind)", lr_step=-1),
    Variant("the moments not carried over from the step before (restarted from zero)", carry=False),
    Variant("no bias correction", bias_correction=False),
    Variant("beta1 0.9 (optax's default)", beta1=0.9),
    Variant("beta2 0.999 (optax's default)", beta2=0.999),
    Variant("eps 1e-6", eps=1e-6),
    Variant("eps 1e-7", eps=1e-7),
]


def closest_variant(start, b: dict, cfg: Config, p: str, within: float,
                    per_entry: bool = False) -> tuple[float, "Variant | None"]:
    """How far side b's m, v and new weights of parameter `p` are from microgpt's Adam on its own
    gradient and `start` (the worst of the three), and the first change to it (`VARIANTS`, then the
    fitted ones) that reproduces all three within `within`, or None. In ulps of each row's scale, or
    with `per_entry` in `rounding_budget`s."""
    grads = {p: b[f"grad/{p}"]}
    keys = [k for k in (f"m/{p}", f"v/{p}", f"params/{p}") if k in b]

    def apart(made) -> float:
        if per_entry:
            return max(in_budgets(start, grads, cfg, made, b, k) for k in keys)
        return max(ulps_of_scale(made[k], b[k])[0] for k in keys)

    with np.errstate(all="ignore"):
        unchanged = adam_step(start, grads, cfg)
        itself = apart(unchanged) if keys else float("inf")
        for variant in [*VARIANTS, *fitted(start, grads, b, cfg, p)]:
            made = adam_step(start, grads, cfg, variant)
            if all(np.array_equal(made[k], unchanged[k]) for k in keys):
                continue  # the same numbers as microgpt's Adam from this state (moments restarted at step 0): no cause
            if apart(made) <= within:
                return itself, variant
    return itself, None


def in_budgets(start, grads: dict, cfg: Config, made: dict, b: dict, key: str) -> float:
    """How far side b's row `key` is from `made` (a float64 step), at its worst entry, in that entry's
    `rounding_budget`."""
    off = np.abs(made[key] - np.asarray(b[key], np.float64)) / rounding_budget(start, grads, cfg, key)
    return float(np.max(off, initial=0.0))


EPS32 = float(np.finfo(np.float32).eps)


def rounding_budget(start, grads: dict, cfg: Config, key: str):
    """Per entry of row `key` (m/<p>, v/<p> or params/<p>), what float32 rounding of microgpt's Adam
    step can move it: a float32 ulp of each term it adds and of the result, from the float64 step.
    A right Adam lands within about one of it wherever its step is small or large against the
    weight (the shared starts past step 0 hold steps larger than the weights, whose rounding is
    many ulps of the weights' scale); a weight decay of 5e-5 is several at every weight near the
    largest."""
    part, _, p = key.partition("/")
    params, opt = start
    g = np.asarray(grads[p], np.float64)
    m0, v0 = (np.asarray(opt[k][p], np.float64) for k in ("m", "v"))
    made = adam_step(start, {p: grads[p]}, cfg)
    ulp = lambda x: np.spacing(np.abs(x).astype(np.float32)).astype(np.float64)  # noqa: E731
    if part == "m":
        return ulp((1 - cfg.beta1) * g) + ulp(cfg.beta1 * m0) + ulp(made[key])
    if part == "v":
        return ulp((1 - cfg.beta2) * g * g) + ulp(cfg.beta2 * v0) + ulp(made[key])
    w = np.asarray(params[p], np.float64)
    step = int(np.asarray(opt["step"]))
    t = step + 1
    # the step's relative error: a few roundings, and the bias corrections 1 − beta**t, which cancel
    # at small t (1 − 0.99 in float32 is 9.5e-7 off relatively): each an ulp of beta**t over it
    relative = 4 * EPS32 + sum(float(np.spacing(np.float32(beta**t))) / (1 - beta**t) * share
                               for beta, share in ((cfg.beta1, 1.0), (cfg.beta2, 0.5)))
    # and m's own rounding carried through the step: where b1·m0 and (1 − b1)·g nearly cancel, m is
    # small and its rounding large against it
    m_off = ulp((1 - cfg.beta1) * g) + ulp(cfg.beta1 * m0) + ulp(made[f"m/{p}"])
    lr = cfg.learning_rate * (1 - step / cfg.num_steps)
    through = abs(lr) / (1 - cfg.beta1**t) * m_off / (np.sqrt(made[f"v/{p}"] / (1 - cfg.beta2**t)) + cfg.adam_eps)
    return ulp(w) + ulp(made[key]) + relative * np.abs(made[key] - w) + through


def reproduced_by(start, b: dict, cfg: Config, p: str) -> str:
    """Which change to microgpt's Adam reproduces side b's m, v and new weights of parameter `p` from
    its own gradient and `start` (`closest_variant`), each row within ON_OWN_INPUTS_ULPS: a sentence
    saying so, or that none does."""
    itself, variant = closest_variant(start, b, cfg, p, ON_OWN_INPUTS_ULPS)
    if itself <= ON_OWN_INPUTS_ULPS:  # any variant near enough would "reproduce" it too: none is named
        return (f"microgpt's Adam itself gives the other side's m, v and new {p} from its own gradient, within "
                f"{itself:.3g} ulps")
    if variant is not None:
        return (f"the other side's m, v and new {p} are microgpt's Adam with {variant.says}, within "
                f"{ON_OWN_INPUTS_ULPS:g} ulps")
    return ("no single change tried (the learning rate of another step, the moments, the bias correction, the "
            "betas, eps, weight decay, a gradient scale) reproduces the other side's")


def update_why(row, a: dict, b: dict, cfg: Config, start, earlier: str) -> str:
    """An update row that parts while the gradients and state before it were equal: which change to
    Adam reproduces side b's numbers (`reproduced_by`)."""
    part, _, p = row.tap.partition("/")
    head = (f"the gradients and the state before the step were {earlier}, and {row.tap} is not: "
            f"{ADAM.get(part, 'Adam')}")
    if start is None or p not in param_shapes(cfg) or f"grad/{p}" not in b:
        return head
    return f"{head}; {reproduced_by(start, b, cfg, p)}"
