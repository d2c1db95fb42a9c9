"""Names data and the character tokenizer, shared by every implementation.

Three sources: the default list shipped inside the `names` package (US census first names,
works offline), a local file with one name per line (`--data PATH`), or makemore's names.txt
downloaded once into a user cache directory and checked against its sha256 (`--data makemore`).
"""

import errno
import hashlib
import http.client
import os
import random
import re
import stat
import threading
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common.errors import UserError

# names.txt at makemore commit 988aa59, named by its full hash: a raw URL pins the file only then
MAKEMORE_URL = "https://raw.githubusercontent.com/karpathy/makemore/988aa59e4d8fefa526d06f3b453ad116258398d4/names.txt"
MAKEMORE_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
MAKEMORE_BYTES = 228_145  # its size: a download is read up to one byte past it


def cache_dir() -> Path | None:
    """Per-user cache (never inside the repo): $MICROGPT_CACHE, else $XDG_CACHE_HOME/microgpt-jax,
    else $HOME/.cache/microgpt-jax; None when there is none of them. XDG_CACHE_HOME and HOME count
    only as absolute paths (the XDG spec ignores a relative one): Python's expanduser turns an
    empty HOME into "/", and the cache would have gone to /.cache, or, relative, into the current
    directory; a HOME that is not a folder counts as none (it was created, with .cache below it). No
    guess from the password database either: a command with no cache directory
    compiles afresh, and `--data makemore` asks for one (`require_cache_dir`)."""
    if os.environ.get("MICROGPT_CACHE"):
        if not os.path.isabs(os.environ["MICROGPT_CACHE"]):  # it would land in the current directory
            raise UserError(f"MICROGPT_CACHE={os.environ['MICROGPT_CACHE']} is not an absolute path: set it to one, "
                            "or unset it (the cache never goes into the current directory)")
        return Path(os.environ["MICROGPT_CACHE"])
    xdg, home = os.environ.get("XDG_CACHE_HOME", ""), os.environ.get("HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "microgpt-jax"
    if os.path.isabs(home) and os.path.isdir(home):  # a HOME that does not exist is not made
        return Path(home) / ".cache" / "microgpt-jax"
    return None


def require_cache_dir() -> Path:
    found = cache_dir()
    if found is None:
        raise UserError("--data makemore needs a cache directory, and HOME is empty, unset, relative or not a "
                        "folder: set MICROGPT_CACHE (or XDG_CACHE_HOME) to an absolute path, or pass --data with a "
                        "local copy")
    return found


# ----------------------------------------------------------------------------- sources

def default_names() -> list[str]:
    """The first names of the `names` package, lowercased and deduplicated, in a fixed order."""
    import names  # a dependency that ships the census lists as plain files

    folder = Path(names.__file__).parent
    seen = set()
    for fname in ("dist.female.first", "dist.male.first"):
        for line in (folder / fname).read_text(encoding="ascii").splitlines():
            if line.split():
                seen.add(line.split()[0].lower())
    return sorted(seen)


def control_character(line: str) -> str | None:
    """The first character of a line that must not be a letter, said with what it is, or None: a
    control character (ESC, BEL, a tab, NUL, ...; Unicode's line and paragraph separators too), or
    an invisible format character (Unicode category Cf: the bidirectional overrides such as U+202E,
    a byte-order mark inside the text, zero-width spaces and joiners). As letters they would be
    learned, then sampled and printed raw to the terminal, where ESC starts an escape sequence and
    U+202E turns the rest of the line around; a format character is a letter no one can see."""
    for c in line:
        category = unicodedata.category(c)
        if category in ("Cc", "Zl", "Zp", "Cf"):
            name = CONTROL_NAMES.get(c) or unicodedata.name(c, "")
            what = "an invisible format character" if category == "Cf" else "a control character"
            return f"{what} ({name + ', ' if name else ''}U+{ord(c):04X})"
    return None


CONTROL_NAMES = {"\x1b": "ESC", "\x07": "BEL", "\t": "TAB", "\x00": "NUL", "\x08": "BS", "\x7f": "DEL",
                 "\x0b": "VT", "\x0c": "FF", "\x85": "NEL"}


# Every character control_character names (categories Cc, Zl, Zp) but the line ends \n and \r.
ANY_CONTROL = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


def _parse_names(raw: bytes, where: str) -> list[str]:
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (Notepad writes one) is not a letter
    except UnicodeDecodeError as err:
        raise UserError(
            f"{where} is not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start}): "
            "save it as UTF-8 with one name per line"
        ) from None
    # Lines end at \n, \r\n or \r only (str.splitlines would also break at \x0b, \x1c, \x85, ..., and
    # the line numbers would no longer be an editor's); a control character left in a line is refused.
    # Whitespace around a name is dropped, as before (a trailing tab or \r is harmless).
    lines = text.split("\n") if "\r" not in text else re.split(r"\r\n|\r|\n", text)
    docs = list(map(str.strip, lines))
    # only then line by line: 64 MiB of blank lines took 30 s so, 7 s without
    if ANY_CONTROL.search(text) or any(unicodedata.category(c) == "Cf" for c in set(text)):
        for number, name in enumerate(docs, 1):
            bad = control_character(name)
            if bad:
                raise UserError(f"{where} line {number} holds {bad}: names are letters; remove it and save again")
    docs = [d for d in docs if d]
    if not raw:
        raise UserError(f"{where} is empty: give a file with one name per line")
    if not docs:
        raise UserError(f"{where} has no usable names (only blank lines): give one name per line")
    return docs


# A data file is read whole into memory: makemore's names.txt is 228 KB, and a file 280 times its
# size is still accepted; anything larger is far more than this exercise trains on.
MAX_DATA_BYTES = 64 * 2**20


def read_bounded(path: str, where: str) -> bytes:
    """The bytes of a regular file of at most MAX_DATA_BYTES, in one open (no race between a check
    and the read). A FIFO, a terminal or /dev/zero would block or never end: refused, and opened
    without blocking so that a FIFO with no writer is refused at once."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UserError(f"{where} does not exist: pass --data with a file of names, one per line") from None
    except OSError as err:
        advice = "check its permissions" if err.errno in (errno.EACCES, errno.EPERM) else "check the path"
        raise UserError(f"{where} cannot be read ({err.strerror}): {advice}") from None
    st = os.fstat(fd)
    mode = st.st_mode
    if stat.S_ISREG(mode) and st.st_size > MAX_DATA_BYTES:
        os.close(fd)
        raise UserError(f"{where} is larger than {MAX_DATA_BYTES // 2**20} MiB, more than this exercise trains on: "
                        "give a smaller list of names")
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise UserError(f"{where} is a directory: pass --data with a file of names, one per line")
        raise UserError(f"{where} is not a regular file (a FIFO, pipe, terminal or device, which may never end): "
                        "save the names to a file and pass that")
    with os.fdopen(fd, "rb") as f:
        try:
            raw = f.read(MAX_DATA_BYTES + 1)
        except OSError as err:
            raise UserError(f"{where} cannot be read ({err.strerror}): check the file") from None
    if len(raw) > MAX_DATA_BYTES:
        raise UserError(f"{where} is larger than {MAX_DATA_BYTES // 2**20} MiB, more than this exercise trains on: "
                        "give a smaller list of names")
    return raw


def read_names_file(path: str) -> list[str]:
    return _parse_names(read_bounded(path, f"data file {path}"), f"data file {path}")


DOWNLOAD_S = 120  # the whole download's limit: urlopen's timeout bounds each read, and a server sending
# a byte a second held a run for hours (eighth hostile pass); makemore's list takes under a second


def download(url: str) -> bytes:
    """At most one byte past makemore's size (a server sending without end was read until memory ran
    out), within DOWNLOAD_S seconds in all, the connection and the headers included: a server that
    answers its headers a line at a time held urlopen itself past any read's timeout (review of the
    eighth hostile pass). The transfer runs in a thread the caller stops waiting for at the deadline."""
    done, given_up = {}, threading.Event()

    def fetch():
        try:
            done["raw"] = receive(url, given_up)
        except BaseException as err:  # handed to the caller, which raises it as its own
            done["error"] = err

    worker = threading.Thread(target=fetch, name="makemore download", daemon=True)
    worker.start()
    worker.join(DOWNLOAD_S)
    if worker.is_alive():
        given_up.set()  # it stops at its next receive; a process that exits does not wait for it
        raise UserError(f"download of makemore's names.txt from {url} took more than {DOWNLOAD_S} s: check "
                        "the network or pass --data with a local copy")
    if "error" in done:
        raise done["error"]
    return done["raw"]


def receive(url: str, given_up: threading.Event) -> bytes:
    chunks, size = [], 0
    with urllib.request.urlopen(url, timeout=30) as resp:
        read = resp.read1 if hasattr(resp, "read1") else resp.read  # what one receive brings, not a full buffer
        while size <= MAKEMORE_BYTES and not given_up.is_set():
            chunk = read(min(65536, MAKEMORE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
        if getattr(resp, "length", None) and len(raw) <= MAKEMORE_BYTES:  # a body cut short of its length
            raise http.client.IncompleteRead(raw, resp.length)
    return raw


def makemore_names(url: str | None = None) -> list[str]:
    """makemore's names.txt, downloaded once, verified, then read from the user cache."""
    url = url or os.environ.get("MICROGPT_MAKEMORE_URL", MAKEMORE_URL)
    target = require_cache_dir() / "names.txt"
    if target.is_file():
        cached = read_bounded(str(target), f"cached {target}")
        if hashlib.sha256(cached).hexdigest() == MAKEMORE_SHA256:
            return _parse_names(cached, f"cached {target}")
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "file":  # read as --data is: a FIFO there blocked urlopen itself, without end
            raw = read_bounded(urllib.request.url2pathname(parts.path), f"MICROGPT_MAKEMORE_URL's file {url}")
        else:
            raw = download(url)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:  # a cut-off body too
        reason = getattr(err, "reason", err)
        raise UserError(
            f"download of makemore's names.txt from {url} failed ({reason}): "
            "check the network or pass --data with a local copy"
        ) from None
    if len(raw) > MAKEMORE_BYTES:
        raise UserError(f"download from {url} is larger than makemore's names.txt ({MAKEMORE_BYTES:,} bytes): "
                        "nothing was cached; check MICROGPT_MAKEMORE_URL, or pass --data with a local copy")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MAKEMORE_SHA256:
        raise UserError(
            f"download from {url} is corrupt (sha256 {digest[:12]}…, expected {MAKEMORE_SHA256[:12]}…): "
            "nothing was cached; retry or pass --data with a local copy"
        )
    from common.checkpoint import atomic_write

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"cannot create the cache directory {target.parent} ({err.strerror}): set MICROGPT_CACHE"
        ) from None
    atomic_write(str(target), lambda f: f.write(raw))  # a reader never sees half a file
    return _parse_names(raw, f"download from {url}")


def data_file(source: str | None) -> str | None:
    """The file a `--data` value reads, if any (the default list lives inside a package)."""
    if source is None:
        return None
    return str(require_cache_dir() / "names.txt") if source == "makemore" else source


def load_names(source: str | None) -> list[str]:
    """`None`: the offline default; "makemore": the cached download; else a path (a file named
    "default" is a file: the word once meant the default list and shadowed it)."""
    if source is None:
        return default_names()
    if source == "makemore":
        return makemore_names()
    return read_names_file(source)


# ----------------------------------------------------------------------------- tokenizer

class Tokenizer:
    """Characters sorted; BOS is one past the last character, as in microgpt."""

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.bos = len(self.chars)
        self.vocab_size = len(self.chars) + 1
        self._index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_names(cls, docs: list[str]) -> "Tokenizer":
        return cls("".join(docs))

    def encode(self, text: str) -> list[int]:
        bad = sorted({c for c in text if c not in self._index})
        if bad:
            raise UserError(
                f"{text!r} has characters outside the vocabulary ({''.join(bad)!r}): "
                f"use only {self.chars!r}"
            )
        return [self._index[c] for c in text]

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            if int(i) == self.bos:
                break
            out.append(self.chars[int(i)])
        return "".join(out)


class Batch(NamedTuple):
    """One name, padded to block_size so that every step has the same shapes (one compile).
    Stacked, the same fields hold B names (B, T), or a run's steps (num_steps, T) or (num_steps, B, T)."""

    inputs: np.ndarray  # (T,) int32 token ids, BOS first
    targets: np.ndarray  # (T,) int32 next-token ids
    mask: np.ndarray  # (T,) float32, 1 on the name's real positions


def encode_name(name: str, tok: Tokenizer, block_size: int) -> Batch:
    """[BOS] + name + [BOS], truncated to block_size positions as microgpt does, then padded."""
    tokens = [tok.bos] + tok.encode(name) + [tok.bos]
    n = min(block_size, len(tokens) - 1)
    inputs = np.full(block_size, tok.bos, np.int32)
    targets = np.zeros(block_size, np.int32)
    mask = np.zeros(block_size, np.float32)
    inputs[:n] = tokens[:n]
    targets[:n] = tokens[1 : n + 1]
    mask[:n] = 1.0
    return Batch(inputs, targets, mask)


def training_batches(docs: list[str], tok: Tokenizer, block_size: int, num_steps: int, seed: int,
                     batch_size: int = 1) -> Batch:
    """The names of a whole run, stacked: shuffled with `seed`, then taken in that order,
    `batch_size` names a step (the list starts over when it runs out). One name a step is
    (num_steps, T), as microgpt trains; B names a step are (num_steps, B, T), and with B = 1
    the names and arrays are exactly those of one name a step."""
    order = list(docs)
    random.Random(seed).shuffle(order)
    rows = [encode_name(order[i % len(order)], tok, block_size) for i in range(num_steps * batch_size)]
    batches = Batch(*(np.stack(col) for col in zip(*rows)))  # (num_steps * B, T)
    if batch_size == 1:
        return batches
    return Batch(*(col.reshape(num_steps, batch_size, block_size) for col in batches))
