"""How a program of this project behaves in a shell: Ctrl-C, a closed pipe, a failing standard output.

`install()` runs from common/__init__.py, before numpy or jax load, and only when the running program
is one of this project's `python -m` entry points (never inside pytest or a program that imports
`common`), so that even a Ctrl-C during the imports ends in one line.

- Ctrl-C ends the program at once: any file being written is removed (the old one was never
  touched, see checkpoint.atomic_write), stdout is flushed, one line goes to stderr, and the
  process ends by SIGINT itself, so the shell reports 130 and a script running it stops too.
  Why not Python's default KeyboardInterrupt: it is raised in whatever Python code runs next in
  the main thread, and two places of JAX lose it.
  (1) jax runs `_xla_gc_callback` from `gc.callbacks` at every garbage collection; an exception
      raised inside a gc callback cannot propagate, Python prints "Exception ignored in:
      <function _xla_gc_callback>" and drops it, and the run went on to the end with exit 0.
  (2) jaxlib waits for an XLA compilation in C++ while checking for signals: the
      KeyboardInterrupt leaves that wait, but the compilation goes on in XLA's thread pool.
      Python then finalizes, destroys the CPU client, and joins the pool: the interrupted
      program first waited for the compilation to finish (seconds, minutes for a large one),
      then the compile thread built its executable on the freed client's devices and crashed
      (SIGSEGV in xla::ifrt::SingleDeviceSharding::Create, seen in a core dump).
  So the handler does not raise: it ends the process from wherever it runs, without unwinding
  or finalizing, which neither a gc callback nor a running XLA thread can get in the way of.
- A closed pipe (`python -m pure | head -1`) ends the program quietly, by SIGPIPE as `cat` or
  `yes` do: the shell reports 141. Standard output is line-buffered, so a run stops at the next
  line it prints once the reader is gone.
- Any other failure to write standard output (`> /dev/full`) is one line on stderr and exit 2.
- Text that the output's encoding cannot hold (a name with é under PYTHONIOENCODING=ascii, the
  lesson's box-drawing characters under latin-1) is written escaped (`\xe9`, `\u2502`), never fatal:
  standard output and standard error both use errors=ESCAPE. A file name that is not UTF-8
  (Linux allows any bytes) reaches Python as surrogate escapes and is shown as its bytes, `o\xff.npz`
  as `ls -b` shows it, not as the surrogate `o\udcff.npz` that names no byte the user can type.
- Colour (`has_colour`) only on a terminal that shows it: a TTY, no NO_COLOR, TERM not "dumb".
"""

import codecs
import io
import os
import signal
import sys
import time

ESCAPE = "microgpt-escape"  # the error handler of this project's standard output and error


def escape(err: UnicodeEncodeError):
    """What an output's encoding cannot hold, escaped: a byte of a non-UTF-8 file name (a surrogate
    escape, U+DC80-U+DCFF) as that byte, \\xff; any other character as backslashreplace writes it."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    text = err.object[err.start:err.end]
    return "".join(f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF
                   else f"\\x{ord(ch):02x}" if ord(ch) <= 0xFF
                   else f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}" for ch in text), err.end


codecs.register_error(ESCAPE, escape)


def visible(text: str) -> str:
    """`text` with its control characters (ESC, BEL, C1) written as escapes, \\x1b: an error line
    quotes a path or a file's key as given, and raw, ESC [2J would clear the user's screen."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
                   if ord(ch) < 0x10000 and not 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)

EXIT = os._exit  # the process's own: a port's code finds os._exit fenced (compare/impls.py)

# Files being written right now (checkpoint.atomic_write adds its temporary before creating it),
# removed by an interrupt; and the files written whole, which the interrupt's line names.
temporaries: set[str] = set()
children: set[int] = set()  # processes a command started and waits for: a signal that ends it ends them
written: list[str] = []
prog = None  # the program's name for the interrupt's line; common.cli updates it per subcommand
prog_pinned = False  # while a command runs another inside it (the lesson's run), its own name stays
installed = False


class OutputClosed(Exception):
    """Standard output's reader has gone (EPIPE)."""


class OutputFailed(Exception):
    """Standard output cannot be written (a full disk, an I/O error); carries the OSError."""


def entry_point() -> str | None:
    """The program's name when it is `python -m <package>` (the package) or `python -m
    <package>.<module>` (the module's dotted name, e.g. compare.nnx_styles) of this project, else None."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is None or not spec.parent or not getattr(main, "__file__", None):
        return None
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    package = os.path.join(root, spec.name.split(".")[0])  # a package of this project, at any depth below it
    if not os.path.abspath(main.__file__).startswith(package + os.sep):  # (.venv's pytest is under root too)
        return None
    return spec.parent if spec.name.endswith(".__main__") else spec.name


class _Stdout(io.RawIOBase):
    """File descriptor 1, with its failures told apart from any other OSError."""

    def __init__(self):
        super().__init__()
        self.failed = False

    def writable(self):
        return True

    def fileno(self):
        return 1

    def isatty(self):
        return os.isatty(1)

    def write(self, b):
        if self.failed:  # the error was reported once; what is left in the buffer is dropped
            return len(b)
        try:
            return os.write(1, b)
        except BrokenPipeError:
            self.failed = True
            raise OutputClosed() from None
        except OSError as err:
            self.failed = True
            raise OutputFailed(err) from None


def install() -> None:
    """Take over SIGINT and standard output for an entry point of this project (see the docstring)."""
    global prog, installed
    name = entry_point()
    if name is None or installed:
        return
    prog, installed = name, True
    reopen_closed_descriptors()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when started with SIGINT ignored
        signal.signal(signal.SIGINT, on_interrupt)
    for sig in ENDING:  # `kill`, a CI runner's timeout, a closed terminal, Ctrl-\
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, on_terminate)
    old = sys.stdout
    try:
        is_fd_1 = old is not None and old.fileno() == 1
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        is_fd_1 = False
    if is_fd_1:
        old.flush()
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(_Stdout()), encoding=old.encoding, errors=ESCAPE,
                                      line_buffering=True)
    else:
        escape_unencodable(sys.stdout)
    escape_unencodable(sys.stderr)


def reopen_closed_descriptors() -> None:
    """A process started with standard input, output or error closed (`>&-`, `2>&-`): put /dev/null
    there, as daemons do. Python then has no sys.stdout (None: the first print raised, a traceback
    after a whole run) or no sys.stderr (argparse's usage error exited 1 rather than 2), and the
    lowest free descriptor is the closed one, so the next file opened (a checkpoint being written)
    would become standard output, and every line printed would go into it. Output nobody reads is
    discarded; the exit code stays the run's."""
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, mode)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                      errors=ESCAPE, line_buffering=True)
    if sys.stderr is None:
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors=ESCAPE, line_buffering=True)


def escape_unencodable(stream) -> None:
    """What `stream`'s encoding cannot hold is written escaped from now on, not raised."""
    try:
        stream.reconfigure(errors=ESCAPE)
    except (AttributeError, ValueError, OSError):  # not a TextIOWrapper, or closed
        pass


def has_colour(stream) -> bool:
    """Colour only on a terminal that shows it: a TTY, without NO_COLOR (https://no-color.org) set to
    anything non-empty, and with a TERM other than "dumb" (an Emacs shell, a CI log)."""
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM", "") != "dumb"


def say(line: str, raw: bool = False) -> None:
    """One line on stderr; `raw` writes straight to the descriptor, as a signal handler must (the
    main thread may be halfway through a write to sys.stderr, whose buffer it would meet again)."""
    try:
        if raw:
            os.write(2, (line + "\n").encode(errors="replace"))
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed too: nowhere left to say it
        pass


def remove_temporaries() -> None:
    """The registered temporary files, and folders (a command's scratch folder) with what they hold;
    first the child processes that write there are ended."""
    import shutil

    asked = []
    for pid in list(children):  # asked first, all at once, so that a child can remove its own temporaries
        try:
            os.kill(pid, signal.SIGTERM)
            asked.append(pid)
        except OSError:
            pass
    deadline = time.monotonic() + 1.0  # one second for all of them (a worker blocked in a collective never
    for pid in asked:  # reaches its handler: 64 of them took 64 s one after another)
        try:
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.02)
        except (OSError, ChildProcessError):
            pass
    for tmp in list(temporaries):
        try:
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.unlink(tmp)
        except OSError:
            pass


def die(sig: int) -> None:
    """End the process by `sig`, as a program without a handler would, without finalizing anything."""
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    EXIT(128 + sig)  # only if the signal were blocked


ENDING = {signal.SIGTERM: "terminated", signal.SIGHUP: "hung up", signal.SIGQUIT: "quit"}


def on_terminate(signum, frame) -> None:
    """SIGTERM, SIGHUP (the terminal closed) or SIGQUIT: as Ctrl-C, the temporary file of a save in
    progress removed, then the end by that signal."""
    signal.signal(signum, signal.SIG_DFL)
    remove_temporaries()
    done = f"already saved: {', '.join(written)}" if written else "nothing was saved"
    say(f"{prog}: {ENDING.get(signum, 'stopped')}; {done}", raw=True)
    die(signum)


def on_interrupt(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends it at once, whatever this is doing
    remove_temporaries()
    try:
        sys.stdout.flush()
    except Exception:  # a closed or full output, or a print that this signal interrupted halfway
        pass
    done = f"already saved: {', '.join(written)}" if written else "nothing was saved"
    say(f"{prog}: interrupted; {done}", raw=True)
    die(signal.SIGINT)


def leave(code: int) -> None:
    """How an entry point ends once its work is done: both streams flushed, then out at once
    (os._exit), without the interpreter's teardown. That teardown took about 0.3 s here (jax's
    backends and the modules finalized: 2026-12-07, this 2-core AMD EPYC, Python 3.12.1, jax
    0.12.0.1) and nothing of this project needs it (every file is closed and every child waited for
    before main returns); and CPython puts SIGINT and SIGTERM back to their defaults during it, so a
    signal in that window ended a run that had finished and reported its work as killed, with no
    line (exit 143). Outside an entry point (tests calling run_cli), a plain sys.exit."""
    if not installed:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # run_cli reported a failing stdout already; a closed stderr has no reader
            pass
    EXIT(code)


def output_closed() -> int:
    """The reader of stdout has gone: end quietly by SIGPIPE (in-process, as in tests: return 141)."""
    if not installed:
        return 128 + signal.SIGPIPE
    remove_temporaries()
    die(signal.SIGPIPE)
    return 128 + signal.SIGPIPE
