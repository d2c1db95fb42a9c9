"""The implementations compare/ works with: the three it knows by name, and any other by module path.

Wherever a command takes an implementation (`compare --impls`, `compare bench --impls`,
`compare --against ... --impl`, `compare check`), it takes `pure`, `flax_port`, `nnx_port` or
the dotted path of any importable module whose `impl()` returns a `common.impl.Impl`
(`examples.equinox_port`, `mypkg.port`). compare/ never names such a module itself: it reaches
it through `get` and the contract of common/impl.py. A path that does not lead to a usable
`Impl` is a UserError: one line saying what is missing and what to do.
"""

import builtins
import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import itertools
import os
import signal
import sys
import threading
import warnings

from common.errors import UserError
from common.impl import Impl

NAMES = ("pure", "flax_port", "nnx_port")
GUIDE = "see docs/porting.md"


def available() -> list[str]:
    """The names whose package is present (nnx_port arrives later on some branches)."""
    return [n for n in NAMES if importlib.util.find_spec(n) is not None]


def required_fields() -> list[str]:
    """The Impl fields a port must fill with a function (the others may be None)."""
    return [f.name for f in dataclasses.fields(Impl) if f.name != "name" and f.default is dataclasses.MISSING]


def optional_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(Impl) if f.default is None]


def find(name: str):
    """The module `name`, imported; a UserError naming what went wrong otherwise."""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise UserError(f"{name!r} is not a module path: give one of {', '.join(NAMES)} or a dotted module "
                        f"path such as mypkg.port ({GUIDE})")
    if name.split(".")[-1] == "__main__":  # importing it runs that program (pure.__main__ ran pure's trainer)
        package = f"its package ({name.rsplit('.', 1)[0]})" if "." in name else "the module that defines impl()"
        raise UserError(f"{name} is a program, not a port: give {package}")
    try:
        with port_code(name, "importing it"):  # find_spec imports the parent packages: fenced as well
            try:
                spec = importlib.util.find_spec(name)
            except ImportError:  # a parent package is missing
                spec = None
            if spec is None:
                raise UserError(f"{name}: no module of that name can be imported here; give one of "
                                f"{', '.join(NAMES)} or a module path reachable from the current directory or "
                                "PYTHONPATH")
            return importlib.import_module(name)
    except (SystemExit, PortExited) as err:  # a module that ends the program when imported would end ours
        how = "os._exit" if isinstance(err, PortExited) else "sys.exit"
        raise UserError(f"{name}: importing it called {how}({err.code!r}); a port must not exit when "
                        "imported (put its program under `if __name__ == \"__main__\":`)") from None
    except UserError:
        raise
    except BaseException as err:  # a port's own BaseException (pytest's Failed, importorskip's Skipped) too
        if isinstance(err, KeyboardInterrupt) and not ports_own(err):
            raise
        raise UserError(f"{name}: importing it raised {describe(err)}; fix that module first") from None


def get(name: str) -> Impl:
    """The `Impl` of one implementation: a known name or any importable module path whose `impl()`
    returns a common.impl.Impl with every required function (see common/impl.py)."""
    module = find(name)
    if name in NAMES:
        import os

        where = os.path.abspath(getattr(module, "__file__", "") or "")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if not where.startswith(os.path.join(root, name) + os.sep):  # a pure.py in the current directory
            raise UserError(f"{name} here is {where}, not this project's {name}/: a module of that name comes "
                            "first on the path; rename it, or run from another directory")
    try:  # a module __getattr__ that raises, a property that does (eighteenth hostile pass: tracebacks)
        factory = getattr(module, "impl", None)
    except Exception as err:
        raise UserError(f"{name}: reading its impl raised {describe(err)}; give the module a plain `def impl()` "
                        f"({GUIDE})") from None
    if not callable(factory):
        raise UserError(f"{name} has no impl() function: add `def impl(): return common.impl.Impl(...)` "
                        f"to it ({GUIDE})")
    try:
        with port_code(name, "impl()"):
            made = factory()
    except (SystemExit, PortExited) as err:
        how = "os._exit" if isinstance(err, PortExited) else "sys.exit"
        raise UserError(f"{name}.impl() called {how}({err.code!r}); fix it to return an Impl") from None
    except UserError:
        raise
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt) and not ports_own(err):
            raise
        raise UserError(f"{name}.impl() raised {describe(err)}; fix it to return an Impl") from None
    try:
        an_impl = isinstance(made, Impl)  # reads made.__class__, which an object may make raise
    except Exception:
        an_impl = False
    if not an_impl:
        raise UserError(f"{name}.impl() returned a {type(made).__name__}, not a common.impl.Impl: build one with "
                        f"common.impl.Impl(name=..., init_state=..., ...) ({GUIDE})")
    try:  # an Impl subclass whose attributes raise: one line too
        missing = [f for f in required_fields() if not callable(getattr(made, f))]
        wrong = [f for f in optional_fields() if getattr(made, f) is not None and not callable(getattr(made, f))]
        fields = {f: getattr(made, f) for f in required_fields() + optional_fields()}
    except Exception as err:
        raise UserError(f"{name}.impl() returned an Impl whose fields cannot be read ({describe(err)}): return a "
                        f"plain common.impl.Impl ({GUIDE})") from None
    if missing or wrong:
        what = ", ".join(missing + wrong)
        raise UserError(f"{name}.impl() gives no function for {what}: each must be a callable "
                        f"({'the optional ones may be None; ' if wrong else ''}{GUIDE})")
    if name in NAMES:  # the project's twins: their exceptions are our bugs, tracebacks and all
        return made
    # named by the path it was given, in every line: a port that copied a twin's Impl kept "pure" (every
    # line blamed the twin), and an Impl's own name may be anything, escapes included
    made = Impl(name=name, **{f: guarded(name, f, fn) if callable(fn) else fn for f, fn in fields.items()})
    made.state_from_flat.round_trip[0] = made.state_to_flat  # the round trip checked through the guard
    return made


FLAT = ("to_flat", "state_to_flat")  # the functions that hand numbers over in the checkpoint's names


def guarded(label: str, function: str, fn):
    """A port's function as the commands call it: what it raises, or a sys.exit, becomes a PortError
    naming the port by the path it was given and the function (a line, exit 1: a CI gate must not
    read a port that exits 0 as a pass); the flat layout it hands back is checked for the
    checkpoint's names, so that a wrong name is named rather than met later as a KeyError."""
    import functools

    from compare.programs import PortError

    @functools.wraps(fn)
    def call(*args, **kwargs):
        args = tuple(own_copy(a) for a in args)  # a port that edits a dict it is handed edits its own copy
        kwargs = {k: own_copy(v) for k, v in kwargs.items()}
        try:
            with port_code(label, function, during=True):
                out = fn(*args, **kwargs)
        except (UserError, PortError):
            raise
        except BaseException as err:  # SystemExit, os._exit, and a port's own BaseException subclass, included
            if isinstance(err, KeyboardInterrupt) and not ports_own(err):
                raise  # the user's Ctrl-C, in a test calling the commands in-process
            text = describe(err)  # (a message that cannot be read is not out of memory)
            if isinstance(err, RuntimeError) and ("RESOURCE_EXHAUSTED" in text or "Out of memory" in text):
                raise
            raise PortError(label, function, err) from None
        if inspect.iscoroutine(out) or inspect.isgenerator(out) or inspect.isasyncgen(out):
            kind = type(out).__name__
            out.close()  # unawaited, it would warn on stderr when collected
            raise PortError(label, function, TypeError(
                f"it returned a {kind} (an async def, or a yield in its body): the Impl's functions are plain "
                "functions that return their values (common/impl.py)"))
        if function in ("sample_tokens", "tapped_sample"):
            check_sampled(label, function, out)
        if function.startswith("train_step") and type(out) is list and len(out) == 2:
            out = tuple(out)  # [state, loss] is the same pair (a jitted step returns the list it builds)
        if function in ("train_step", "train_steps") and isinstance(out, tuple) and len(out) == 2 and args:
            check_same_state(label, function, args[0], out[0])
        if function in FLAT:
            flat = (out[0] if isinstance(out, tuple) else None) if function == "state_to_flat" else out
            check_flat_names(label, function, flat)
        if function == "state_to_flat":
            check_adam_state(label, out)
        if function in LOSSES:
            check_loss_shape(label, function, out, args[1] if len(args) > 1 else kwargs.get("batches"))
        if function == "state_from_flat":
            check_round_trip(label, fields_of_state_to_flat[0], args, out)
        return out

    fields_of_state_to_flat = [None]
    call.round_trip = fields_of_state_to_flat  # set by get(): the port's own state_to_flat
    return call


def check_round_trip(label: str, state_to_flat, args, state) -> None:
    """state_to_flat(state_from_flat(flat, opt)) gives Adam's state back, bit for bit (common/impl.py): a
    port whose state_from_flat dropped the step count passed every check, and `where --steps` called
    the state before the step bitwise equal (tenth hostile pass). Where the weights themselves do not
    come back, the mapping of the flat names is at fault, and the rows that read it say so (a
    transposed to_flat is named at its gradient, with why). Concrete inputs only (not under jit)."""
    import jax
    import numpy as np

    from compare.programs import PortError

    given = jax.tree.leaves(args[:2])
    if state_to_flat is None or len(args) < 2 or any(isinstance(x, jax.core.Tracer) for x in given):
        return
    flat, opt = state_to_flat(state)

    def same(a, b) -> bool:
        return b is not None and np.shape(a) == np.shape(b) and np.array_equal(np.asarray(a), np.asarray(b),
                                                                               equal_nan=True)  # NaN handed in

    if not all(same(v, flat.get(k)) for k, v in args[0].items()):
        return  # the weights' mapping itself (a transpose one way only): the gradient rows name it, with why
    for name, (a, b) in {"step": (args[1].get("step"), opt.get("step")),
                         **{f"{part}/{k}": (args[1][part][k], opt[part].get(k)) for part in ("m", "v")
                            for k in args[1].get(part, {})}}.items():
        if not same(a, b):
            shown = f" ({np.asarray(a)} came back as {np.asarray(b)})" if np.size(a) == 1 and b is not None else ""
            raise PortError(label, "state_from_flat", ValueError(
                f"its state does not hold {name} as given{shown}: state_to_flat(state_from_flat(...)) must give "
                "every bit back (common/impl.py)"))


def own_copy(x):
    """The structure of plain dicts, lists and tuples copied (arrays and other objects shared): what a
    port's function is handed. A port whose state_from_flat transposed the caller's lm_head in place
    damaged the start the grid shares, and the next implementation converted from it was blamed, rows
    changing from run to run (twelfth hostile pass); editing its own copy harms no one (and is common
    JAX style inside a traced step). Its cost grows with the leaves, about 0.4 us each: 8 us for
    microgpt's state of 27 leaves and 12 ms for 30,000 (measured 2026-12-07, a 2-core AMD EPYC,
    Python 3.12), against a compiled step's 0.2 ms called alone."""
    if type(x) is dict:
        return {k: own_copy(v) for k, v in x.items()}
    if type(x) in (list, tuple):
        return type(x)(own_copy(v) for v in x)
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a NamedTuple (a Batch, a state of one's own)
        return type(x)(*(own_copy(v) for v in x))
    return x


LOSSES = ("train_step", "train_steps", "loss_fn", "batch_loss_fn")  # a loss, or one loss per step


def check_loss_shape(label: str, function: str, out, batches) -> None:
    """A loss is a scalar; train_steps' losses are one per step, (k,). Losses of shape (1, k) were read
    as k losses by the trainers' loop and passed every check (seventh hostile pass)."""
    import jax
    import numpy as np

    from compare.programs import PortError

    loss = out[1] if function.startswith("train_step") and isinstance(out, tuple) and len(out) == 2 else out
    if function.startswith("train_step") and loss is out:
        raise PortError(label, function, ValueError("it returned no (state, loss) pair (common/impl.py)"))
    leaves = jax.tree.leaves(batches)
    steps = np.shape(leaves[0])[:1] if function == "train_steps" and leaves else ()
    if np.shape(loss) != steps:
        want = f"one loss per step, shape {steps}" if function == "train_steps" else "a scalar loss, shape ()"
        raise PortError(label, function, ValueError(f"its loss has shape {np.shape(loss)}: return {want} "
                                                    "(common/impl.py)"))


def check_sampled(label: str, function: str, out) -> None:
    """sample_tokens gives the token ids, an integer array (num_samples, block_size); tapped_sample
    gives them with a dict of its taps. A sample_tokens returning (tokens, taps), or a pair of token
    arrays, and a tapped_sample returning tokens alone were tracebacks in compare, bench, check and
    where (fifteenth hostile pass). On the values, or their abstract shapes under jit."""
    from compare.programs import PortError

    tokens = out
    if function == "tapped_sample":
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            got = (f"{out.dtype}{list(out.shape)} alone" if hasattr(out, "shape") and hasattr(out, "dtype") else
                   f"a {type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""))
            raise PortError(label, function, ValueError(
                f"it returned {got}: return (tokens, taps), the token ids and a dict of the sampling taps "
                "(common/impl.py)"))
        tokens = out[0]
    dtype, shape = getattr(tokens, "dtype", None), getattr(tokens, "shape", None)
    if isinstance(tokens, (tuple, list, dict)) or shape is None or len(shape) != 2 or \
            getattr(dtype, "kind", "") not in "iu" or dtype is None:
        got = (f"a {type(tokens).__name__}" + (f" of {len(tokens)}" if isinstance(tokens, (tuple, list, dict)) else "")
               if shape is None or isinstance(tokens, (tuple, list, dict)) else f"{dtype}{list(shape)}")
        raise PortError(label, function, ValueError(
            f"its tokens are {got}: return the token ids, an integer array (num_samples, block_size) "
            "(common/impl.py)"))


def check_same_state(label: str, function: str, given, returned) -> None:
    """train_step gives back the state it was handed, updated: the same structure, shapes and dtypes.
    A step returning ((state, 0), loss), or Adam's step count as float32, was a traceback in the
    lockstep scan of `python -m compare` and in bench, and `check` called the float32 count bitwise
    equal (fourteenth hostile pass). Checked on the values or on their abstract shapes under jit."""
    import jax

    from compare.programs import PortError

    def kind(x):
        return f"{getattr(x, 'dtype', type(x).__name__)}{list(getattr(x, 'shape', ()))}"

    was, now = jax.tree_util.tree_flatten_with_path(given), jax.tree_util.tree_flatten_with_path(returned)
    if was[1] != now[1]:
        raise PortError(label, function, ValueError(
            f"it returned a state of another structure than it was handed: {outline(returned)} for "
            f"{outline(given)}; return the state it is handed, updated (common/impl.py)"))
    for (path, a), (_, b) in zip(was[0], now[0]):
        if getattr(a, "dtype", None) != getattr(b, "dtype", None) or getattr(a, "shape", ()) != getattr(b, "shape", ()):
            raise PortError(label, function, ValueError(
                f"its state's {jax.tree_util.keystr(path) or 'value'} came back as {kind(b)}, handed in as {kind(a)}: "
                "return the state in the dtypes and shapes it is handed (common/impl.py)"))


def outline(tree, depth: int = 3) -> str:
    """A state's shape in a few characters: ({9 entries}, {3 entries}) for microgpt's (params, opt)."""
    if isinstance(tree, dict):
        return f"{{{len(tree)} entries}}"
    if isinstance(tree, (list, tuple)):
        inner = ", ".join(outline(v, depth - 1) for v in tree[:4]) + (", ..." if len(tree) > 4 else "")
        return f"({inner})" if isinstance(tree, tuple) else f"[{inner}]"
    return getattr(getattr(tree, "dtype", None), "name", None) or type(tree).__name__


def fresh_state_faults(impl: Impl, state, cfg) -> list[str]:
    """What in a state just made by `impl.init_state` is not a fresh start: Adam's step count must be 0
    and its moments zeros, the weights of the checkpoint's names, shapes and dtype, finite. A port
    starting Adam at step 100 was bitwise equal in `compare` and `check`, which start every
    implementation from one converted state, while its own trainer diverged (fourteenth hostile pass)."""
    import numpy as np

    from common.checkpoint import param_shapes

    flat, opt = impl.state_to_flat(state)
    faults = []
    step = np.asarray(opt["step"])
    if step.shape != () or step != 0:
        faults.append(f"Adam's step count is {step.tolist()}, not 0")
    moved = [f"{part}/{k}" for part in ("m", "v") for k, x in opt[part].items() if np.any(np.asarray(x) != 0)]
    if moved:
        faults.append(f"Adam's moments are not zeros ({', '.join(moved[:3])}{' ...' if len(moved) > 3 else ''})")
    for name, shape in param_shapes(cfg).items():
        w = np.asarray(flat[name])
        if w.shape != tuple(shape) or w.dtype != np.float32:
            faults.append(f"{name} is {w.dtype}{list(w.shape)}, not float32{list(shape)}")
        elif not np.all(np.isfinite(w)):
            faults.append(f"{name} holds NaN or inf")
    return faults


def check_fresh(label: str, impl: Impl, state, cfg) -> None:
    """`fresh_state_faults` as the PortError of init_state: one line, exit 1."""
    from compare.programs import PortError

    faults = fresh_state_faults(impl, state, cfg)
    if faults:
        err = PortError(label, "init_state", ValueError("no fresh start"))
        # read through the port's state_to_flat: int32 weights from it blamed init_state alone (nineteenth pass)
        err.args = (f"{label}'s init_state gives no fresh start, as its state_to_flat hands the state over: "
                    f"{'; '.join(faults)} (common/impl.py)",)
        raise err


def check_adam_state(label: str, out) -> None:
    """state_to_flat's second half: {"step", "m", "v"}, the moments in the flat names."""
    from compare.programs import PortError

    opt = out[1] if isinstance(out, tuple) and len(out) == 2 else None
    lacking = [k for k in ("step", "m", "v") if not hasattr(opt, "keys") or k not in opt]
    if lacking:
        raise PortError(label, "state_to_flat", ValueError(
            f"its Adam state lacks {', '.join(lacking)}: return (flat params, {{\"step\", \"m\", \"v\"}}) "
            "(common/impl.py)"))
    for part in ("m", "v"):
        check_flat_names(label, "state_to_flat", opt[part])


def check_flat_names(label: str, function: str, flat) -> None:
    """The names of the flat layout (common/checkpoint.py's param_shapes), for as many layers as the
    names say; a PortError naming what is missing or extra otherwise."""
    from common.checkpoint import param_shapes
    from common.config import Config
    from compare.programs import PortError

    names = set(flat.keys()) if hasattr(flat, "keys") else set()
    layers = len({n.split(".")[0] for n in names if n.startswith("l") and "." in n})
    expected = set(param_shapes(Config(n_layer=max(layers, 1))))
    if names != expected:
        missing, extra = sorted(expected - names), sorted(names - expected)
        what = "; ".join(filter(None, [f"missing {', '.join(missing[:4])}" if missing else "",
                                       f"unknown {', '.join(map(str, extra[:4]))}" if extra else ""]))
        raise PortError(label, function, ValueError(f"its flat layout is not the checkpoint's names ({what}); "
                                                    "see common/checkpoint.py's param_shapes"))


# ----------------------------------------------------------------------------- a port's code, fenced

# JAX settings that change what the checks compute or whether they run; a port's import or function
# that changes one would make the reference's next call fail or differ, and the line blame it
JAX_SETTINGS = ("jax_enable_x64", "jax_disable_jit", "jax_numpy_dtype_promotion", "jax_default_matmul_precision",
                "jax_numpy_rank_promotion", "jax_default_prng_impl", "jax_debug_nans", "jax_debug_infs",
                "jax_enable_checks", "jax_log_compiles", "jax_threefry_partitionable")
# The libraries' public namespaces whose functions a port must not replace (jax.nn.softmax set to
# another function at a port's import ran in the reference too: a false "bitwise equal", seventh
# hostile pass); attributes are compared by identity, a few thousand, well under a millisecond.
LIBRARIES = ("jax", "jax.numpy", "jax.nn", "jax.lax", "jax.random", "jax.scipy.special", "numpy", "optax",
             "flax.linen", "flax.nnx")
NOTES = {  # what an import that changed a setting is told (it is set back, and the run goes on)
    "jax_disable_jit": "{doing} turned on jax_disable_jit; the checks choose jit or not themselves, so it "
                       "is turned off again",
    "jax_enable_x64": "{doing} turned on jax_enable_x64 (64-bit floats); microgpt is float32 throughout, "
                      "so it is turned off again and the port runs in float32",
}
SIGNALS = tuple(getattr(signal, s) for s in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE") if hasattr(signal, s))


class PortChanged(RuntimeError):
    """What a port's function changed of the process while it ran (port_code), as its failure."""


class PortExited(BaseException):
    """What os._exit does while a port's code runs: the port ending the process would end a CI gate
    with its code and no verdict (os._exit(0): a pass)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def port_exit(code=0):
    raise PortExited(code)


FENCE = threading.Lock()
RUNNING = [0]  # how many port calls are in progress (the commands run some in threads at once)
BASELINE: dict = {}  # the process as it was when the first of them began: what is put back
MADE = threading.local()  # the JAX settings this thread's port code changed (jax.config.update, recorded)


def ports_own(err: BaseException) -> bool:
    """A KeyboardInterrupt the port raised, not the user's Ctrl-C: an entry point's Ctrl-C ends the
    process in common/shell.py's handler and never raises."""
    from common import shell

    return isinstance(err, KeyboardInterrupt) and shell.installed


def settings() -> dict:
    """JAX_SETTINGS' process-wide values (a thread's `with jax.disable_jit():` is that thread's own:
    the commands run cases op by op in one thread while another compiles)."""
    jax = sys.modules.get("jax")
    if jax is None:
        return {}
    holders = getattr(jax.config, "_value_holders", {})
    return {k: holders[k].get_global() if hasattr(holders.get(k), "get_global") else getattr(jax.config, k)
            for k in JAX_SETTINGS if k in holders or hasattr(jax.config, k)}


@contextlib.contextmanager
def port_code(name: str, what: str, during: bool = False):
    """A port's import, impl() or function (`what`) runs here: os._exit raises PortExited (from then
    on, for the whole process: a thread the port started may call it later; such a thread ends with
    a note), and what it changes of the process is put back afterwards - JAX's settings
    (JAX_SETTINGS), the signal handlers (Ctrl-C must still stop the run) and any alarm, sys.stdout
    and sys.stderr, print, the working directory, the umask, the recursion limit, and this
    project's own modules - as they were when the first port call in progress began. Changed while
    importing: set back, with a note (a replaced module of this project, or a closed stream, is
    refused). Changed by a function (`during`; several may run at once in threads, so a JAX setting
    counts as the function's when its own thread changed it): set back, and the port's failure (a
    PortError naming the function and what it changed)."""
    import jax

    if not during:  # this project's implementations, imported first: a port must not replace them
        for twin in available():
            importlib.import_module(twin)
    with FENCE:
        if not RUNNING[0]:
            BASELINE.clear()
            BASELINE.update(settings=settings(), handlers={s: signal.getsignal(s) for s in SIGNALS},
                            streams=(sys.stdout, sys.stderr), update=jax.config.update, print=builtins.print,
                            cwd=working_directory(), umask=current_umask(), recursion=sys.getrecursionlimit(),
                            modules={m: sys.modules[m] for m in OURS if m in sys.modules},
                            encodings=[codec_of(sys.stdout), codec_of(sys.stderr)], environ=dict(os.environ),
                            warnings=list(warnings.filters), logging=logging_state(), libraries=libraries())
            os._exit = port_exit
            if threading.excepthook is not thread_ended:
                BASELINE["excepthook"] = threading.excepthook
                threading.excepthook = thread_ended
            jax.config.update = recording_update
        RUNNING[0] += 1
    MADE.keys = []
    try:
        yield
    finally:
        mine, MADE.keys = MADE.keys, []
        with FENCE:
            try:
                changed = put_back(BASELINE, mine if during else None, name, during)
            finally:  # a closed stream or a replaced module is a UserError: the process is still put back
                RUNNING[0] -= 1
                if not RUNNING[0]:
                    jax.config.update = BASELINE["update"]
    if changed and during:
        from compare.programs import PortError

        raise PortError(name, what, PortChanged(f"it changed {', '.join(changed)} while it ran (set back): a port "
                                                 "must leave the process as it found it"))
    doing = "importing " + name if what == "importing it" else f"{name}'s {what}"
    for item in changed:
        setting = item.split(" ")[0]
        note = "note: " + NOTES.get(setting, "{doing} changed " + item + "; it is set back for the run").format(
            doing=doing)
        if note not in NOTED:  # once: compare calls a port's impl() more than once (nineteenth hostile pass)
            NOTED.add(note)
            print(note, file=sys.stderr)


NOTED: set[str] = set()  # the notes port_code has printed in this process


OURS = ("pure", "flax_port", "nnx_port", "common", "compare")  # what a port's import may not replace


def working_directory() -> str | None:
    """The current directory, or None where it was deleted (os.getcwd raises)."""
    try:
        return os.getcwd()
    except OSError:
        return None


def codec_of(stream):
    """(encoding, errors) of a text stream, None for another kind."""
    encoding, errors = getattr(stream, "encoding", None), getattr(stream, "errors", None)
    return (encoding, errors) if isinstance(encoding, str) and isinstance(errors, str) else None


def logging_state():
    import logging

    root = logging.getLogger()
    return (root.level, tuple(root.handlers), logging.getLogger("jax").level, logging.root.manager.disable)


def restore_logging(state) -> None:
    import logging

    root = logging.getLogger()
    root.setLevel(state[0])
    root.handlers[:] = list(state[1])
    logging.getLogger("jax").setLevel(state[2])
    logging.disable(state[3])


def libraries() -> dict:
    """{module: {attribute: value}} of LIBRARIES' loaded modules, their public attributes."""
    found = {}
    for name in LIBRARIES:
        module = sys.modules.get(name)
        if module is not None:
            found[name] = {a: v for a, v in vars(module).items() if not a.startswith("_")}
    return found


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def thread_ended(args) -> None:
    """A thread that a port started and that called os._exit: it ends, with a note, and the command
    goes on to its verdict (it ended the process with exit 0 and no verdict)."""
    if isinstance(args.exc_value, PortExited):
        print(f"note: a thread of a port called os._exit({args.exc_value.code!r}); it was ended, the command goes on",
              file=sys.stderr)
        return
    BASELINE.get("excepthook", threading.__excepthook__)(args)


def recording_update(key, value):
    """jax.config.update while a port's code runs: what it sets is recorded for its thread."""
    if isinstance(getattr(MADE, "keys", None), list):
        MADE.keys.append(key)
    BASELINE["update"](key, value)


def put_back(baseline: dict, keys, name: str, during: bool = False) -> list[str]:
    """Undo what a port changed of the process (of JAX's settings, only `keys` where given: what this
    thread set); what it was, in words."""
    changed = []
    now_all = settings()
    for key, value in baseline["settings"].items():
        now = now_all.get(key, value)
        if now != value and (keys is None or key in keys):
            baseline["update"](key, getattr(value, "value", value))
            changed.append(f"{key} (to {getattr(now, 'value', now)!r})")
    if threading.current_thread() is threading.main_thread():  # only it can set a handler or an alarm
        for sig, handler in baseline["handlers"].items():
            if signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
                changed.append(f"the handling of {signal.Signals(sig).name}")
        if hasattr(signal, "alarm") and signal.alarm(0):  # the commands set none: a port's, which would kill us
            changed.append("an alarm (SIGALRM)")
    if builtins.print is not baseline["print"]:
        builtins.print = baseline["print"]
        changed.append("print")
    if baseline["cwd"] is not None and working_directory() != baseline["cwd"]:  # relative paths would land elsewhere
        os.chdir(baseline["cwd"])
        changed.append("the working directory")
    if dict(os.environ) != baseline["environ"]:  # JAX_* and XLA_FLAGS read later would blame the user's shell
        before = baseline["environ"]
        names = sorted(set(os.environ).symmetric_difference(before)
                       | {k for k in os.environ if k in before and os.environ[k] != before[k]})
        os.environ.clear()
        os.environ.update(baseline["environ"])
        changed.append(f"the environment ({', '.join(names[:3])})")
    # at an import only: while a function runs, another thread (a compile, JAX's catch_warnings) may
    # hold a filter of its own for a moment
    if not during and warnings.filters != baseline["warnings"]:  # "error" turned our own warnings into failures
        warnings.filters[:] = baseline["warnings"]
        warnings._filters_mutated() if hasattr(warnings, "_filters_mutated") else None
        changed.append("the warnings filters")
    if not during and logging_state() != baseline["logging"]:  # basicConfig(DEBUG): hundreds of JAX's lines
        restore_logging(baseline["logging"])
        changed.append("the logging configuration")
    for stream, codec in zip((sys.stdout, sys.stderr), baseline["encodings"]):
        if codec is not None and codec_of(stream) != codec:  # a strict ascii stdout raised on a sampled é
            try:
                stream.reconfigure(encoding=codec[0], errors=codec[1])
            except (AttributeError, ValueError, OSError):
                pass
            changed.append(f"the encoding of sys.{'stdout' if stream is sys.stdout else 'stderr'}")
    if current_umask() != baseline["umask"]:
        os.umask(baseline["umask"])
        changed.append("the umask")
    if sys.getrecursionlimit() != baseline["recursion"]:
        sys.setrecursionlimit(baseline["recursion"])
        changed.append("the recursion limit")
    patched = [f"{m}.{a}" for m, attrs in libraries().items() for a, value in attrs.items()
               if m in baseline["libraries"] and baseline["libraries"][m].get(a, value) is not value]
    for item in patched:
        module, _, attr = item.rpartition(".")
        setattr(sys.modules[module], attr, baseline["libraries"][module][attr])
    if patched and not during:  # before any check ran: refused, as a replaced module of ours
        raise UserError(f"{name} replaced {patched[0]} when imported: the reference would run it too, and the "
                        "comparison would hide the change; keep such a function inside the port")
    if patched:
        changed.append(f"{patched[0]} (a library function the reference runs too)")
    replaced = [m for m, module in baseline["modules"].items() if sys.modules.get(m) is not module]
    for m in replaced:
        sys.modules[m] = baseline["modules"][m]
    closed, streams = [], []
    for attr, stream in zip(("stdout", "stderr"), baseline["streams"]):
        if getattr(sys, attr) is not stream:
            setattr(sys, attr, stream)
            changed.append(f"sys.{attr}")
        if getattr(stream, "closed", False):
            closed.append(attr)
            stream = reopened(stream)
            setattr(sys, attr, stream)
            changed.append(f"sys.{attr} (closed)")
        streams.append(stream)
    baseline["streams"] = tuple(streams)  # a stream made again is the one to keep from then on
    if replaced and not during:
        raise UserError(f"{name} replaced this project's module {replaced[0]} when imported: a port must not "
                        f"replace {', '.join(OURS)}; it would be compared in their place")
    if closed and not during:
        raise UserError(f"{name} closed sys.{closed[0]}: a port must leave the process's streams open")
    if replaced:
        changed.append(f"the module {replaced[0]}")
    return changed


def reopened(stream):
    """A stream a port closed, made again on its descriptor (Python's standard streams leave it open)."""
    import io

    try:
        name = getattr(stream, "name", "")
        fd = name if isinstance(name, int) else {"<stdout>": 1, "<stderr>": 2}.get(name)
        fd = stream.buffer.raw.fileno() if fd is None else fd
        return io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False)), encoding=stream.encoding,
                                errors=stream.errors, line_buffering=True)
    except (OSError, ValueError, AttributeError):
        return open(os.devnull, "w")


def describe(err: BaseException) -> str:
    """'Type: its first line', shown safely: a message that cannot be turned into text, or that holds
    terminal escapes or bidirectional controls (which would set a title, clear the screen or reverse
    what follows), is not passed to the terminal as it is."""
    try:
        text = str(err)
    except BaseException:
        text = "(its message could not be read)"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()] or [""]
    first = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in lines[0])
    return f"{type(err).__name__}: {first[:240]}".rstrip(": ")


RESOLVED: dict[str, Impl] = {}


def resolve(what: "str | Impl") -> Impl:
    """What a user has, a name, a module path or an Impl, as an Impl. A name is looked up (`get`)
    once per process, so that every helper given the same name shares one Impl, and with it one
    set of compiled programs (compare/programs.py)."""
    if isinstance(what, Impl):
        return what
    if what not in RESOLVED:
        RESOLVED[what] = get(what)
    return RESOLVED[what]


def pairs(names) -> list[tuple[str, str]]:
    """Every pair once, in column order: (pure, flax_port), (pure, nnx_port), (flax_port, nnx_port)."""
    return list(itertools.combinations(names, 2))


def labels(names: list[str]) -> list[str]:
    """Short column labels: the project's names as they are, a module path by its last part
    (examples.equinox_port -> equinox_port), the whole path only where two would read the same."""
    def short(name, level):
        return [name.rsplit(".", 1)[-1], name][level]

    levels = [0] * len(names)
    for _ in range(1):
        shown = [short(n, lv) for n, lv in zip(names, levels)]
        levels = [lv + 1 if shown.count(s) > 1 else lv for s, lv in zip(shown, levels)]
    return [short(n, lv) for n, lv in zip(names, levels)]


def parse(text: str | None, flag: str = "--impls", minimum: int = 2) -> list[str]:
    """A comma-separated list of names or module paths, each checked to give a usable Impl before
    any work; None gives the three present."""
    if text is None:
        return available()
    names = [n.strip() for n in text.split(",")]
    if "" in names and len(names) > 1:  # `pure,,flax_port` was read as two (and `where` refused it): as typed
        raise UserError(f"{flag} {text!r} has an empty entry: name an implementation between every two commas")
    names = [n for n in names if n]
    if len(names) < minimum or len(set(names)) != len(names):
        need = "at least two different implementations" if minimum > 1 else "different implementations"
        raise UserError(f"{flag} {text!r}: name {need}: of {', '.join(available())}, or module paths whose "
                        "impl() returns a common.impl.Impl")
    for name in names:
        get(name)  # a UserError naming what is missing
    return names
