"""What each bound of compare/tolerances.py is measured against, on this machine, as the tests check it.

Not a test (pytest does not collect it): a maintainer's measurement, run by hand on each version set
and under each ISA that XLA's CPU backend can be held to, and written into compare/tolerances.py
with the date, the CPU and the set:

    uv run python tests/bounds.py
    XLA_FLAGS=--xla_cpu_max_isa=AVX2 uv run python tests/bounds.py
    XLA_FLAGS="--xla_cpu_max_isa=SSE4_2 --xla_force_host_platform_device_count=4" uv run python tests/bounds.py
    UV_PROJECT_ENVIRONMENT=.venv-3.11 uv run --python 3.11 python tests/bounds.py

With 4 devices (the last flag) it adds the devices bound. Section names as arguments run only those
(`... tests/bounds.py batch_of_one devices`). Each row: the bound, the largest value
measured over the cases the tests use and more (seeds, scales, names), where it was reached, and
the room left (bound / measured). Bounds in ulps are compare/verdict.py's ulps of each tensor's
scale; allclose-style bounds are shown as the largest |a - b| / (atol + rtol |b|), 1.0 being the
bound itself.
"""

import os
import platform
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flax_port.model  # noqa: E402
import pure.model  # noqa: E402
from common.config import Config  # noqa: E402
from common.data import Batch, Tokenizer, encode_name, training_batches  # noqa: E402
from compare import batch_checks, equivalence, impls, programs, tolerances  # noqa: E402
from compare.equivalence import Group  # noqa: E402

TOK = Tokenizer("abcdefghijklmnopqrstuvwxyz")
CFG = Config(vocab_size=TOK.vocab_size)
LONG = "abcdefghijklmnopqrstuvwxyz"
WORDS = ["a", "bo", "emma", "kaelyn", "isabella", LONG]
MODELS = {"pure": pure.model, "flax_port": flax_port.model}
ROWS = []


def row(name: str, bound, measured: float, where: str) -> None:
    room = (bound / measured) if measured else float("inf")
    ROWS.append((name, bound, measured, where, room))
    print(f"{name:<34} bound {bound!s:<10} measured {measured:<10.4g} room {room:<8.3g} {where}", flush=True)


def usage(a, b, rtol: float, atol: float) -> float:
    """The largest |a - b| / (atol + rtol |b|) over two trees: 1.0 is the allclose bound itself."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        worst = max(worst, float(np.max(np.abs(x - y) / (atol + rtol * np.abs(y)))))
    return worst


def params(which: str, seed: int, scale: float = 1.0, cfg: Config = CFG):
    pure_state, flax_state = equivalence.pure_and_flax_states(cfg, key=jax.random.PRNGKey(seed), scale=scale)
    return pure_state[0] if which == "pure" else flax_state.params


def padded_vs_unpadded():
    worst, at = 0.0, ""
    for which, model in MODELS.items():
        for seed in range(5):
            p = model.init_params(CFG, key=jax.random.PRNGKey(seed))
            for word in WORDS:
                padded = encode_name(word, TOK, CFG.block_size)
                n = int(padded.mask.sum())
                unpadded = Batch(padded.inputs[:n], padded.targets[:n], np.ones(n, np.float32))
                for mode, wrap in (("jit", jax.jit), ("eager", lambda f: f)):
                    fn = wrap(lambda p, b: jax.value_and_grad(model.loss_fn)(p, b, CFG))
                    u = usage(fn(p, padded), fn(p, unpadded), **tolerances.PADDED_VS_UNPADDED)
                    if u > worst:
                        worst, at = u, f"{which} seed {seed} {word!r} {mode}"
    row("PADDED_VS_UNPADDED (of the tol)", 1.0, worst, at)


def adam_vs_float64():
    from pure import optim

    worst = {"params": (0.0, ""), "m": (0.0, ""), "v": (0.0, "")}
    for seed in range(3):
        p = pure.model.init_params(CFG, key=jax.random.PRNGKey(seed))
        state = optim.adam_init(p)
        ref = {k: (np.float64(v), np.zeros(v.shape), np.zeros(v.shape)) for k, v in p.items()}
        for step in range(3):
            grads = pure.model.init_params(CFG, key=jax.random.PRNGKey(10 + 10 * seed + step))
            p, state = optim.adam_update(p, grads, state, CFG)
            for k in ref:
                g, (w, m, v) = np.float64(grads[k]), ref[k]
                m, v = CFG.beta1 * m + (1 - CFG.beta1) * g, CFG.beta2 * v + (1 - CFG.beta2) * g ** 2
                lr = CFG.learning_rate * (1 - step / CFG.num_steps)
                w = w - lr * (m / (1 - CFG.beta1 ** (step + 1))) / ((v / (1 - CFG.beta2 ** (step + 1))) ** 0.5
                                                                     + CFG.adam_eps)
                ref[k] = (w, m, v)
                for part, got, want in (("params", p[k], w), ("m", state["m"][k], m), ("v", state["v"][k], v)):
                    u = usage(got, want, **tolerances.ADAM_VS_FLOAT64[part])
                    if u > worst[part][0]:
                        worst[part] = (u, f"seed {seed} step {step + 1} {k}")
    for part, (u, at) in worst.items():
        row(f"ADAM_VS_FLOAT64[{part}] (of the tol)", 1.0, u, at)


def jit_vs_eager():
    for scale, tol, label in ((1.0, tolerances.JIT_VS_EAGER, "JIT_VS_EAGER"),
                              (10.0, tolerances.JIT_VS_EAGER_10X, "JIT_VS_EAGER_10X")):
        worst, at = 0.0, ""
        for which, model in MODELS.items():
            for seed in range(5):
                p = params(which, seed, scale)
                for word in ("a", "emma", LONG):
                    batch = encode_name(word, TOK, CFG.block_size)
                    fn = lambda p, b, model=model: (model.forward(p, b.inputs, CFG),  # noqa: E731
                                                    jax.value_and_grad(model.loss_fn)(p, b, CFG))
                    u = usage(fn(p, batch), jax.jit(fn)(p, batch), **tol)
                    if u > worst:
                        worst, at = u, f"{which} seed {seed} {word!r}"
        row(f"{label} (of the tol)", 1.0, worst, at)


def update_without_an_outer_jit():
    """One update called as it is, library jits on (optax's bias correction jitted): the twins'
    rounding outside the grid's modes (tests/test_compare.py)."""
    worst, at = 0.0, ""
    pure_impl = impls.resolve("pure")
    for name in ("flax_port", "nnx_port"):
        for group in (Group(), Group(batch=8)):
            feed = programs.data("update", group)
            a, b = (equivalence.compute("update", it, programs.state(it, "default"), feed, CFG)
                    for it in (pure_impl, impls.resolve(name)))
            for key in a:
                u = batch_checks.ulps_apart(a[key], b[key])
                if u > worst:
                    worst, at = u, f"{group.batch} name(s) {name} {key}"
    row("update, no outer jit (ROUNDING)", tolerances.ROUNDING_ULPS, worst, at)


def batch_of_one():
    worst, at = 0.0, ""
    for which, model in MODELS.items():
        for scale in (1.0, 10.0):
            for seed in range(2):
                p = params(which, seed, scale)
                for word in WORDS:
                    batch = encode_name(word, TOK, CFG.block_size)
                    for mode, variant in (("jit", jax.jit), ("no_jit", equivalence.op_by_op)):
                        one = variant(lambda p, b: jax.value_and_grad(model.loss_fn)(p, b, CFG))(p, batch)
                        many = variant(lambda p, b: jax.value_and_grad(model.batch_loss_fn)(p, b, CFG))(
                            p, batch_checks.batch_of_one(batch))
                        u = batch_checks.ulps_apart(one, many)
                        if u > worst:
                            worst, at = u, f"{which} x{scale:g} seed {seed} {word!r} {mode}"
    row("BATCH_OF_ONE_ULPS", tolerances.BATCH_OF_ONE_ULPS, worst, at)


def batch_vs_names():
    names = ["emma", "a", LONG, "olivia", "bo", "kaelyn", "zoe", "ava", "mia", "x", "noah", "li"]
    worst, at = 0.0, ""
    for which, model in MODELS.items():
        for scale in (1.0, 10.0):
            for size in (4, 8, 32):
                for mode, variant in (("jit", jax.jit), ("no_jit", equivalence.op_by_op)):
                    for seed in range(3):
                        p = params(which, seed, scale)
                        batch = Batch(*(c[0] for c in training_batches(names, TOK, CFG.block_size, 1, seed,
                                                                       batch_size=size)))
                        grad_fn = variant(lambda p, b: jax.value_and_grad(model.batch_loss_fn)(p, b, CFG))
                        ref = batch_checks.token_weighted_reference(model, p, batch, CFG, variant)
                        u = batch_checks.ulps_apart(ref, grad_fn(p, batch))
                        if u > worst:
                            worst, at = u, f"{which} x{scale:g} seed {seed} B={size} {mode}"
    row("BATCH_VS_NAMES_ULPS", tolerances.BATCH_VS_NAMES_ULPS, worst, at)


def devices():
    from common.devices import data_mesh

    names = ["emma", "a", LONG, "olivia", "bo", "kaelyn", "zoe", "ava", "mia", "x", "noah", "li"]
    worst, at = 0.0, ""
    for which, model in MODELS.items():
        for seed in range(3):
            for scale in (1.0, 10.0):
                for size in (8, 32):
                    batch = Batch(*(c[0] for c in training_batches(names, TOK, CFG.block_size, 1, seed,
                                                                   batch_size=size)))
                    p = params(which, seed, scale)
                    for mode, variant in (("jit", jax.jit), ("no_jit", equivalence.op_by_op)):
                        one = batch_checks.sharded_value_and_grad(model, p, batch, CFG, data_mesh(1), variant)
                        for n in (2, 4):
                            many = batch_checks.sharded_value_and_grad(model, p, batch, CFG, data_mesh(n), variant)
                            u = batch_checks.ulps_apart(one, many)
                            if u > worst:
                                worst, at = u, f"{which} seed {seed} x{scale:g} B={size} {n} devices {mode}"
    row("DEVICES_ULPS", tolerances.DEVICES_ULPS, worst, at)


def rounding_chunks():
    """ROUNDING_ULPS: pure's old embedding lookup (plain indexing, the op once found to differ) put
    back, 200 lockstep steps of pure and flax_port at n_embd 24 / 3 heads and n_embd 32: the largest
    difference of a 10-step chunk run by both from the same state."""
    import contextlib
    import io
    import json
    import tempfile

    from compare import run

    def forward_with_indexing(params, tokens, cfg, taps=None):
        x = params["wte"][tokens] + params["wpe"][jax.numpy.arange(tokens.shape[0])]
        x = pure.model.rmsnorm(x, cfg)
        for layer in range(cfg.n_layer):
            x = pure.model.block(params, x, cfg, layer)
        return x @ params["lm_head"].T

    worst, at = 0.0, ""
    real = pure.model.forward
    pure.model.forward = forward_with_indexing
    try:
        for flags in (["--n-embd", "24", "--n-head", "3"], ["--n-embd", "32"]):
            with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
                run.main([*flags, "--steps", "200", "--log-every", "10", "--num-samples", "2",
                          "--impls", "pure,flax_port", "--json", f"{tmp}/v.json"])
                chunks = json.load(open(f"{tmp}/v.json"))["pairs"]["pure~flax_port"]["same_state_chunks"]
            largest = (chunks.get("largest") or {}).get("ulps", 0.0)
            if largest > worst:
                worst, at = largest, " ".join(flags)
    finally:
        pure.model.forward = real
    row("ROUNDING_ULPS (old lookup, chunks)", tolerances.ROUNDING_ULPS, worst, at)


def equinox_rows():
    """The Equinox port on the quick grid: bitwise with pure, like the twins."""
    pure_impl, port = impls.resolve("pure"), impls.resolve("examples.equinox_port")
    worst, at = 0.0, "every case of the quick grid"
    for case in equivalence.grid("quick", devices=jax.device_count() >= 4):
        a = programs.runner(pure_impl).output(case)
        b = programs.runner(port).output(case)
        u = max(batch_checks.ulps_apart(a[k], b[k]) for k in a)
        if u > worst:
            worst, at = u, str(case)
    row("Equinox rows (bitwise)", 0, worst, at)


def main():
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"{platform.machine()} {cpu}; python {platform.python_version()}, jax {jax.__version__}; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; {jax.device_count()} devices", flush=True)
    sections = [padded_vs_unpadded, adam_vs_float64, jit_vs_eager, update_without_an_outer_jit, batch_of_one,
                batch_vs_names, equinox_rows, rounding_chunks] + [devices] * (jax.device_count() >= 4)
    asked = sys.argv[1:]  # some of the sections by name (e.g. batch_of_one devices); default every one
    unknown = sorted(set(asked) - {f.__name__ for f in sections})
    if unknown:
        sys.exit(f"bounds.py: no section {', '.join(unknown)} here; the sections: "
                 + " ".join(f.__name__ for f in sections))
    for section in sections:
        if not asked or section.__name__ in asked:
            section()
    over = [r for r in ROWS if r[2] > r[1]]
    if over:
        print("over the bound: " + ", ".join(r[0] for r in over))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
