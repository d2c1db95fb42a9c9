"""Checkpoints: one .npz that every implementation reads, keyed by the seed's flat names.

The flat layout (`param_shapes`) is a format of its own, the hub between implementations: each
twin converts its own tree to and from it (pure/checkpoint.py, flax_port/checkpoint.py,
nnx_port/checkpoint.py), and compare/convert.py goes from one twin to another through it. Adam's
state has a flat form too: {"step": int32 scalar, "m": flat, "v": flat}, the moments under the
same names as the parameters.

File: one array per parameter (`wte`, `wpe`, `lm_head`, `l0.wq`, ...), plus `__config__` (the
Config as JSON), `__chars__` (the tokenizer's characters) and `__microgpt__` (the mark that this
project wrote the file), all three stored as unicode arrays so that nothing needs pickle. A plain
dict saved by the seed's script with `numpy.savez` (no config, no characters, no mark) loads too,
given the head count (`--n-head`), which no array's shape tells. Writes are atomic; loads never
execute code, and read an array only once its declared shape is known to fit the file (and, for
`sample`, the model).

What a command may write over is decided before any work (`check_outputs`): a new file, or a
regular file whose content proves this project wrote it (a checkpoint carrying `__microgpt__`; a
plot or JSON file carrying the marks of common/outputs.py; a lesson page carrying its generator
tag); never the input data, a link, a device or FIFO, a read-only file, or one path given for two
outputs. A checkpoint saved before the mark existed still loads, but is not replaced: nothing in
it tells it from a user's own .npz of the same layout, so --save refuses it (docs/safety.md).
"""

import dataclasses
import errno
import json
import math
import os
import secrets
import stat
import zipfile
from pathlib import Path

import numpy as np

from common import shell
from common.config import Config
from common.errors import UserError

CONFIG_KEY, CHARS_KEY, MARK_KEY = "__config__", "__chars__", "__microgpt__"
MARK = "microgpt-jax checkpoint"  # what MARK_KEY holds: this project wrote the file, so --save may replace it
MAX_META_BYTES = 2**20  # the config's JSON and the characters: a few hundred bytes in any real checkpoint


def shape_of(v) -> tuple:
    """A declared shape (a tuple) as is, or an array's shape."""
    return v if isinstance(v, tuple) else tuple(np.shape(v))

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
    """Refuse a tree with missing, extra or mis-shaped entries, naming each with its shapes.
    `found` holds arrays, or shapes declared by a file's headers before its arrays are read."""
    problems = [f"missing {k} (expected {tuple(s)})" for k, s in expected.items() if k not in found]
    problems += [f"extra {k} {shape_of(v)}" for k, v in found.items() if k not in expected]
    problems += [
        f"{k} has shape {shape_of(found[k])}, expected {tuple(s)}"
        for k, s in expected.items()
        if k in found and shape_of(found[k]) != tuple(s)
    ]
    if problems:
        raise UserError(f"{where} does not fit the model: " + "; ".join(problems))


# ----------------------------------------------------------------------------- writing

def temporary_name(p: Path) -> str:
    """A fresh temporary's name beside `p`, named after it."""
    return str(p.parent / f".{p.name}.{secrets.token_hex(4)}.tmp")


def create_temporary(p: Path) -> tuple[int, str]:
    """A new temporary file beside `p` (mode 0666 less the umask): (fd, its path). Its name is
    registered before the file exists, so that a Ctrl-C at any moment removes it (common/shell.py)."""
    tmp = temporary_name(p)
    shell.temporaries.add(tmp)
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
    except BaseException:
        shell.temporaries.discard(tmp)
        raise


def writable_target(path: str, flag: str = "--save") -> Path:
    """Fail before training if `path` cannot be written: its directory must exist and take the
    very temporary file a save will create (os.access says yes to root even on a read-only mount,
    and a name can be too long only once the temporary's prefix and suffix are added), and what is
    there must be a regular file that is not read-only (a rename would replace a link itself, and
    a device or FIFO is no place for a file)."""
    p = Path(path)
    if not path:
        raise UserError(f"{flag} '': give a file name")
    if path == "-":  # a Unix tool's "standard output": here it would be a file named "-"
        raise UserError(f"{flag} -: this command writes a file, not standard output: give a file name")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):  # a newline would split every line that names it
        raise UserError(f"{flag} {path!r}: the name holds a control character (a newline, a tab): "
                        "give a plain file name")
    if path.endswith(("/", os.sep)):  # Path() drops the slash: newdir/ would become a file named newdir
        raise UserError(f"cannot save to {path}: it ends with '/', which names a directory; give a file name")
    try:
        if p.parent.exists() and not p.parent.is_dir():
            raise UserError(f"cannot save to {path}: {p.parent} is a file, not a directory")
        if not p.parent.is_dir():
            raise UserError(f"cannot save to {path}: directory {p.parent} does not exist; create it first")
        if p.is_dir():
            raise UserError(f"cannot save to {path}: it is a directory; give a file name")
        if p.is_symlink():
            raise UserError(f"cannot save to {path}: it is a symbolic link, which would be replaced, not followed; "
                            "give the path of a regular file")
        if p.exists():
            st = p.stat()
            if not stat.S_ISREG(st.st_mode):
                raise UserError(f"cannot save to {path}: it is not a regular file (a device, FIFO or socket); "
                                "give the path of a new file")
            if not st.st_mode & 0o222 or not os.access(p, os.W_OK):
                raise UserError(f"cannot save to {path}: the file is read-only; make it writable or choose "
                                "another path")
        fd, tmp = create_temporary(p)
        os.close(fd)
        os.unlink(tmp)
        shell.temporaries.discard(tmp)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise UserError(f"cannot save to {path}: directory {p.parent} is not writable ({err.strerror})") from None
        raise UserError(f"cannot save to {path} ({err.strerror}): choose another path") from None
    return p


def is_checkpoint(path: str) -> bool:
    """A checkpoint this project wrote: one it can read back (headers, config, characters) that
    carries its mark."""
    try:
        with open_checkpoint(path) as ckpt:
            return ckpt.marked
    except UserError:
        return False


is_checkpoint.kind = f"a checkpoint it wrote holds {MARK_KEY}"


def distinct_keys(pairs: list) -> dict:
    """A JSON object whose keys are all different (json.loads keeps the last of two, silently)."""
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"a key given twice: {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


def is_lesson_page(path: str) -> bool:
    """A page `compare lesson --html` wrote: its generator tag is in the first lines."""
    from common.outputs import without_comments

    with open(path, "rb") as f:
        head = without_comments(f.read(4096)).split(b"</head>", 1)[0]  # a tag of the page's head, not quoted
    return b'<meta name="generator" content="microgpt-jax compare lesson">' in head


is_lesson_page.kind = "a lesson page it wrote carries its generator tag"


# What each output path held when check_outputs looked, before any work: None (nothing there) or the
# file's identity (device, inode, size, modification time). atomic_write's last step replaces only
# that; a file that appeared or changed during the run is someone else's (the user, another run).
CHECKED: dict[str, tuple | None] = {}


def identity(p: Path) -> tuple | None:
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def check_outputs(outputs, inputs=()) -> None:
    """Each (flag, path or None, recognizer) a command will write, checked before any work: the
    path takes a file (`writable_target`), is none of the `inputs` (paths read by the command),
    is not given twice, and an existing file there carries this project's mark (the recognizer's
    `.kind` says which, for the refusal). What is there now is remembered (CHECKED) for the save."""
    seen = {}
    for flag, path, ours in outputs:
        if path is None:
            continue
        p = writable_target(path, flag)
        key = os.path.realpath(p)
        if key in seen:
            raise UserError(f"{seen[key]} and {flag} both name {path}: one would overwrite the other; "
                            "give two paths")
        seen[key] = flag
        CHECKED[key] = identity(p)
        if not p.exists():
            continue
        for source in filter(None, inputs):
            if os.path.exists(source) and os.path.samefile(p, source):
                raise UserError(f"{flag} {path} is the data file the run reads: choose another path")
        try:
            mine = ours(str(p))
        except OSError:
            mine = False
        if not mine:
            raise UserError(f"{flag} {path} exists without this project's mark ({ours.kind}); "
                            "it is left alone: remove it or choose another path")
    for flag, path, ours in outputs:  # last: the refusals above say more about such a path
        if path and ours is is_checkpoint and not path.lower().endswith(".npz"):  # an archive under any name
            raise UserError(f"{flag} {path}: a checkpoint is an .npz archive: give a path ending in .npz")
        if path and os.path.basename(path).lower() == ".npz":  # a hidden file named only by its extension
            raise UserError(f"{flag} {path}: give the file a name before .npz")


def before_final_step(path: str) -> None:
    """Called between the whole temporary file and the step that puts it at `path`: a test's hook
    writes a file there at this moment, to reproduce the race deterministically."""


def changed_during_the_run(path: str) -> UserError:
    return UserError(f"{path} was written by someone else while this run worked (another program, or another "
                     "run saving to the same path): it is left alone and nothing was saved; save to another path")


def atomic_write(path: str, write) -> None:
    """Call `write(file)` on a temporary file beside `path`, then put it at `path`: a reader (or an
    interrupted save) never sees half a file, and an old file is replaced only by a whole one. When
    check_outputs saw `path` before the work, only what it saw is replaced: a new file is linked into
    place (which fails if anything appeared there meanwhile), an old one is replaced only if it is
    still the very file that was checked; otherwise nothing is written and the run says so."""
    p = writable_target(path)
    key = os.path.realpath(p)
    tmp = None
    try:
        fd, tmp = create_temporary(p)
        try:  # a file it replaces keeps its permissions, from the first byte (a private checkpoint stays private)
            os.fchmod(fd, stat.S_IMODE(os.stat(p).st_mode))
        except FileNotFoundError:
            pass
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        before_final_step(path)
        if key in CHECKED and CHECKED[key] is None:
            try:
                os.link(tmp, p)  # atomic: fails if a file appeared at the path since it was checked
            except FileExistsError:
                raise changed_during_the_run(path) from None
            except OSError as err:  # a file system without hard links: the check just before the rename
                if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                    raise
                if identity(p) is not None:
                    raise changed_during_the_run(path) from None
                os.replace(tmp, p)
            else:
                os.unlink(tmp)
        else:
            if key in CHECKED and identity(p) != CHECKED[key]:
                raise changed_during_the_run(path)
            os.replace(tmp, p)
        CHECKED[key] = identity(p)  # a second save of this run replaces its own file
        shell.written.append(path)
    except BaseException as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):  # a disk that filled up, a directory that went read-only
            raise UserError(f"cannot save to {path} ({err.strerror or err}): nothing was written there") from None
        raise
    finally:
        shell.temporaries.discard(tmp)


def save(path: str, flat_params: dict, cfg: Config, chars: str) -> None:
    """Write atomically: a temporary file in the same directory, then a rename over `path`."""
    arrays = {k: np.asarray(v) for k, v in flat_params.items()}
    arrays[CONFIG_KEY] = np.array(json.dumps(dataclasses.asdict(cfg), sort_keys=True))
    arrays[CHARS_KEY] = np.array(chars)
    arrays[MARK_KEY] = np.array(MARK)
    atomic_write(path, lambda f: np.savez(f, **arrays))


# ----------------------------------------------------------------------------- reading

def open_regular(path: str, what: str):
    """`path` opened for reading, if it is a regular file: a FIFO, a terminal or /dev/zero would
    block or never end. Opened without blocking, so that a FIFO with no writer is refused at once."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist: pass --load with a file written by --save") from None
    except OSError as err:
        raise UserError(f"{what} {path} cannot be read ({err.strerror or err}): check the path") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, pipe, terminal or device)"
        written_by = "--save" if what == "checkpoint" else "`compare golden`" if what == "golden file" else "np.savez"
        raise UserError(f"{what} {path} is {kind}: give a file written by {written_by}")
    return os.fdopen(fd, "rb")


def npy_header(zf: zipfile.ZipFile, info, fail):
    """(shape, dtype, header length) of one .npy member, from its header alone: nothing it declares
    is allocated. `fail(what)` makes the UserError that names the file."""
    try:
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"npy format {version} is not written by numpy.savez for plain arrays")
            header_bytes = f.tell()
    except ValueError as err:
        raise fail(f"cannot be read ({info.filename}: {err}): save it again with --save") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise fail(f"is damaged ({err}): save it again with --save") from None
    if dtype.hasobject:
        raise fail("contains pickled objects, which are never loaded: save plain arrays")
    return tuple(shape), dtype, header_bytes


# What read_npz accepts (golden files and candidates): 4 GiB declared in all, far beyond a golden
# file of any model this project trains (the default's is under 1 MB); and a compressed member over
# 16 MiB may inflate at most 100 times (float arrays compress to about 90% of their size; only a
# member of repeated bytes inflates further, as a zip bomb does).
MAX_NPZ_BYTES = 2**32
MAX_INFLATION, INFLATION_FROM = 100, 2**24


def read_npz(path: str, what: str, fix: str) -> dict[str, np.ndarray]:
    """Every member of an .npz that this project did not write (a golden file, a candidate), through
    the checks a checkpoint gets: a regular file, a zip of .npy members only, each header read first
    and its declared size checked against what the member holds, numbers only (no strings, no
    pickles), the total and each member's inflation bounded. One UserError naming the file and
    ending in `fix` for anything else."""
    def fail(problem: str) -> UserError:
        return UserError(f"{what} {path} {problem}".replace("save it again with --save", fix))

    with open_regular(path, what) as file:
        try:
            if not zipfile.is_zipfile(file):
                raise fail("is not an .npz file (truncated, or another format): save it again with --save")
            zf = zipfile.ZipFile(file)
            infos = zf.infolist()
        except (OSError, zipfile.BadZipFile) as err:
            raise fail(f"is damaged ({err}): save it again with --save") from None
        with zf:
            total, members = 0, []
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise fail(f"is a zip but not an .npz (it holds {info.filename}): save it again with --save")
                name = info.filename[: -len(".npy")]
                shape, dtype, header_bytes = npy_header(zf, info, fail)
                if dtype.kind not in "fiub":
                    raise fail(f"is not of numbers: {name!r} holds {dtype.str} values: {fix}")
                declared = header_bytes + math.prod(shape) * dtype.itemsize
                if declared != info.file_size:
                    raise fail(f"is damaged: {name} declares {shape} {dtype} ({declared:,} bytes) but the member "
                               f"holds {info.file_size:,}: {fix}")
                inflated = info.compress_type != zipfile.ZIP_STORED and info.file_size > INFLATION_FROM
                if inflated and info.file_size > MAX_INFLATION * info.compress_size:
                    raise fail(f"is refused: {name} inflates from {info.compress_size:,} to {info.file_size:,} bytes, "
                               f"more than {MAX_INFLATION} times: {fix}")
                total += declared
                if total > MAX_NPZ_BYTES:
                    raise fail(f"declares more than {MAX_NPZ_BYTES // 2**30} GiB of arrays: {fix}")
                members.append((name, info))
            out = {}
            for name, info in members:
                try:
                    with zf.open(info) as f:
                        out[name] = np.lib.format.read_array(f, allow_pickle=False)
                except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
                    raise fail(f"is damaged ({err}): {fix}") from None
            return out


class open_checkpoint:
    """A checkpoint opened and vetted, its arrays not read yet: `.shapes` (declared by each .npy
    header), `.fields` (config or None), `.chars` (or None); `.params()` reads the arrays.

    Every member's header is read first and must declare plain floats whose size is what the
    member holds: a header that claims a far larger array than the file is refused here, where
    numpy would allocate the claimed size first (a MemoryError)."""

    def __init__(self, path: str):
        self.path = path
        self.file = open_regular(path, "checkpoint")
        try:
            self._open()
        except BaseException:
            self.file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if hasattr(self, "zip"):
            self.zip.close()
        self.file.close()

    def _fail(self, what: str) -> UserError:
        return UserError(f"checkpoint {self.path} {what}")

    def _open(self):
        try:
            if not zipfile.is_zipfile(self.file):
                raise self._fail("is not an .npz file (truncated, or another format): save it again with --save")
            self.zip = zipfile.ZipFile(self.file)
            infos = self.zip.infolist()
        except (OSError, zipfile.BadZipFile) as err:
            raise self._fail(f"is damaged ({err}): save it again with --save") from None
        strays = [i.filename for i in infos if not i.filename.endswith(".npy")]
        if strays:
            raise self._fail(f"is a zip but not an .npz (it holds {strays[0]}): save it again with --save")
        size = os.fstat(self.file.fileno()).st_size
        self.members, self.shapes = {}, {}
        for info in infos:
            name = info.filename[: -len(".npy")]
            shape, dtype, header_bytes = self._header(info)
            declared = header_bytes + math.prod(shape) * dtype.itemsize
            stored = info.compress_type == zipfile.ZIP_STORED
            if declared != info.file_size or (stored and info.file_size > size):
                raise self._fail(
                    f"is damaged: {name} declares {shape} {dtype} ({declared:,} bytes) but the file holds "
                    f"{info.file_size if not stored or info.file_size <= size else size:,}: save it again with --save"
                )
            if name in (CONFIG_KEY, CHARS_KEY, MARK_KEY):
                if dtype.kind != "U" or declared > MAX_META_BYTES:
                    raise self._fail(f"has an unreadable {name}: save it again with --save")
                if shape != () and name != MARK_KEY:  # str() of an array of letters has brackets and line breaks:
                    # it was called a control character among the characters (nineteenth hostile pass)
                    raise self._fail(f"has an unreadable {name} (an array of shape {shape} where one string "
                                     "belongs): save it again with --save")
            elif dtype.kind != "f":
                raise UserError(f"checkpoint {self.path}: {name} holds {dtype} values, expected floats")
            else:
                self.shapes[name] = shape
            self.members[name] = info
        self.fields = self.chars = None
        self.marked = MARK_KEY in self.members and str(self._read(MARK_KEY)) == MARK
        if CONFIG_KEY in self.members:
            try:
                self.fields = json.loads(str(self._read(CONFIG_KEY)), object_pairs_hook=distinct_keys)
            except (ValueError, RecursionError):  # not JSON, a key given twice, a number past Python's 4,300-digit
            # limit, or arrays nested past the recursion limit (eighteenth hostile pass)
                raise self._fail(f"has an unreadable {CONFIG_KEY}: save it again with --save") from None
            if not isinstance(self.fields, dict):
                raise self._fail(f"has a {CONFIG_KEY} that is not a JSON object: save it again with --save")
        if CHARS_KEY in self.members:
            self.chars = str(self._read(CHARS_KEY))

    def _header(self, info):
        """(shape, dtype, header length) from a member's .npy header, reading nothing else."""
        return npy_header(self.zip, info, self._fail)

    def _read(self, name: str) -> np.ndarray:
        try:
            with self.zip.open(self.members[name]) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise self._fail(f"is damaged ({err}): save it again with --save") from None

    def params(self) -> dict[str, np.ndarray]:
        """The parameters as float32, each finite once converted (1e300 in float64 is inf in float32)."""
        out = {}
        for name in self.shapes:
            with np.errstate(over="ignore"):  # the overflow is reported below, as NaN and inf are
                v = self._read(name).astype(np.float32)
            if not np.isfinite(v).all():
                raise UserError(f"checkpoint {self.path}: {name} holds NaN or inf as float32 (saved from a diverged "
                                "run, or values beyond float32's range?): train it again")
            out[name] = v
        return out


def load(path: str) -> tuple[dict[str, np.ndarray], dict | None, str | None]:
    """(flat params as float32, config fields or None, characters or None); refuses anything not a plain npz."""
    with open_checkpoint(path) as ckpt:
        return ckpt.params(), ckpt.fields, ckpt.chars
