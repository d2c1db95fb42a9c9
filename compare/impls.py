"""The implementations compare/ works with: the three it knows by name, and any other by module path.

Wherever a command takes an implementation (`compare --impls`, `compare bench --impls`,
`compare --against ... --impl`, `compare check`), it takes `pure`, `flax_port`, `nnx_port` or
the dotted path of any importable module whose `impl()` returns a `common.impl.Impl`
(`examples.equinox_port`, `mypkg.port`). compare/ never names such a module itself: it reaches
it through `get` and the contract of common/impl.py. A path that does not lead to a usable
`Impl` is a UserError: one line saying what is missing and what to do.
"""

import dataclasses
import importlib
import importlib.util
import itertools

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
        spec = importlib.util.find_spec(name)
    except ImportError:  # a parent package is missing: find_spec imports the parents first
        spec = None
    except Exception as err:  # a parent package raised while being imported
        raise UserError(f"{name}: importing it raised {type(err).__name__}: {err}; fix that module first") from None
    if spec is None:
        raise UserError(f"{name}: no module of that name can be imported here; give one of {', '.join(NAMES)} or "
                        "a module path reachable from the current directory or PYTHONPATH")
    try:
        return importlib.import_module(name)
    except SystemExit as err:  # a module that ends the program when imported would end ours with its code
        raise UserError(f"{name}: importing it called sys.exit({err.code!r}); a port must not exit when "
                        "imported (put its program under `if __name__ == \"__main__\":`)") from None
    except Exception as err:
        raise UserError(f"{name}: importing it raised {type(err).__name__}: {err}; fix that module first") from None


def get(name: str) -> Impl:
    """The `Impl` of one implementation: a known name or any importable module path whose `impl()`
    returns a common.impl.Impl with every required function (see common/impl.py)."""
    x64, no_jit = x64_enabled(), jit_disabled()
    module = find(name)
    if name in NAMES:
        import os

        where = os.path.abspath(getattr(module, "__file__", "") or "")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if not where.startswith(os.path.join(root, name) + os.sep):  # a pure.py in the current directory
            raise UserError(f"{name} here is {where}, not this project's {name}/: a module of that name comes "
                            "first on the path; rename it, or run from another directory")
    factory = getattr(module, "impl", None)
    if not callable(factory):
        raise UserError(f"{name} has no impl() function: add `def impl(): return common.impl.Impl(...)` "
                        f"to it ({GUIDE})")
    try:
        made = factory()
    except SystemExit as err:
        raise UserError(f"{name}.impl() called sys.exit({err.code!r}); fix it to return an Impl") from None
    except Exception as err:
        raise UserError(f"{name}.impl() raised {type(err).__name__}: {err}; fix it to return an Impl") from None
    if not isinstance(made, Impl):
        raise UserError(f"{name}.impl() returned a {type(made).__name__}, not a common.impl.Impl: build one with "
                        f"common.impl.Impl(name=..., init_state=..., ...) ({GUIDE})")
    if jit_disabled() and not no_jit:
        import sys

        import jax

        jax.config.update("jax_disable_jit", False)
        print(f"note: importing {name} turned on jax_disable_jit; the checks choose jit or not themselves, so it "
              "is turned off again", file=sys.stderr)
    if x64_enabled() and not x64:
        import sys

        import jax

        jax.config.update("jax_enable_x64", False)
        print(f"note: importing {name} turned on jax_enable_x64 (64-bit floats); microgpt is float32 throughout, so "
              "it is turned off again and the port runs in float32", file=sys.stderr)
    missing = [f for f in required_fields() if not callable(getattr(made, f))]
    wrong = [f for f in optional_fields() if getattr(made, f) is not None and not callable(getattr(made, f))]
    if missing or wrong:
        what = ", ".join(missing + wrong)
        raise UserError(f"{name}.impl() gives no function for {what}: each must be a callable "
                        f"({'the optional ones may be None; ' if wrong else ''}{GUIDE})")
    if name in NAMES:  # the project's twins: their exceptions are our bugs, tracebacks and all
        return made
    # a port that copied a twin's Impl keeps its name ("pure"): every line would blame the twin
    named = {"name": name} if made.name in NAMES else {}
    return dataclasses.replace(made, **named, **{f: guarded(name, f, getattr(made, f)) for f in required_fields()
                                                 + optional_fields() if callable(getattr(made, f))})


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
        try:
            out = fn(*args, **kwargs)
        except (UserError, PortError, KeyboardInterrupt, GeneratorExit, MemoryError):
            raise  # out of memory is the run's size, said as such by common/cli.py (exit 2), not the port's fault
        except BaseException as err:  # SystemExit, and a port's own BaseException subclass, included
            if isinstance(err, RuntimeError) and ("RESOURCE_EXHAUSTED" in str(err) or "Out of memory" in str(err)):
                raise
            raise PortError(label, function, err) from None
        if function in FLAT:
            flat = (out[0] if isinstance(out, tuple) else None) if function == "state_to_flat" else out
            check_flat_names(label, function, flat)
        if function == "state_to_flat":
            check_adam_state(label, out)
        return out

    return call


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


def jit_disabled() -> bool:
    """Whether jax.disable_jit is on for the whole process (a port may turn it on when imported)."""
    import sys

    jax = sys.modules.get("jax")
    return bool(jax is not None and jax.config.jax_disable_jit)


def x64_enabled() -> bool:
    """Whether 64-bit floats are on (a port may turn them on when imported)."""
    import sys

    jax = sys.modules.get("jax")
    return bool(jax is not None and jax.config.read("jax_enable_x64"))


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
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) < minimum or len(set(names)) != len(names):
        need = "at least two different implementations" if minimum > 1 else "different implementations"
        raise UserError(f"{flag} {text!r}: name {need}: of {', '.join(available())}, or module paths whose "
                        "impl() returns a common.impl.Impl")
    for name in names:
        get(name)  # a UserError naming what is missing
    return names
