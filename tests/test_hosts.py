"""Several processes on JAX's multi-process runtime (common/hosts.py), on this machine over the loopback
address: the lockstep run and its verdicts, one checkpoint by process 0, the faults. Real processes:
a launcher and its workers are what a user starts."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from common import checkpoint, hosts
from common.config import Config
from compare import impls
from conftest import ROOT, SHORT_RUN, assert_user_error, cli, run_module

SPLIT = ("--devices", "4", "--batch-size", "8")
PAIR = ("--impls", "pure,nnx_port")  # the quick tier's pair over processes


def test_compare_over_two_processes_gives_every_verdict_and_one_checkpoint(tmp_path):
    """`compare --processes 2 --devices 4 --batch-size 8` on pure and nnx_port (the two frameworks
    furthest apart; all three pairs over processes: the --full test of 2 x 2 against 1 x 4 devices),
    each split over 2 processes x 2 devices, bitwise equal; pure against one device of process 0
    alone (gloo's sum across processes, another order: within PROCESSES_ULPS; the failing twin is
    the next test); --json and --save written once, by process 0, and the checkpoint loads into all
    three implementations."""
    out_json, target = tmp_path / "v.json", tmp_path / "w.npz"
    r = run_module("compare", *SHORT_RUN, *SPLIT, *PAIR, "--processes", "2", "--num-samples", "4",
                   "--json", str(out_json), "--save", str(target), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[Gloo]" not in r.stdout + r.stderr and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith("one initialisation converted into pure, nnx_port")
    alone = next(ln for ln in lines if ln.startswith("  pure over 2 processes ~ pure on 1 device: "))
    assert "equal to float32 rounding" in alone or "bitwise equal" in alone, alone
    assert lines[-2].startswith("verdict: bitwise equal: parameters after every one of 30 steps") and \
        "over 2 processes against 1 device: " in lines[-2], lines[-2]
    verdict = json.loads(out_json.read_text())
    assert verdict["processes"] == 2 and verdict["exit_code"] == 0
    levels = ("bitwise equal", "equal to float32 rounding", "different")  # the run's level is the weaker of the two
    split = verdict["against_one_device"]["same_state_chunks"]["level"]
    assert verdict["level"] == max(verdict["pairs_level"], split, key=levels.index), verdict
    assert verdict["against_one_device"]["same_state_chunks"]["level"] in ("bitwise equal", "equal to float32 rounding")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "w.npz"]  # once, no temporaries left
    flat, fields, chars = checkpoint.load(str(target))
    cfg = Config(**fields)
    for name in impls.NAMES:  # every implementation takes it back
        impl = impls.get(name)
        again = impl.to_flat(impl.from_flat(flat, cfg))
        assert all(np.array_equal(np.asarray(again[k]), flat[k]) for k in flat), name


def test_the_verdict_against_one_device_bites(tmp_path):
    """Failing twin of the above: the same run with the bound lowered below what the split's rounding
    makes (a sitecustomize on the workers' path sets PROCESSES_ULPS to 0.01 before compare imports it):
    the line against one device says different, and the run exits 1."""
    (tmp_path / "sitecustomize.py").write_text("import compare.tolerances\ncompare.tolerances.PROCESSES_ULPS = 0.01\n")
    r = run_module("compare", *SHORT_RUN, *SPLIT, *PAIR, "--processes", "2", "--num-samples", "4", cwd=tmp_path,
                   env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})  # the programs of the test above
    assert r.returncode == 1 and r.stderr == "", (r.stdout, r.stderr)  # a verdict, not a crash of process 0
    assert "pure over 2 processes ~ pure on 1 device: different: parameters of every 10-step chunk" in r.stdout
    assert "over 2 processes against 1 device: different" in r.stdout.splitlines()[-1], r.stdout


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def listening(pids: list[int]) -> list[str]:
    """The local addresses the processes listen on (TCP, v4 and v6), as /proc/net/tcp writes them."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    found.append(cols[1])
    return found


LOOPBACK = ("0100007F:", "0000000000000000FFFF00000100007F:", "00000000000000000000000001000000:")


def start_run(tmp_path, *extra: str) -> subprocess.Popen:
    """A long `compare` over 2 processes, saving at its end (5000 steps: its programs are its own, the
    learning rate's schedule is in them)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "compare", "--steps", "5000", "--log-every", "10", *SPLIT, *PAIR,
                             "--processes", "2", "--save", str(tmp_path / "w.npz"), *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def first_step(p: subprocess.Popen, joined: bool = False) -> None:
    """Until the run prints its first step (the workers train), or with `joined` its first line (the
    workers have joined, and compile)."""
    for line in p.stdout:
        if joined or line.startswith("step ") and line.split()[1].isdigit():  # a step's row, not the header
            return
    raise AssertionError(p.stderr.read())


@pytest.mark.parametrize("when", ["compiling", pytest.param("training", marks=pytest.mark.full)])
def test_a_killed_process_ends_the_run_in_bounded_time_with_one_line(tmp_path, when):
    """SIGKILL to process 1 mid-run, while the processes compile (the quick tier: no program to
    compile first) or train (in a collective): the launcher stops process 0 and says which one ended
    and how, in one line, exit 1, within STOP_S and a poll; no checkpoint, no process left. On the way:
    every socket the workers listen on is on the loopback address (the coordinator, and gloo's)."""
    p = start_run(tmp_path)
    try:
        first_step(p, joined=(when == "compiling"))
        workers = children_of(p.pid)
        assert len(workers) == 2, workers
        addresses = listening(workers)
        assert addresses and all(a.startswith(LOOPBACK) for a in addresses), addresses
        victim = next(w for w in workers if "--process-id\x001\x00" in open(f"/proc/{w}/cmdline").read())
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        _, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 1 and took < hosts.STOP_S + hosts.GRACE_S + 2, (p.returncode, took)
    assert err == "compare: error: process 1 of 2: it was killed by SIGKILL; the other was stopped; nothing was saved\n"
    assert not list(tmp_path.iterdir())
    assert not [w for w in workers if os.path.exists(f"/proc/{w}") and "Z" not in open(f"/proc/{w}/stat").read()]


@pytest.mark.full  # the quick tier keeps the killed process; 4-8 s each
def test_ctrl_c_stops_every_process(tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group): the launcher and both workers end, one line,
    130, nothing saved."""
    p = start_run(tmp_path)
    try:
        first_step(p)
        workers = children_of(p.pid)
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == -signal.SIGINT and err == "compare: interrupted; nothing was saved\n", (p.returncode, err)
    time.sleep(0.5)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}") and "Z" not in open(f"/proc/{w}/stat").read()]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["--processes", "0"], "processes=0: use 1 to 64"),
    (["--processes", "65"], "processes=65: use 1 to 64"),
    (["--processes", "3", "--devices", "4", "--batch-size", "4"], "devices=4 does not split over 3 processes"),
    (["--processes", "2", "--no-jit"], "does not split over 2 processes"),  # --devices 1
    (["--processes", "2", "--devices", "2", "--batch-size", "2", "--no-jit"], "--no-jit runs op by op in one process"),
    (["--coordinator", "127.0.0.1:1234"], "--num-processes, --process-id missing"),
    (["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"], "give HOST:PORT"),
    (["--coordinator", "h:70000", "--num-processes", "2", "--process-id", "0"], "give HOST:PORT"),
    (["--coordinator", "[::1", "--num-processes", "2", "--process-id", "0"], "--coordinator [::1: give HOST:PORT"),
    (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], "process-id=2: with --num-processes 2 it "
                                                                            "is a number from 0 to 1"),
    (["--coordinator", "h:1", "--num-processes", "0", "--process-id", "0"], "num-processes=0: use 1 to 1024"),
    (["--processes", "2", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "0"],
     "give either --processes or --coordinator"),
    (["--processes", "2", "--devices", "2", "--batch-size", "2", "--connect-timeout", "0"], "connect-timeout=0"),
    (["--connect-timeout", "5"], "--connect-timeout is how long several processes wait"),  # was ignored, silently
])
def test_bad_process_flags_are_one_line_before_any_process_starts(argv, message):
    assert_user_error(cli("pure", "--steps", "5", *argv), message)


def test_a_malformed_device_count_is_refused_by_the_launcher_too(monkeypatch):
    """The launcher drops XLA_FLAGS' device count for its workers (each sets its own share); a malformed
    one was refused in one process and accepted with --processes (eighth hostile pass)."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=abc")
    assert_user_error(cli("pure", "--steps", "5", "--processes", "2", "--devices", "2", "--batch-size", "2"),
                      "--xla_force_host_platform_device_count=abc is not a device count")


def test_a_worker_is_a_child_of_its_launcher_not_a_variable_in_the_shell(monkeypatch):
    """MICROGPT_WORKER=1 left in a user's shell made `--processes 2` run as one process (with advice
    about XLA_FLAGS) and a --coordinator run end in XLA's abort: a worker is the child of the launcher
    whose pid the variable holds, and anything else is a command as typed."""
    args = type("Args", (), dict(processes=2, coordinator=None))()
    for value, worker in (("1", False), (str(os.getpid()), False), (str(os.getppid()), True)):
        monkeypatch.setenv(hosts.WORKER, value)
        assert hosts.is_worker() is worker and hosts.launching(args) is not worker, value


def coordinated(tmp_path, *extra: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """Two processes started by hand with --coordinator, as on two hosts, each with its own extra flags."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    popens = [subprocess.Popen([sys.executable, "-m", "pure", "--steps", "30", "--devices", "2", "--batch-size", "2",
                                "--num-samples", "1", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                                "--process-id", str(i), "--connect-timeout", "60", *more], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i, more in enumerate(extra)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in popens]


def test_hosts_started_for_different_runs_are_one_line_each(tmp_path):
    """Hosts given different training flags: another --lr on process 1 ended exit 0 with a wrong
    checkpoint (each process trained its own copy of the replicated weights), another --steps hung,
    another --seed failed in a line cut from a NumPy print (eighth hostile pass). Every process
    compares its run with the others' through the coordinator before any work: one line naming the
    flag on each host, exit 2, nothing saved. (With the same flags such a run trains: the launcher's
    runs above go through the same comparison.)"""
    r0, r1 = coordinated(tmp_path, ("--save", str(tmp_path / "w.npz")), ("--lr", "0.05", "--seed", "7"))
    assert (r0.returncode, r1.returncode) == (2, 2), (r0.stderr, r1.stderr)
    assert r0.stderr == ("pure: error: process 0 of 2: started for another run than process 1 (--lr 0.01 here, 0.05 "
                         "on process 1; --seed 42 here, 7 on process 1): start every process with the same flags and "
                         "the same names file; nothing was saved\n"), r0.stderr
    assert "process 1 of 2: started for another run than process 0 (--lr 0.05 here, 0.01 on process 0;" in r1.stderr
    assert not list(tmp_path.iterdir())


# What process 0 logs (jax 0.12.0.1) when JAX's heartbeat loses process 1 (SIGSTOP), then aborts.
HEARTBEAT_LOG = """microgpt: joined
E1207 14:45:22.237132   16808 coordination_service.cc:1518] [8967139057329278114] Use error polling to propagate \
the following error to all tasks: UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):
1
The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. preemption, eviction) \
to debug further. [type.googleapis.com/tensorflow.CoordinationServiceError='']
=== Source Location Trace: ===
external/xla+/xla/pjrt/distributed/coordination/coordination_service.cc:232

F1207 14:45:22.238114   16819 client.h:86] Terminating process because the JAX distributed service detected \
fatal errors. This most likely indicates that another task died; see the other task logs for more details.
1
The tasks have crashed. Check the task logs for an earlier error.
*** Check failure stack trace: ***
    @     0x7feb8e5181b4  absl::lts_20260526::log_internal::LogMessage::SendToLog()
"""


def test_a_peer_lost_by_the_heartbeat_is_the_one_named(capsys, monkeypatch):
    """A host that freezes: JAX's heartbeat aborts process 0, whose log lists the lost task. The line
    named process 0, the healthy one, with the cause cut at "UNAVAILABLE: The following" (eighth
    hostile pass); it names the process the heartbeat lost. Its twin: a log without the list names
    the process that aborted."""
    import io

    class Ended:
        stdout = None
        returncode = -6

        def __init__(self, log):
            self.stderr = io.BytesIO(log.encode())

        def poll(self):
            return self.returncode

    for log, says in ((HEARTBEAT_LOG, "pure: error: process 1 of 2 stopped answering JAX's heartbeat: its host is "
                                      "gone, or the process is stopped or hung; the others were stopped; nothing "
                                      "was saved\n"),
                      (HEARTBEAT_LOG.replace("\n1\n", "\n"), "pure: error: process 0 of 2: JAX's runtime aborted it")):
        w = hosts.Worker(0, Ended(log), show=False)
        w.reader.join()
        monkeypatch.setattr(hosts.shell, "prog", "pure")
        assert hosts.failed(w, -6, 2, 1, "127.0.0.1:1") == 1
        assert capsys.readouterr().err.startswith(says)


@pytest.mark.full  # JAX's heartbeat takes its time: 10-20 s
def test_a_frozen_process_is_named_by_the_launcher(tmp_path):
    """The heartbeat's verdict through a real launcher: process 1 stopped (SIGSTOP) mid-training."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "pure", "--steps", "50000", "--devices", "2", "--batch-size", "2",
                          "--processes", "2", "--log-every", "10"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first_step(p)
        victim = next(w for w in children_of(p.pid) if "--process-id\x001\x00" in open(f"/proc/{w}/cmdline").read())
        os.kill(victim, signal.SIGSTOP)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 1 and err.startswith("pure: error: process 1 of 2 stopped answering JAX's heartbeat"), err


@pytest.mark.full  # the quick tier keeps the killed process; 4-8 s each
def test_a_coordinator_port_in_use_and_one_never_reached_are_one_line(tmp_path):
    """Process 0 where the port is taken: XLA's service crashed (SIGSEGV), now one line before any
    worker starts. Process 1 of 2 whose coordinator never comes: JAX aborts after the timeout, and the
    launcher says so in one line, exit 2."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_module("pure", "--steps", "5", "--devices", "2", "--batch-size", "2", "--coordinator",
                       f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == (f"pure: error: --coordinator 127.0.0.1:{port}: process 0 cannot listen "
                                              "there (Address already in use): choose a free port, or the address of "
                                              "this host\n"), r.stderr
    r = run_module("pure", "--steps", "5", "--devices", "2", "--batch-size", "2", "--coordinator",
                   f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1", "--connect-timeout", "1",
                   cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith(f"pure: error: process 1 of 2 could not reach the coordinator "
                                                     f"127.0.0.1:{port} within the --connect-timeout"), r.stderr
    assert r.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


@pytest.mark.full  # the quick tier keeps the killed process; 4-8 s each
def test_workers_end_with_their_launcher(tmp_path):
    """SIGKILL to the launcher (no handler runs): its workers get SIGTERM from the kernel (the
    parent-death signal) and end; none is left training or blocked in a collective."""
    p = start_run(tmp_path)
    try:
        first_step(p)
        workers = children_of(p.pid)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
            time.sleep(0.1)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert not [w for w in workers if os.path.exists(f"/proc/{w}")], workers
    assert not list(tmp_path.iterdir())


def test_a_worker_refuses_xla_flags_device_count(monkeypatch):
    """The launcher drops XLA_FLAGS' device count for its workers; a worker started by hand with it is
    refused in one line (the two counts would disagree), before it joins anyone."""
    monkeypatch.setenv(hosts.WORKER, str(os.getppid()))
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    args = type("Args", (), dict(coordinator="127.0.0.1:1", num_processes=2, process_id=1, devices=2,
                                 connect_timeout=1.0))()
    with pytest.raises(hosts.UserError, match="XLA_FLAGS sets --xla_force_host_platform_device_count"):
        hosts.join(args)


@pytest.mark.full  # two runs a batch size, about 30 s
@pytest.mark.parametrize("batch", ["8", "32"])
def test_two_processes_of_two_devices_against_one_process_of_four(tmp_path, batch):
    """The same 30-step compare as 2 processes x 2 devices and as 1 process x 4 forced host devices:
    both bitwise pair by pair, and the two checkpoints (pure's weights) within PROCESSES_ULPS of each
    other; not bitwise: gloo adds the processes' partial sums, one process sums its 4 devices in its
    own order (measured after 1000 steps of makemore's names: docs/equality.md)."""
    from compare.tolerances import PROCESSES_ULPS
    from compare.verdict import Verdict

    runs = {}
    for name, extra, env in (("two", ["--processes", "2"], {}),
                             ("one", [], {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})):
        target = tmp_path / f"{name}.npz"
        r = run_module("compare", *SHORT_RUN, "--devices", "4", "--batch-size", batch, "--num-samples", "4",
                       "--save", str(target), *extra, cwd=tmp_path, env=env)
        assert r.returncode == 0 and "verdict: bitwise equal: every pair" in r.stdout, (r.stdout, r.stderr)
        runs[name] = checkpoint.load(str(target))[0]
    verdict = Verdict(bound_ulps=PROCESSES_ULPS)
    verdict.add(runs["one"], runs["two"])
    assert verdict.level in ("bitwise equal", "equal to float32 rounding"), verdict.line()


@pytest.mark.full  # a 2-process run, 5 s
def test_process_zero_failing_at_its_save_is_named_not_the_peer_it_leaves(tmp_path):
    """Process 0 fails alone at the end (here a planted error in the save, as a full disk would be):
    process 1, left at the shutdown barrier, is then aborted by JAX's runtime. The launcher named
    process 1 ("killed by SIGABRT", exit 1); the cause is process 0's own line, exit 2 (review)."""
    (tmp_path / "sitecustomize.py").write_text(
        "import common.checkpoint, common.errors\n\n\ndef save(*a, **k):\n"
        "    raise common.errors.UserError('cannot save to w.npz (planted): nothing was written there')\n\n\n"
        "common.checkpoint.save = save\n")
    r = run_module("compare", *SHORT_RUN, *SPLIT, "--processes", "2", "--num-samples", "4", "--save",
                   str(tmp_path / "w.npz"), cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    said = "compare: error: process 0 of 2: cannot save to w.npz (planted)"
    assert r.returncode == 2 and r.stderr.startswith(said), r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "w.npz").exists()


def test_an_ipv6_coordinator_is_echoed_as_typed():
    """`--coordinator [::1]:P` with the port taken said `::1:P` (which reads as host ::1:P, no port)."""
    assert hosts.shown("::1", 8476) == "[::1]:8476" and hosts.shown("10.0.0.1", 8476) == "10.0.0.1:8476"


def test_an_ipv6_coordinator_is_whole_in_brackets_or_refused():
    """'[::1' was read as host ':' and port 1, shown as [:]:1 and called an address nothing can listen on
    (eighteenth hostile pass): an address with colons is bracketed whole, and anything else is malformed."""
    assert hosts.address("[::1]:8476") == ("::1", 8476) and hosts.address("h.example:1") == ("h.example", 1)
    for text in ("[::1", "[::1]", "::1:8476", "[1.2.3.4]:5", "a]:5", "[[::1]]:5", "[::1]:0"):
        with pytest.raises(hosts.UserError, match=r"give HOST:PORT, e\.g\. 10\.0\.0\.1:8476 or \[::1\]:8476"):
            hosts.address(text)


def test_check_over_processes_whose_scratch_file_cannot_be_written_is_one_line(monkeypatch):
    """check --processes runs `compare --processes N --json <scratch>`: under `ulimit -f 1` that write
    failed, and a right port was "different" with a /tmp path in the row, exit 1 (twentieth hostile
    pass). The scratch file is check's, not the port's: one line naming the folder, exit 2. (The
    command is faked here: the run itself is the --full test of check over processes.)"""
    import subprocess as sp

    from common.errors import UserError
    from compare import check

    def no_room(argv, **kwargs):
        out = argv[argv.index("--json") + 1]
        return sp.CompletedProcess(argv, 2, None, f"compare: error: cannot save to {out} (File too large): nothing "
                                                  "was written there; nothing was saved\n")

    monkeypatch.setattr(sp, "run", no_room)
    with pytest.raises(UserError, match=r"verdict could not be written in a scratch folder under .* \(File too "
                                        r"large\): free space there"):
        check.process_rows("flax_port", "pure", 2)
