"""Checkpoints: one .npz that every implementation reads, keyed by the seed's flat names.

The flat layout (`param_shapes`) is a format of its own, the hub between implementations: each
twin converts its own tree to and from it (pure/checkpoint.py, flax_port/checkpoint.py,
nnx_port/checkpoint.py), and compare/convert.py goes from one twin to another through it. Adam's
state has a flat form too: {"step": int32 scalar, "m": flat, "v": flat}, the moments under the
same names as the parameters.

File: one array per parameter (`wte`, `wpe`, `lm_head`, `l0.wq`, ...), plus `__config__` (the
Config as JSON) and `__chars__` (the tokenizer's characters), both stored as unicode arrays so
that nothing needs pickle. A plain dict saved by the seed's script with `numpy.savez` (no config,
no characters) loads too. Writes are atomic; loads never execute code.
"""

import dataclasses
import errno
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from common.config import Config
from common.errors import UserError

CONFIG_KEY, CHARS_KEY = "__config__", "__chars__"

# ----------------------------------------------------------------------------- the flat layout

def param_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """The seed's names and layouts, in the model's order: every matrix is applied as `x @ W`,
    lm_head as `x @ W.T` (so it is (V, D), like wte)."""
    V, T, D = cfg.vocab_size, cfg.block_size, cfg.n_embd
    shapes = {"wte": (V, D), "wpe": (T, D), "lm_head": (V, D)}
    for i in range(cfg.n_layer):
        shapes |= {f"l{i}.wq": (D, D), f"l{i}.wk": (D, D), f"l{i}.wv": (D, D), f"l{i}.wo": (D, D)}
        shapes |= {f"l{i}.fc1": (D, 4 * D), f"l{i}.fc2": (4 * D, D)}
    return shapes



def check_params(found: dict, expected: dict, where: str) -> None:
    """Refuse a tree with missing, extra or mis-shaped entries, naming each with its shapes."""
    problems = [f"missing {k} (expected {tuple(s)})" for k, s in expected.items() if k not in found]
    problems += [f"extra {k} {tuple(np.shape(v))}" for k, v in found.items() if k not in expected]
    problems += [
        f"{k} has shape {tuple(np.shape(found[k]))}, expected {tuple(s)}"
        for k, s in expected.items()
        if k in found and tuple(np.shape(found[k])) != tuple(s)
    ]
    if problems:
        raise UserError(f"{where} does not fit the model: " + "; ".join(problems))


def temporary_beside(p: Path) -> tuple[int, str]:
    """A new temporary file in `p`'s directory, named after `p`: (fd, its path)."""
    return tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")


def writable_target(path: str) -> Path:
    """Fail before training if `path` cannot be written: its directory must exist and take the
    very temporary file a save will create (os.access says yes to root even on a read-only mount,
    and a name can be too long only once the temporary's prefix and suffix are added)."""
    p = Path(path)
    try:
        if not p.parent.is_dir():
            raise UserError(f"cannot save to {path}: directory {p.parent} does not exist; create it first")
        if p.is_dir():
            raise UserError(f"cannot save to {path}: it is a directory; give a file name")
        fd, tmp = temporary_beside(p)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise UserError(f"cannot save to {path}: directory {p.parent} is not writable ({err.strerror})") from None
        raise UserError(f"cannot save to {path} ({err.strerror}): choose another path") from None
    return p


def atomic_write(path: str, write) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`: a reader
    (or an interrupted save) never sees half a file, and an old file is replaced only by a whole one."""
    p = writable_target(path)
    tmp = None
    try:
        fd, tmp = temporary_beside(p)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):  # a disk that filled up, a directory that went read-only
            raise UserError(f"cannot save to {path} ({err.strerror or err}): nothing was written") from None
        raise


def save(path: str, flat_params: dict, cfg: Config, chars: str) -> None:
    """Write atomically: a temporary file in the same directory, then a rename over `path`."""
    arrays = {k: np.asarray(v) for k, v in flat_params.items()}
    arrays[CONFIG_KEY] = np.array(json.dumps(dataclasses.asdict(cfg), sort_keys=True))
    arrays[CHARS_KEY] = np.array(chars)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load(path: str) -> tuple[dict[str, np.ndarray], dict | None, str | None]:
    """(flat params, config fields or None, characters or None); refuses anything not a plain npz."""
    p = Path(path)
    try:
        if not p.exists():
            raise UserError(f"checkpoint {path} does not exist: pass --load with a file written by --save")
        if p.is_dir() or not zipfile.is_zipfile(p):
            raise UserError(
                f"checkpoint {path} is not an .npz file (truncated, or another format): save it again with --save"
            )
        with zipfile.ZipFile(p) as zf:
            strays = [n for n in zf.namelist() if not n.endswith(".npy")]
    except OSError as err:
        raise UserError(f"checkpoint {path} cannot be read ({err.strerror or err}): check the path") from None
    if strays:
        raise UserError(f"checkpoint {path} is a zip but not an .npz (it holds {strays[0]}): save it again with --save")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as err:
        if "pickle" in str(err):
            raise UserError(
                f"checkpoint {path} contains pickled objects, which are never loaded: save plain arrays"
            ) from None
        raise UserError(f"checkpoint {path} cannot be read ({err}): save it again with --save") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"checkpoint {path} is damaged ({err}): save it again with --save") from None
    cfg_fields = chars = None
    if CONFIG_KEY in arrays:
        try:
            cfg_fields = json.loads(str(arrays.pop(CONFIG_KEY)))
        except json.JSONDecodeError:
            raise UserError(f"checkpoint {path} has an unreadable {CONFIG_KEY}: save it again with --save") from None
    if CHARS_KEY in arrays:
        chars = str(arrays.pop(CHARS_KEY))
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
            kind = getattr(v, "dtype", type(v).__name__)
            raise UserError(f"checkpoint {path}: {k} holds {kind} values, expected floats")
        if not np.isfinite(v).all():
            raise UserError(f"checkpoint {path}: {k} holds NaN or inf (saved from a diverged run?): train it again")
    return arrays, cfg_fields, chars
