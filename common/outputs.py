"""The files `compare` writes besides checkpoints (plots, JSON), each carrying a mark of this project.

An existing file is replaced only when its content proves this project wrote it (see
checkpoint.check_outputs): a JSON object with the key `MARKER_KEY`, a plot whose metadata names
`CREATOR` as its creator (a PNG tEXt chunk, the SVG's Dublin Core creator, the PDF's /Creator).
A file without the mark, including one written by this project before the mark existed, is left
alone: the check cannot tell it from a user's own file, and a refusal costs a `rm`, a wrong guess
a user's file.

A plot's format follows its extension (.png, .svg, .pdf); any other extension, or none, is refused
before any work, since matplotlib would otherwise pick one of its own or write PNG bytes under it.
"""

import contextlib
import json
import os
import re
import struct
from pathlib import Path

from common.errors import UserError

CREATOR = "microgpt-jax compare"
MARKER_KEY = "written_by"  # a JSON verdict's marker: {"written_by": CREATOR, ...}
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
MAX_JSON_BYTES = 2**24  # a verdict is a few KiB, bench's figures a few tens; a larger file is not ours
HEAD_BYTES = 2**16  # where the mark sits: a PNG's chunks before the image data, an SVG's <metadata>
PDF_TAIL_BYTES = 2**16  # matplotlib writes the PDF's Info dictionary last, just before the xref table
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def plot_format(path: str) -> str:
    """The format a --plot path asks for, by its extension; refused in one line otherwise."""
    fmt = PLOT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"--plot {path}: end the name in .png, .svg or .pdf, the formats a plot is written in")
    return fmt


# ----------------------------------------------------------------------------- the marks, recognised

def png_texts(head: bytes) -> dict[str, str]:
    """The tEXt chunks of a PNG's first bytes, read chunk by chunk up to the image data."""
    texts, at = {}, len(PNG_SIGNATURE)
    while at + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[at: at + 8])
        if kind in (b"IDAT", b"IEND"):
            break
        body = head[at + 8: at + 8 + length]
        if kind == b"tEXt" and b"\0" in body:
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        at += 12 + length  # length, type, data, CRC
    return texts


SVG_CREATOR = re.compile(rb"<dc:creator>\s*<cc:Agent>\s*<dc:title>" + re.escape(CREATOR.encode()) + rb"</dc:title>")


COMMENT = re.compile(rb"<!--.*?(-->|\Z)", re.S)  # an XML/HTML comment, or one left open to the end


def without_comments(markup: bytes) -> bytes:
    """Markup with its comments taken out: a user's file that quotes our mark in a comment is not ours."""
    return COMMENT.sub(b"", markup)


def is_plot(path: str) -> bool:
    """A plot this project wrote, in any of the three formats: its metadata names CREATOR."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        if head.startswith(PNG_SIGNATURE):
            return png_texts(head).get("Creator") == CREATOR
        if head.startswith(b"<?xml") and b"<svg" in head:
            return SVG_CREATOR.search(without_comments(head)) is not None
        if head.startswith(b"%PDF-"):
            f.seek(0, 2)
            f.seek(max(0, f.tell() - PDF_TAIL_BYTES))
            return b"/Creator (" + CREATOR.encode() + b")" in f.read()
    return False


is_plot.kind = f"a plot it wrote names {CREATOR!r} as creator in its metadata"


def is_json(path: str) -> bool:
    """A JSON object this project wrote: it carries MARKER_KEY with CREATOR."""
    with open(path, "rb") as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        return False
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError too; arrays nested past the recursion limit
        return False
    # the marker as the first key, as write_json puts it and docs/safety.md says: a user's file that
    # merely mentions it further down is not ours
    return isinstance(payload, dict) and next(iter(payload), None) == MARKER_KEY and payload[MARKER_KEY] == CREATOR


is_json.kind = f'a JSON file it wrote starts with "{MARKER_KEY}": "{CREATOR}"'


# ----------------------------------------------------------------------------- writing, marked

def write_json(path: str, payload: dict) -> None:
    """`payload` as indented JSON, the marker key first, written atomically."""
    from common.checkpoint import atomic_write

    marked = {MARKER_KEY: CREATOR} | payload
    atomic_write(path, lambda f: f.write(json.dumps(marked, indent=2).encode()))


def temporary_folder(prefix: str) -> str:
    """tempfile.mkdtemp, or one line naming why no folder for temporary files could be made (a /tmp
    that is full, or a file-size limit of 0, ended in tempfile's traceback: nineteenth hostile pass)."""
    import tempfile

    try:
        return tempfile.mkdtemp(prefix=prefix)
    except OSError as err:
        raise UserError(f"no folder for temporary files can be made ({err.strerror or err}): free space in "
                        f"{os.environ.get('TMPDIR') or '/tmp'}, point TMPDIR at a writable folder, or raise the file "
                        "size limit") from None


@contextlib.contextmanager
def scratch_folder(prefix: str):
    """A temporary folder for the length of a block, removed after it, and by the signal handlers
    should one end the process first (shell.temporaries)."""
    import shutil

    from common import shell

    folder = temporary_folder(prefix)
    shell.temporaries.add(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shell.temporaries.discard(folder)


def pyplot():
    """matplotlib.pyplot drawing into files (Agg), whatever the environment asks of matplotlib: a
    MPLBACKEND it does not know ended a run in a traceback after training, before its plot and
    checkpoint; an unusable MPLCONFIGDIR, or a HOME that is not a writable folder, made it write a
    /tmp/matplotlib-* folder that it removes only at the interpreter's exit, which the commands skip
    (common/shell.py: leave), or create the missing HOME. Then a folder of ours serves while
    matplotlib starts (it reads its configuration and builds its font list then), removed after."""
    import shutil

    from common import shell

    os.environ.pop("MPLBACKEND", None)  # the files are drawn by Agg: no backend of the user's is used
    wanted = os.environ.get("MPLCONFIGDIR")
    if wanted and not (os.path.isdir(wanted) and os.access(wanted, os.W_OK)):
        del os.environ["MPLCONFIGDIR"]
    home = os.environ.get("HOME", "")
    scratch = None
    if "MPLCONFIGDIR" not in os.environ and not (os.path.isabs(home) and os.path.isdir(home)
                                                 and os.access(home, os.W_OK)):
        scratch = temporary_folder("microgpt-matplotlib-")
        shell.temporaries.add(scratch)  # a Ctrl-C while matplotlib starts removes it too
        os.environ["MPLCONFIGDIR"] = scratch
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
            shell.temporaries.discard(scratch)
            del os.environ["MPLCONFIGDIR"]
    return plt


def write_figure(path: str, fig) -> None:
    """Lay a matplotlib figure out and write it in the format of its extension, marked as ours,
    atomically; the figure is closed either way."""
    import matplotlib

    from common.checkpoint import atomic_write

    plt = pyplot()

    try:
        fmt = plot_format(path)
        fig.tight_layout()
        # the same figure, the same bytes: no creation date, and the SVG's clip-path ids hashed with
        # a fixed salt rather than a random one (the lesson page embeds the SVG and must rebuild
        # byte for byte)
        metadata = {"Creator": CREATOR} | ({"Date": None} if fmt == "svg" else {"CreationDate": None}
                                           if fmt == "pdf" else {})
        with matplotlib.rc_context({"svg.hashsalt": "microgpt-jax"}):
            atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=100, metadata=metadata))
    finally:
        plt.close(fig)
