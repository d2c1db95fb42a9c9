"""Several processes on JAX's multi-process runtime: the same run split over processes, on one
machine (`--processes N`, the way to try it and the way the tests run it) or on several hosts
(`--coordinator HOST:PORT --num-processes N --process-id I` on each).

A command given either set of flags is a launcher: it checks its input, starts its worker
processes (N local ones, or the one of this host) with MICROGPT_WORKER set, and waits for them.
A worker joins the others through jax.distributed.initialize before JAX's backend starts, with
CPU collectives over gloo; from then on jax.devices() lists every process's devices, the mesh of
common/devices.py spans them, and the train steps do not change: jit inserts the cross-process
sum of the gradients as it inserts the cross-device one. Every process reads the same names,
shuffles them with the same seed and initialises from the same key; each puts only its own rows
of a step on its devices (common/devices.py: place_batches). Process 0 prints and writes
(--save, --plot, --json); the others' standard output goes nowhere.

The launcher owns the faults: the first worker to fail (an error, a signal, XLA's abort) ends the
run; the others are stopped within STOP_S seconds; the line names that process and why, and the
exit code is 2 for bad input, 1 otherwise. A worker's stderr is read by the launcher: gloo's and
XLA's log lines are dropped, the project's own lines pass (process 0's) or make the failure's line.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from common import shell
from common.errors import UserError

WORKER = "MICROGPT_WORKER"  # the launcher's pid, in the environment of the processes it starts
MAX_PROCESSES = 64  # local processes: each is an interpreter of its own with JAX
STOP_S = 1.5  # a failed run's other workers: SIGTERM, then SIGKILL after this long (one blocked in a
# collective, in C++, never reaches its Python handler; one in Python ends in milliseconds, its temporaries removed)
GRACE_S = 0.3  # after the first failure seen, how long the others have to show theirs (see wait)
# A peer that stops answering (its host gone) is noticed by JAX's heartbeat in this many seconds;
# the launcher notices a local worker's end at once.
HEARTBEAT_S = 20
CONNECT_S = 120.0  # --connect-timeout's default
DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S*")
NOISE = re.compile(r"^(\[Gloo\]|[EWIF]\d{4} \d\d:\d\d:\d\d|\s+@ |\*\*\* |=== |external/|RPC: |\d+$|The tasks|"
                   r"absl::|I0000 |W0000 |E0000 |WARNING: All log messages|$)")


def add_flags(p) -> None:
    g = p.add_argument_group("several processes (docs/batches-and-devices.md)")
    g.add_argument("--processes", type=int, default=1,
                   help="start this many local processes on 127.0.0.1 and split the run over them; --devices "
                   "stays the count over all of them (default 1)")
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="on several hosts: process 0's address, the same on every host (with --num-processes "
                   "and --process-id)")
    g.add_argument("--num-processes", type=int, help="on several hosts: how many processes in all")
    g.add_argument("--process-id", type=int, help="on several hosts: this one's number, 0 to N-1 (0 prints and saves)")
    g.add_argument("--connect-timeout", type=float, default=None,
                   help=f"seconds a process waits for all the others to join (default {CONNECT_S:g}; only with "
                   "--processes or --coordinator)")


def is_worker() -> bool:
    """Started by a launcher: WORKER holds the pid of this process's parent. A value left in the user's
    shell (copied from a log, or inherited by a command a worker ran) is not the parent's pid, and is
    ignored: with "1" honoured, `--processes 2` ran as one process with advice about XLA_FLAGS, and a
    `--coordinator` run ended in XLA's 19-line abort (eighth hostile pass)."""
    return os.environ.get(WORKER, "") == str(os.getppid())


def count(args) -> int:
    """The number of processes the run is split over (1 without these flags)."""
    if getattr(args, "coordinator", None):
        return args.num_processes
    return getattr(args, "processes", 1) or 1


def process_id(args) -> int:
    return args.process_id if getattr(args, "coordinator", None) else 0


def shows(args) -> bool:
    """This process's output is what the user sees (process 0, or the only one): what only it shows
    (the sampled names, compare's check against one device) the other processes leave out. Each
    compiled and ran both for nothing, on the same cores: `compare --processes 2` of the tests took
    27.5 s of CPU from an empty cache, 24.0 s without (2026-12-08, a 2-core AMD EPYC, jax 0.12.0.1)."""
    return process_id(args) == 0


def address(text: str) -> tuple[str, int]:
    """HOST:PORT, or [IPV6]:PORT: an IPv6 address goes in brackets, whole ('[::1' was read as host ':',
    port 1, and shown as [:]:1 -- nineteenth hostile pass)."""
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        host = host[1:-1] if host.endswith("]") and ":" in host else ""
    elif ":" in host or "]" in host:
        host = ""
    if not host or "[" in host or "]" in host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"--coordinator {text}: give HOST:PORT, e.g. 10.0.0.1:8476 or [::1]:8476 (an IPv6 address "
                        "in brackets, a port from 1 to 65535)")
    return host, int(port)


def check_flags(args) -> None:
    """The several-process flags, before any process starts (and again in each worker)."""
    if not hasattr(args, "processes"):
        return
    n = args.processes
    if not 1 <= n <= MAX_PROCESSES:
        raise UserError(f"processes={n}: use 1 to {MAX_PROCESSES} local processes")
    given = [f for f in ("coordinator", "num_processes", "process_id") if getattr(args, f) is not None]
    if given and len(given) < 3:
        missing = [f"--{f.replace('_', '-')}" for f in ("coordinator", "num_processes", "process_id") if f not in
                   [g for g in given]]
        raise UserError(f"{', '.join(missing)} missing: on several hosts give --coordinator, --num-processes and "
                        "--process-id together (or --processes N for local processes)")
    if given and n > 1 and not is_worker():
        raise UserError("--processes starts local processes with their own coordinator: give either --processes or "
                        "--coordinator with --num-processes and --process-id")
    if given:
        address(args.coordinator)
        if not 1 <= args.num_processes <= 1024:
            raise UserError(f"num-processes={args.num_processes}: use 1 to 1024")
        if not 0 <= args.process_id < args.num_processes:
            raise UserError(f"process-id={args.process_id}: with --num-processes {args.num_processes} it is a number "
                            f"from 0 to {args.num_processes - 1}")
    if args.connect_timeout is not None and count(args) == 1 and not args.coordinator:  # it would wait for nobody
        raise UserError("--connect-timeout is how long several processes wait for each other: give it with "
                        "--processes or --coordinator, or drop it")
    if args.connect_timeout is None:
        args.connect_timeout = CONNECT_S
    if not 1 <= args.connect_timeout <= 3600:
        raise UserError(f"connect-timeout={args.connect_timeout:g}: use 1 to 3600 seconds")
    total = count(args)
    if total > 1:
        if args.devices % total:
            raise UserError(f"devices={args.devices} does not split over {total} processes: --devices counts the "
                            "devices of all processes; give a multiple of the process count")
        if args.no_jit:
            raise UserError("--no-jit runs op by op in one process: drop it, or drop the several-process flags")


# ----------------------------------------------------------------------------- the launcher

def launching(args) -> bool:
    """This command starts workers and waits for them (the several-process flags, and not a worker)."""
    return hasattr(args, "processes") and not is_worker() and (args.processes > 1 or args.coordinator is not None)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the coordinator binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    """Process 0's coordinator binds HOST:PORT; XLA's service crashes (SIGSEGV) where it cannot."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: a port in TIME_WAIT is free
            s.bind((host, port))
    except OSError as err:
        raise UserError(f"--coordinator {shown(host, port)}: process 0 cannot listen there ({err.strerror or err}): "
                        "choose a free port, or the address of this host") from None


def shown(host: str, port: int) -> str:
    """HOST:PORT as typed: an IPv6 address in brackets ([::1]:8476, not the ambiguous ::1:8476)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def die_with_parent() -> None:
    """In a worker before exec: the kernel sends SIGTERM if the launcher dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so that no worker is left behind blocked in a collective."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class Worker:
    def __init__(self, index: int, popen: subprocess.Popen, show: bool):
        self.index, self.popen, self.show = index, popen, show
        self.lines: list[str] = []  # its own lines (not gloo's or XLA's log), the last ones
        self.fatal: str | None = None  # XLA's fatal log line, if it aborted
        self.unhealthy: list[int] = []  # the processes JAX's heartbeat lost, as its log lists them
        self.listing = False  # reading that list: one task number a line
        self.joined = False  # it reached the others (JOINED_LINE)
        self.traceback = False  # it is writing a traceback: not shown, the launcher's line says why
        self.output_error: Exception | None = None  # writing process 0's lines failed (a closed pipe)
        self.ended_at: float | None = None  # when the launcher first saw it ended
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        if popen.stdout is not None:
            self.pump = threading.Thread(target=self.print_lines, daemon=True)
            self.pump.start()

    def print_lines(self) -> None:
        """Process 0's standard output, but gloo's "[Gloo] Rank ..." lines (written there by its C++)."""
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "surrogateescape")
            if line.startswith("[Gloo]"):
                continue
            done = SAVED.match(line.rstrip("\n"))
            if done:  # a failure after it says what is on disk (common/cli.py: saved_since)
                shell.written.append(done.group(1) or done.group(2))
            try:
                sys.stdout.write(line)
                sys.stdout.flush()
            except Exception as err:  # shell.OutputClosed, OutputFailed: the main thread reports it
                self.output_error = err
                return

    def read(self) -> None:
        for raw in self.popen.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line == JOINED_LINE:
                self.joined = True
                continue
            if line.startswith("F") and re.match(r"F\d{4} ", line) and self.fatal is None:
                self.fatal = line.split("] ", 1)[-1]
            if self.listing and line.strip().isdigit():
                self.unhealthy.append(int(line))
            self.listing = "tasks are unhealthy" in line or (self.listing and line.strip().isdigit())
            if NOISE.match(line):
                continue
            self.lines = (self.lines + [line])[-50:]
            self.traceback = self.traceback or line.startswith("Traceback (")  # its last line makes the failure's
            ending = re.match(rf"{re.escape(shell.prog)}(?: \S+)?: (error|interrupted|terminated)", line)
            if self.show and not self.traceback and not ending:  # the launcher's own line says those
                shell.say(line)


def launch(args, argv: list[str], module: str) -> int:
    """Start the workers of this machine, wait for them, and turn the first failure into one line."""
    n = count(args)
    from common.cli import check_device_count_flag

    check_device_count_flag()  # a malformed count is refused as in one process, before it is dropped
    env = dict(os.environ, **{WORKER: str(os.getpid())})
    env["XLA_FLAGS"] = DEVICE_COUNT_FLAG.sub("", env.get("XLA_FLAGS", "")).strip()  # the worker sets its own count
    if args.coordinator is None:  # local processes, with a coordinator of their own on the loopback address
        port = free_port()
        extra = [["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n), "--process-id", str(i)]
                 for i in range(n)]
        ids = list(range(n))
    else:
        extra, ids = [[]], [args.process_id]
        if args.process_id == 0:
            check_port_free(*address(args.coordinator))
    workers, popens = [], []
    try:
        for i, more in zip(ids, extra):  # every one started before any reader thread (a fork with threads)
            popen = subprocess.Popen([sys.executable, "-m", module, *argv, *more], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if i == 0 else subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=die_with_parent)
            shell.children.add(popen.pid)
            popens.append((i, popen))
        workers = [Worker(i, popen, show=(i == 0)) for i, popen in popens]
        return wait(workers, n, args.coordinator or f"127.0.0.1:{port}")
    finally:
        stop([popen for _, popen in popens if popen.poll() is None])
        for _, popen in popens:
            shell.children.discard(popen.pid)


def wait(workers: list[Worker], n: int, coordinator: str) -> int:
    """Until every worker ended well (0), or one did not: then the others are stopped and the cause
    is named (`cause`). compare's "different" verdict is exit 1 with no error line: passed through."""
    while True:
        for w in workers:
            if w.output_error is not None:  # nobody reads the output: as a closed pipe ends a one-process run
                stop([x.popen for x in workers if x.popen.poll() is None])
                raise w.output_error
        now = time.monotonic()
        codes = [w.popen.poll() for w in workers]
        for w, code in zip(workers, codes):
            if code is not None and w.ended_at is None:
                w.ended_at = now
        if any(code not in (None, 0) for code in codes):
            time.sleep(GRACE_S)  # the others fail a moment later in their next collective: seen, not blamed
            for w in workers:
                if w.popen.poll() is not None and w.ended_at is None:
                    w.ended_at = time.monotonic()
            running = [w.popen for w in workers if w.popen.poll() is None]
            stop(running)
            for w in workers:  # every line each wrote, process 0's output first
                w.reader.join(timeout=5)
                if hasattr(w, "pump"):
                    w.pump.join(timeout=5)
            zero = next((w for w in workers if w.index == 0), None)
            said = zero is not None and (own_lines(zero) or zero.fatal or zero.traceback)
            if zero is not None and zero.popen.returncode == 1 and not said:
                return 1  # compare's verdict "different" (every process judges it): process 0's lines say so
            first = cause(workers)
            return failed(first, first.popen.returncode, n, len(running), coordinator)
        if all(code == 0 for code in codes):
            for w in workers:
                w.reader.join()
                if hasattr(w, "pump"):
                    w.pump.join()  # process 0 has ended: its last line is in the pipe, however slow the reader
                if w.output_error is not None:
                    raise w.output_error
            return 0
        time.sleep(0.05)


def own_lines(w: Worker) -> list[str]:
    """Its lines that start with the program's name: its error, interrupted, terminated."""
    prefix = re.compile(rf"^{re.escape(shell.prog)}(?: \S+)?: ")
    return [line for line in w.lines if prefix.match(line)]


def cause(workers: list[Worker]) -> Worker:
    """The worker whose end ended the run: one that said why in a line of this project first, then the
    one seen ended first (a peer aborted by JAX's runtime, or failing in its next collective, ends
    after it), then the lowest number."""
    ended = [w for w in workers if w.popen.returncode not in (None, 0) and w.ended_at is not None]
    return min(ended, key=lambda w: (not own_lines(w), w.ended_at, w.index))


def stop(popens: list[subprocess.Popen]) -> None:
    """SIGTERM (a worker removes its temporaries and ends), then SIGKILL after STOP_S."""
    for popen in popens:
        try:
            popen.send_signal(signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + STOP_S
    for popen in popens:
        try:
            popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def failed(w: Worker, code: int, n: int, stopped: int, coordinator: str) -> int:
    """The one line for the first worker that failed, and the launcher's exit code."""
    prefix = re.compile(rf"^{re.escape(shell.prog)}(?: \S+)?: (?:error: )?")
    own = own_lines(w)
    if w.fatal and not w.joined:  # JAX aborts (no exception) where it cannot reach the coordinator
        how = "within the --connect-timeout" if "DEADLINE_EXCEEDED" in w.fatal else f"({w.fatal[:200]})"
        shell.say(f"{shell.prog}: error: process {w.index} of {n} could not reach the coordinator {coordinator} {how} "
                  f"(all {n} processes must start, each with its own --process-id): check the address, and that "
                  "every process runs; nothing was saved")
        return 2
    lost = sorted(set(w.unhealthy) - {w.index})
    if w.fatal and lost and not own:  # the heartbeat's verdict: the peer it lost is the cause, not this one
        who = ", ".join(map(str, lost))
        shell.say(f"{shell.prog}: error: process {who} of {n} stopped answering JAX's heartbeat: "
                  "its host is gone, or the process is stopped or hung; the others were stopped; "
                  + (f"already saved: {', '.join(shell.written)}" if shell.written else "nothing was saved"))
        return 1
    if own:
        why = prefix.sub("", own[-1])
    elif w.fatal:
        why = f"JAX's runtime aborted it: {w.fatal[:300]}"
    elif code < 0:
        why = f"it was killed by {signal.Signals(-code).name}"
    else:
        why = f"it ended with exit {code}" + (f": {w.lines[-1][:300]}" if w.lines else "")
    who = f"process {w.index} of {n}"
    rest = f"; the other {stopped} were stopped" if stopped > 1 else "; the other was stopped" if stopped else ""
    saved = "" if "saved" in why else f"; already saved: {', '.join(shell.written)}" if shell.written else \
        "; nothing was saved"
    shell.say(f"{shell.prog}: error: {who}: {' '.join(why.split())}{rest}{saved}")
    return 2 if code == 2 else 1


# ----------------------------------------------------------------------------- a worker

def join(args) -> None:
    """In a worker, before JAX's backend starts: join the other processes (a no-op for one process)."""
    if not (is_worker() and getattr(args, "coordinator", None)):
        return
    import jax

    if DEVICE_COUNT_FLAG.search(os.environ.get("XLA_FLAGS", "")):
        raise UserError("XLA_FLAGS sets --xla_force_host_platform_device_count: under several processes --devices "
                        "gives each process its share; drop it from XLA_FLAGS")
    host, port = address(args.coordinator)
    where = shown(host, port)  # an IPv6 address keeps its brackets
    n, i = args.num_processes, args.process_id
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", args.devices // n)
    if host in ("127.0.0.1", "localhost", "::1"):
        loopback_gloo()
    try:
        jax.distributed.initialize(
            coordinator_address=where, num_processes=n, process_id=i,
            coordinator_bind_address=where if i == 0 else None,  # only that address listens
            initialization_timeout=int(args.connect_timeout), heartbeat_timeout_seconds=HEARTBEAT_S,
        )
    except Exception as err:  # JAX's own error types moved between versions; the message says which
        text = " ".join(str(err).split())
        if "DEADLINE_EXCEEDED" in text or "timed out" in text.lower():
            raise UserError(f"process {i} of {n} could not reach the coordinator {where} within "
                            f"{args.connect_timeout:g} s (all {n} processes must start, each with its own "
                            "--process-id): check the address and that every process runs") from None
        raise UserError(f"process {i} of {n} could not join the others through {where} ({text[:200]}): "
                        "check --coordinator, or choose another port") from None
    JOINED[0] = True
    sys.stderr.write(JOINED_LINE + "\n")
    sys.stderr.flush()
    agree(args, n, i)
    if i != 0:  # only process 0 prints
        sys.stdout = open(os.devnull, "w")


# What each process may hold for itself: where it writes (only process 0 does), how long it waits, how
# it reaches the coordinator and its cache. Every other flag, and the names read, make the run: the
# processes must agree on them, or each trains its own copy of the "replicated" weights (another
# --lr: exit 0 and a wrong checkpoint), waits for a step the other never takes (another --steps: a
# hang), or fails in device_put (another --seed: a line cut from a NumPy print; eighth hostile pass).
PER_PROCESS = {"process_id", "save", "plot", "json", "connect_timeout", "coordinator", "data", "no_cache", "processes"}
NAMES_READ: dict[str, str] = {}  # common/cli.py's prepare_run: {"names": a digest of the names the run trains on}


def run_facts(args) -> dict:
    facts = {k: v for k, v in vars(args).items() if k not in PER_PROCESS}
    return {k: str(v) for k, v in sorted(facts.items())} | NAMES_READ


def agree(args, n: int, i: int) -> None:
    """Every process publishes its run (flags and names) through the coordinator's key-value store
    and reads every other's; a difference is one line naming the flags, exit 2, in every process."""
    import json

    from jax._src import distributed

    client = distributed.global_state.client
    mine = run_facts(args)
    client.key_value_set(f"microgpt/run/{i}", json.dumps(mine))
    for j in range(n):
        if j == i:
            continue
        theirs = json.loads(client.blocking_key_value_get(f"microgpt/run/{j}", int(args.connect_timeout * 1000)))
        differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if differ:
            what = "; ".join("the names read (--data)" if k == "names" else
                             f"--{k.replace('_', '-')} {shell.visible(str(mine.get(k)))} here, "
                             f"{shell.visible(str(theirs.get(k)))} on process {j}" for k in differ[:3])
            leave_together()  # every process finds a difference (not all runs alike: each differs from one), and
            # process 0, which holds the coordinator, must not leave while another still reads from it
            raise UserError(f"started for another run than process {j} ({what}): start every process with the same "
                            "flags and the same names file")  # the launcher's line names this process


# process 0's lines that name a file written whole: the trainers' and compare's "saved PATH", compare's
# "saved PATH (pure's weights)", "plot written to PATH", "verdict written to PATH"
SAVED = re.compile(r"^saved (.*?)(?: \([^()]*'s weights\))?$|^(?:plot|verdict) written to (.*)$")
JOINED = [False]
JOINED_LINE = "microgpt: joined"  # a worker's word to its launcher (not shown)


def leave_together() -> None:
    """A worker whose work is done waits for the others at JAX's shutdown barrier: process 0 holds
    the coordinator, and a process that loses it before its own end is aborted by JAX's runtime."""
    if JOINED[0]:
        import jax

        JOINED[0] = False
        jax.distributed.shutdown()


def loopback_gloo() -> None:
    """Gloo listens on the address of the machine's host name unless told one (a LAN address, where
    the host name resolves to it); local processes talk over 127.0.0.1 only."""
    import functools

    from jax._src.lib import _jax

    make = _jax.make_gloo_tcp_collectives
    if not isinstance(make, functools.partial):
        _jax.make_gloo_tcp_collectives = functools.partial(make, hostname="127.0.0.1")


def only_process_zero(args) -> None:
    """A process other than 0 writes nothing: its --save, --plot and --json are dropped (on another
    host, its launcher does not check them either: the paths are process 0's host's)."""
    if process_id(args) != 0:
        for flag in ("save", "plot", "json"):
            if hasattr(args, flag):
                setattr(args, flag, None)


def local(tree):
    """Arrays replicated over the processes' mesh as this process's own copies (NumPy), for what runs
    in each process alone (the sampler: the same program, and the same names, as on one device)."""
    import jax
    import numpy as np

    return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) and not x.is_fully_addressable else x,
                        tree)
