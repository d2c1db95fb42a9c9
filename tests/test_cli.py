"""The trainers' command lines as a user meets them: a run, and every bad input of the CLI."""

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from common import data
from conftest import SHORT_RUN, assert_user_error, cli, run_module


def run(module: str, *args: str):
    """(exit code, stdout, stderr): pure as a user runs it, in an interpreter of its own; the others
    through the same entry point in this process (an interpreter costs jax's import, seconds)."""
    if module == "pure":
        r = run_module(module, *args)
        return r.returncode, r.stdout, r.stderr
    return cli(module, *args)


@pytest.mark.parametrize("module", ["pure", "flax_port"])
def test_a_short_run_prints_losses_names_and_timings(module):
    code, out, err = run(module, *SHORT_RUN)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{module}: 5163 names, vocab 27, 4192 parameters")
    assert [ln[:18] for ln in lines if ln.startswith("step")] == [
        "step    1 /   30 |", "step   10 /   30 |", "step   20 /   30 |", "step   30 /   30 |"
    ]
    assert sum(ln.startswith("sample ") for ln in lines) == 20
    assert lines[-1].startswith(f"{module} [jit]: compile ") and "us/step" in lines[-1]


def test_help_lists_the_flags():
    r = run_module("pure", "--help")
    assert r.returncode == 0
    for flag in ("--steps", "--seed", "--data", "--temperature", "--num-samples", "--no-jit", "--save", "--lr"):
        assert flag in r.stdout


def bad_input_cases(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_bytes(b"\n \n")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"emma\n\x80\x81\n")
    return [
        (["--data", str(tmp_path / "missing.txt")], "does not exist"),
        (["--data", str(empty)], "is empty"),
        (["--data", str(blank)], "no usable names"),
        (["--data", str(binary)], "not UTF-8"),
        (["--data", str(tmp_path)], "is a directory"),
        (["--n-embd", "10", "--n-head", "4"], "not divisible by n_head"),
        (["--n-embd", "0"], "n_embd=0, n_head=4: both must be 1 or more"),  # it said "0 is not divisible by 4"
        (["--steps", "3", "sample"], "sample is a command: put it first"),
        (["--block-size", "1"], "block_size=1 is below 2"),
        (["--steps", "0"], "train for at least 1 step"),
        (["--temperature", "0"], "temperature=0.0"),
        (["--temperature", "-1"], "temperature=-1.0"),
        (["--num-samples", "0"], "at least 1 name"),
        (["--steps", "ten"], "invalid int value"),
        (["--steps", "\uff12"], "invalid int value"),  # a fullwidth 2: Python's int reads it, ran 2 steps
        (["--seed", "\u0664\u0662"], "invalid seed"),  # Arabic-Indic 42: was seed 42
        (["--lr", "\uff10.\uff10\uff11"], "invalid float value"),  # fullwidth 0.01: ran at 0.01
        (["--temperature", "\u0660.\u0665"], "invalid float value"),  # Arabic-Indic 0.5: sampled at 0.5
        (["--seed", "99999999999999999999"], "out of range"),
        (["--seed", "-1"], "out of range"),
        (["--lr", "1e39"], "float32 can hold"),
        (["--lr", "1e-46"], "float32 can hold"),  # rounds to 0 in float32: it trained with a rate of 0
        (["--lr", "nan"], "lr=nan"),
        (["--temperature", "1e39"], "float32 can hold"),
        (["--save", str(tmp_path / "no" / "dir" / "w.npz")], "does not exist"),
        (["--save", "-"], "writes a file, not standard output"),  # it wrote a file named "-"
        (["--save", str(tmp_path / "weights")], "give a path ending in .npz"),  # an archive under any name
        (["--save", str(tmp_path / ".npz")], "give the file a name before .npz"),  # was a hidden file
        (["--save", str(tmp_path / "a\nb.npz")], "holds a control character"),  # a two-line "saved" line
        (["--steps", "2", "--steps=3"], "--steps given twice (2, then 3): give it once"),  # ran 3, silently
        (["--lr", "0.01", "--step", "2", "--lr=0.02"], "--lr given twice (0.01, then 0.02)"),
    ]


# the bad inputs that pure's test also runs as real processes: a refusal of ours and one of argparse's
AS_PROCESSES = ("does not exist", "invalid int value")


@pytest.mark.parametrize("module", ["pure", "flax_port"])
def test_every_bad_input_is_one_line_and_exit_2(module, tmp_path):
    """Every case through the entry point in this process; for pure, two of them again as real
    processes (a user's view of the exit code and the one line; tests/test_shell.py runs every entry
    point so): an interpreter costs jax's import, about a second each."""
    for args, message in bad_input_cases(tmp_path):
        runs = [cli(module, *args)] + [run(module, *args)] * (module == "pure" and message in AS_PROCESSES)
        for code, out, err in runs:
            assert code == 2, (args, out, err)
            assert message in err, (args, err)
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path).rglob("*.npz"))


@pytest.mark.parametrize("module", ["pure", "flax_port"])
def test_an_unreadable_data_file_is_one_line_and_exit_2(module, tmp_path, monkeypatch):
    """chmod 0 makes the file unreadable; root reads it anyway, so there the read is made to fail
    as the kernel would (EACCES), through the same CLI entry point."""
    import errno
    import os
    from pathlib import Path

    names = tmp_path / "names.txt"
    names.write_text("emma\n")
    names.chmod(0)
    if os.geteuid() == 0:
        real = os.open

        def denied(path, *args, **kwargs):
            if Path(path) == names:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", denied)
    result = cli(module, "--data", str(names), "--save", str(tmp_path / "w.npz"))
    assert_user_error(result, f"data file {names} cannot be read (Permission denied)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.txt"]


# ----------------------------------------------------------------------------- makemore download

class _Server:
    """A local HTTP server serving `body` at /names.txt (tests never touch the internet)."""

    def __init__(self, body: bytes):
        payload = body

        class Handler(http.server.BaseHTTPRequestHandler):
            hits = 0

            def do_GET(self):
                Handler.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *a):
                pass

        self.handler = Handler
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/names.txt"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_makemore_is_downloaded_once_verified_and_cached(tmp_path, monkeypatch):
    body = b"emma\nolivia\nava\n"
    monkeypatch.setattr(data, "MAKEMORE_SHA256", hashlib.sha256(body).hexdigest())
    monkeypatch.setenv("MICROGPT_CACHE", str(tmp_path))
    server = _Server(body)
    monkeypatch.setenv("MICROGPT_MAKEMORE_URL", server.url)
    try:
        assert data.load_names("makemore") == ["emma", "olivia", "ava"]
        assert data.load_names("makemore") == ["emma", "olivia", "ava"]
        assert server.handler.hits == 1  # the second call read the cache
        assert (tmp_path / "names.txt").read_bytes() == body
    finally:
        server.close()


def test_a_corrupt_download_is_refused_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROGPT_CACHE", str(tmp_path))
    server = _Server(b"not the real list\n")
    monkeypatch.setenv("MICROGPT_MAKEMORE_URL", server.url)
    try:
        result = cli("pure", "--data", "makemore")
        assert_user_error(result, f"download from {server.url} is corrupt (sha256 ")
        assert list(tmp_path.iterdir()) == []  # nothing cached, not even a temporary file
    finally:
        server.close()


def test_a_download_larger_than_the_list_is_refused_after_reading_one_byte_past_it(tmp_path, monkeypatch):
    """A server (or MICROGPT_MAKEMORE_URL=file:///dev/zero) sending without end was read until memory
    ran out, then blamed on --batch-size (seventh hostile pass); now the read stops one byte past the
    list's size, and a file:// URL is read as --data is: /dev/zero and a FIFO (which blocked urlopen
    itself, eighth pass) are not regular files. Its twin: the list's own size passes (the test above)."""
    import os

    monkeypatch.setenv("MICROGPT_CACHE", str(tmp_path / "cache"))
    server = _Server(b"emma\n" * 60_000)
    monkeypatch.setenv("MICROGPT_MAKEMORE_URL", server.url)
    try:
        assert_user_error(cli("pure", "--data", "makemore"), "is larger than makemore's names.txt (228,145 bytes)")
    finally:
        server.close()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for url in ("file:///dev/zero", f"file://{fifo}"):
        monkeypatch.setenv("MICROGPT_MAKEMORE_URL", url)
        assert_user_error(cli("pure", "--data", "makemore"), "is not a regular file")
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_a_download_that_trickles_ends_at_its_deadline(tmp_path, monkeypatch):
    """urlopen's timeout bounds each read: a server sending a byte every two seconds held the run for
    hours (eighth hostile pass). The download as a whole has DOWNLOAD_S (here shortened)."""
    import time

    class Trickle:
        length = None

        def read1(self, n):
            time.sleep(0.02)
            return b"e"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setenv("MICROGPT_CACHE", str(tmp_path))
    monkeypatch.setenv("MICROGPT_MAKEMORE_URL", "http://127.0.0.1:9/names.txt")
    monkeypatch.setattr(data, "DOWNLOAD_S", 0.2)
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: Trickle())
    assert_user_error(cli("pure", "--data", "makemore"), "took more than 0.2 s")
    assert list(tmp_path.iterdir()) == []



def test_a_download_whose_headers_never_end_ends_at_its_deadline(tmp_path, monkeypatch):
    """A server answering its headers a line at a time holds urlopen itself, before any read the
    deadline looked at (the sixth session's review): the deadline covers the connection too."""
    import threading
    import time

    released = threading.Event()

    def headers_forever(url, timeout):
        released.wait(30)  # a server that never finishes its headers (set free at the end of the test)
        raise OSError("released")

    monkeypatch.setenv("MICROGPT_CACHE", str(tmp_path))
    monkeypatch.setenv("MICROGPT_MAKEMORE_URL", "http://127.0.0.1:9/names.txt")
    monkeypatch.setattr(data, "DOWNLOAD_S", 0.3)
    monkeypatch.setattr(data.urllib.request, "urlopen", headers_forever)
    start = time.monotonic()
    try:
        assert_user_error(cli("pure", "--data", "makemore"), "took more than 0.3 s")
        assert time.monotonic() - start < 10
    finally:
        released.set()
    assert list(tmp_path.iterdir()) == []

def test_a_failed_download_is_one_line_exit_2(tmp_path):
    import os

    env_url = "http://127.0.0.1:9/names.txt"  # port 9 (discard): nothing listens, refused at once
    env = {"MICROGPT_MAKEMORE_URL": env_url, "MICROGPT_CACHE": str(tmp_path)}
    r = run_module("pure", "--data", "makemore", env=env)
    assert r.returncode == 2 and "download of makemore's names.txt" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []



def test_the_real_makemore_file_passes_the_pinned_sha256(tmp_path, monkeypatch):
    """The constant itself, checked against the real file (the copy in ../shared/data, served
    locally): a typo in MAKEMORE_SHA256 would refuse every real download."""
    from conftest import ROOT

    real = ROOT.parent / "shared" / "data" / "names.txt"
    if not real.is_file():
        pytest.skip(f"no local copy of makemore's names.txt at {real}")
    monkeypatch.setenv("MICROGPT_CACHE", str(tmp_path))
    server = _Server(real.read_bytes())
    monkeypatch.setenv("MICROGPT_MAKEMORE_URL", server.url)
    try:
        docs = data.load_names("makemore")
    finally:
        server.close()
    assert len(docs) == 32033 and docs[:3] == ["emma", "olivia", "ava"]


class _RawServer:
    """A local server that answers any request with `reply`, raw bytes, then hangs up."""

    def __init__(self, reply: bytes):
        import socketserver

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.rfile.readline()
                self.wfile.write(reply)

        self.server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/names.txt"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("reply, reason", [
    (b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\nemma\nolivia\n", "IncompleteRead"),  # cut off
    (b"garbage\r\n\r\n", "garbage"),  # not HTTP at all
    (b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", "Not Found"),
])
def test_a_broken_download_is_one_line_exit_2(tmp_path, monkeypatch, reply, reason):
    server = _RawServer(reply)
    monkeypatch.setenv("MICROGPT_CACHE", str(tmp_path))
    monkeypatch.setenv("MICROGPT_MAKEMORE_URL", server.url)
    try:
        result = cli("pure", "--data", "makemore")
    finally:
        server.close()
    assert_user_error(result, "download of makemore's names.txt from", reason, "pass --data with a local copy")
    assert list(tmp_path.iterdir()) == []


def more_bad_flags(tmp_path):
    """Flags whose values would crash, hang or exhaust memory further in; in-process, for speed."""
    return [
        (["--temperature", "1e-46"], "far smaller ones reach float32's limits"),
        (["--num-samples", "1000000000"], "at most 10,000"),
        (["--block-size", "5000"], "block_size=5000 is above 1024"),
        (["--n-embd", "4096", "--n-head", "4"], "n_embd=4096 is above 1024"),
        (["--n-layer", "100"], "n_layer=100 is above 32"),
        (["--steps", "2000000000"], "positions, all held in memory"),
        (["--batch-size", "65536", "--block-size", "1024", "--n-embd", "1024", "--n-layer", "32", "--steps", "1"],
         "out of memory before compiling: this run needs at least"),  # tens of TiB: refused on any machine
        (["--save", str(tmp_path)], "it is a directory; give a file name"),
        (["--save", f"{tmp_path}/newdir/"], "it ends with '/', which names a directory"),  # would be a file 'newdir'
        (["--save", str(tmp_path / ("a" * 245 + ".npz"))], "File name too long"),  # only with the temp suffix
        (["--save", str(tmp_path / ("a" * 260 + ".npz"))], "File name too long"),
    ]


@pytest.mark.parametrize("module", ["pure", "flax_port"])
def test_flags_that_would_fail_later_fail_first_in_one_line(module, tmp_path):
    for args, message in more_bad_flags(tmp_path):
        assert_user_error(cli(module, *args), message)
    assert list(tmp_path.iterdir()) == []  # no checkpoint, no temporary file


def test_a_run_above_its_memory_floor_is_refused_before_compiling():
    """common/devices.py: least_bytes is a floor on a run's memory; above what the machine has
    available the run is refused before JAX compiles anything. The twins: exactly at the floor it
    runs, an unknown amount of memory refuses nothing, and every size the floor counts raises it."""
    import dataclasses

    from common import devices
    from common.config import Config
    from common.errors import UserError

    cfg = Config(vocab_size=27)
    need = devices.least_bytes(cfg, 8)
    devices.check_memory(cfg, 8, available=lambda: need)
    devices.check_memory(cfg, 8, available=lambda: None)
    with pytest.raises(UserError, match=r"out of memory before compiling: this run needs at least 0\.0 GiB "
                                        r"\(batch-size 8, .*use a smaller --batch-size"):
        devices.check_memory(cfg, 8, available=lambda: need - 1)
    bigger = [devices.least_bytes(cfg, 9), devices.least_bytes(cfg, 8, runs=2)]
    bigger += [devices.least_bytes(dataclasses.replace(cfg, **{field: value}), 8) for field, value in
               [("n_embd", 32), ("n_layer", 2), ("block_size", 17), ("num_steps", 1001), ("vocab_size", 28)]]
    assert all(b > need for b in bigger), (need, bigger)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_memory_available_is_the_cgroups_cap_where_it_is_lower(tmp_path, version):
    """A container or CI job capped by its cgroup below the host's MemAvailable: the floor is checked
    against what the cap leaves (cap - usage). The twins: no cap ("max", v1's huge number) leaves
    MemAvailable; a cap above it changes nothing; a missing cgroup file is not an error."""
    from common import devices

    def tree(cap: str, used: int = 3 * 2**30, nested: bool = True, inactive_cache: int = 0):
        root = tmp_path / f"{version}-{cap}-{nested}-{inactive_cache}"
        (root / "proc" / "self").mkdir(parents=True)
        (root / "proc" / "meminfo").write_text(f"MemTotal: {64 * 2**20} kB\nMemAvailable: {16 * 2**20} kB\n")
        path = "/job/42" if nested else "/"
        if version == "v2":
            (root / "proc" / "self" / "cgroup").write_text(f"0::{path}\n")
            folder, files = root / "sys/fs/cgroup" / path.lstrip("/"), ("memory.max", "memory.current")
        else:
            (root / "proc" / "self" / "cgroup").write_text(f"5:devices:/\n4:memory:{path}\n1:cpu:/\n")
            folder, files = root / "sys/fs/cgroup/memory" / path.lstrip("/"), ("memory.limit_in_bytes",
                                                                               "memory.usage_in_bytes")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / files[0]).write_text(cap + "\n")
        (folder / files[1]).write_text(f"{used}\n")
        key = "inactive_file" if version == "v2" else "total_inactive_file"
        (folder / "memory.stat").write_text(f"anon 1000\n{key} {inactive_cache}\nactive_file 7\n")
        return str(root)

    gib = 2**30
    assert devices.available_memory(tree(str(8 * gib))) == 5 * gib  # 8 GiB cap, 3 used: 5 left, below 16
    assert devices.available_memory(tree(str(8 * gib), nested=False)) == 5 * gib  # inside a cgroup namespace
    # the page cache the kernel can take back is room: 2 GiB of the 3 used are files read and left
    assert devices.available_memory(tree(str(8 * gib), inactive_cache=2 * gib)) == 7 * gib
    no_cap = "max" if version == "v2" else "9223372036854771712"
    assert devices.available_memory(tree(no_cap)) == 16 * gib
    assert devices.available_memory(tree(str(64 * gib))) == 16 * gib
    # a cap on the cgroup above the process's (a CI runner's slice over an uncapped job): it counts
    above = Path(tree(no_cap + " "))
    parent = above / ("sys/fs/cgroup" if version == "v2" else "sys/fs/cgroup/memory") / "job"
    cap_file, use_file = ("memory.max", "memory.current") if version == "v2" else ("memory.limit_in_bytes",
                                                                                    "memory.usage_in_bytes")
    (parent / cap_file).write_text(f"{6 * gib}\n")
    (parent / use_file).write_text(f"{4 * gib}\n")
    assert devices.available_memory(str(above)) == 2 * gib
    empty = tmp_path / "empty"
    empty.mkdir()
    assert devices.available_memory(str(empty)) is None


OOM = "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes."


@pytest.mark.parametrize("raised", ["xla", "python"])
def test_out_of_memory_is_one_line_exit_2(raised, monkeypatch, capsys):
    """XLA's allocation failure (jax's JaxRuntimeError, RESOURCE_EXHAUSTED) and Python's MemoryError,
    raised where a run that asks for too much meets them: one line with the size asked and what to
    shrink, exit 2, for the trainers and for `where`. Its twin: another runtime error is not called
    memory, and stays the bug report it is."""
    import jax

    import common.cli
    from common.cli import run_cli
    from compare import where

    error = jax.errors.JaxRuntimeError(OOM) if raised == "xla" else MemoryError()

    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr(common.cli, "run_training", fails)
    monkeypatch.setattr(where, "locate", fails)
    expected = "out of memory (XLA asked for 16.0 GiB at once)" if raised == "xla" else "out of memory: the run"
    assert_user_error(cli("pure", "--steps", "2"), expected, "use a smaller --batch-size")
    capsys.readouterr()
    assert run_cli(where.main, ["--impls", "pure,flax_port"]) == 2
    err = capsys.readouterr().err
    assert "compare where: error: out of memory" in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.setattr(common.cli, "run_training", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli("pure", "--steps", "2")


@pytest.mark.parametrize("name, value", [("JAX_DISABLE_JIT", "1"), ("JAX_NUMPY_DTYPE_PROMOTION", "strict"),
                                         ("JAX_DEFAULT_MATMUL_PRECISION", "nonsense"),
                                         ("JAX_NUMPY_RANK_PROMOTION", "raise"), ("JAX_DEBUG_NANS", "true"),
                                         # the random bits changed silently, or no run (nineteenth hostile pass)
                                         ("JAX_THREEFRY_PARTITIONABLE", "0"), ("JAX_RANDOM_SEED_OFFSET", "1"),
                                         ("JAX_LEGACY_PRNG_KEY", "error"), ("JAX_TRANSFER_GUARD", "disallow")])
def test_jax_variables_that_change_the_numbers_are_one_line_in_every_command(name, value, monkeypatch):
    """Read by jax at its import: JAX_DISABLE_JIT=1 was a traceback (the ahead-of-time path) or a line
    blaming pure; strict promotion and an unknown precision were tracebacks at whatever import came
    first (fifth hostile pass). Now one line, exit 2, before any work, in the trainers and in compare's
    commands; --help still answers; JAX's default value is no refusal."""
    from common.cli import run_cli
    from compare import check, lesson, where

    monkeypatch.setenv(name, value)
    assert_user_error(cli("pure", "--steps", "1", "--num-samples", "1"), f"{name}={value} is set", f"unset {name}")
    for main, argv in ((check.main, ["flax_port"]), (where.main, []), (lesson.main, ["loss"])):
        assert run_cli(main, argv) == 2
    with pytest.raises(SystemExit) as stop:
        run_cli(where.main, ["--help"])
    assert stop.value.code == 0
    monkeypatch.setenv(name, {"JAX_NUMPY_DTYPE_PROMOTION": "standard", "JAX_DEFAULT_MATMUL_PRECISION": "default",
                              "JAX_NUMPY_RANK_PROMOTION": "allow", "JAX_THREEFRY_PARTITIONABLE": "1",
                              "JAX_LEGACY_PRNG_KEY": "allow", "JAX_TRANSFER_GUARD": "allow"}.get(name, "0"))
    from common.cli import check_jax_variables

    check_jax_variables()
    if name == "JAX_RANDOM_SEED_OFFSET":  # jax reads these as its default 0 too (twentieth hostile pass)
        for zero in ("00", "+0", "-0"):
            monkeypatch.setenv(name, zero)
            check_jax_variables()


def test_jax_settings_from_the_environment_are_one_line(monkeypatch):
    """JAX_ENABLE_X64=1 (every array float64: the scan's carry changed type, a traceback) and a
    JAX_PLATFORMS whose backend cannot start: one line each, exit 2, before any work. The twin: with
    neither, the same run trains."""
    import jax

    was = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        assert_user_error(cli("pure", "--steps", "1", "--num-samples", "1"), "JAX_ENABLE_X64 is set",
                          "unset JAX_ENABLE_X64")
        from common.cli import run_cli
        from compare import bench, nnx_styles

        for main, argv in ((bench.main, ["--steps", "2", "--repeats", "1"]), (nnx_styles.main, ["1"])):
            assert run_cli(main, argv) == 2  # the commands that do not go through setup_jax
    finally:
        jax.config.update("jax_enable_x64", was)

    def no_backend(*args, **kwargs):
        raise RuntimeError("Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so")

    monkeypatch.setattr(jax, "devices", no_backend)
    assert_user_error(cli("flax_port", "--steps", "1", "--num-samples", "1"), "JAX could not start its backend",
                      "Failed to open libtpu.so", "unset JAX_PLATFORMS")
    monkeypatch.undo()
    # a platform whose plugin is not installed: jax asserts with no message (seventeenth hostile pass)
    r = run_module("pure", "--steps", "1", env={"JAX_PLATFORMS": "cuda"})
    assert_user_error((r.returncode, r.stdout, r.stderr), "JAX could not start its backend (no backend for "
                      "JAX_PLATFORMS=cuda): unset JAX_PLATFORMS")
    # a JAX_* value jax itself refuses at its import (its ValueError was a traceback, exit 1: eighteenth
    # hostile pass), in a real child process: jax is imported here already
    for name, value in (("JAX_LOG_COMPILES", "maybe"), ("JAX_TRACEBACK_FILTERING", "bogus")):
        r = run_module("pure", "--steps", "1", env={name: value})
        assert_user_error((r.returncode, r.stdout, r.stderr), f"{name}={value} is set and jax refuses it",
                          f"unset {name}")
    # ... and through --processes, where each worker meets it (exit 1 in the launcher: eighteenth pass)
    r = run_module("pure", "--processes", "2", "--devices", "2", "--batch-size", "2", "--steps", "1",
                   env={"JAX_CPU_COLLECTIVES_IMPLEMENTATION": "bogus"})
    assert_user_error((r.returncode, r.stdout, r.stderr), "of 2: JAX_CPU_COLLECTIVES_IMPLEMENTATION=bogus is set and "
                      "jax refuses it", "nothing was saved")
    # a device count XLA would abort on (a fatal log of 92 lines) is refused before JAX starts; a
    # good one is no refusal (here JAX started long ago, so the flag itself changes nothing)
    for value in ("abc", "0", "-2", "99999"):
        monkeypatch.setenv("XLA_FLAGS", f"--xla_force_host_platform_device_count={value}")
        assert_user_error(cli("pure", "--steps", "1"), f"device_count={value} is not a device count")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert cli("pure", *SHORT_RUN)[0] == 0


def test_a_save_under_a_file_names_the_file(tmp_path):
    (tmp_path / "afile").write_text("mine")
    assert_user_error(cli("pure", "--steps", "1", "--save", f"{tmp_path}/afile/x.npz"),
                      f"{tmp_path}/afile is a file, not a directory")
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_cache_folder_that_cannot_be_one_is_one_line(monkeypatch, tmp_path):
    """MICROGPT_CACHE relative (it made a folder in the current directory, the repo once) or where no
    folder can be (JAX then warned in two lines on every run): one line, exit 2, nothing created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROGPT_CACHE", "relative/dir")
    assert_user_error(cli("pure", "--steps", "1", "--num-samples", "1"), "MICROGPT_CACHE=relative/dir is not an "
                      "absolute path")
    monkeypatch.setenv("MICROGPT_CACHE", "/dev/null")
    assert_user_error(cli("pure", "--steps", "1", "--num-samples", "1"), "cannot go in /dev/null (Not a directory)",
                      "or pass --no-cache")
    assert list(tmp_path.iterdir()) == []
