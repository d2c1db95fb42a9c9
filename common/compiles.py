"""Counting XLA compilations, so tests can assert "compiled once" without timing anything; and the
CPU a compiled program is for, which JAX's persistent cache does not tell apart.

One count is one executable the process had to obtain for a program it had not run yet. JAX records
the event around its compile-or-read step, so an executable read from the persistent compilation
cache (common/cli.py's setup_jax; the test session shares one) counts as well, at the seconds the
read took: a count means the same with the cache warm or cold (tests/test_models.py checks it)."""

import contextlib
import os
import threading

DEFAULT_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compiles():
    """Yields a list that grows by one entry (seconds taken) for every backend compilation."""
    import jax
    from jax._src import dispatch  # BACKEND_COMPILE_EVENT names the event jax records per compile

    event_name = getattr(dispatch, "BACKEND_COMPILE_EVENT", DEFAULT_EVENT)
    seen: list[float] = []

    def listener(event, duration, **kwargs):
        if event == event_name:
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def cpu_fingerprint() -> str:
    """The CPU XLA compiles for, as a short hash of its feature flags (Linux), else of what Python
    knows of the machine. JAX keys a persistent cache entry by the program, the jaxlib version, the
    XLA flags and the compile options, not by the CPU (on CPU the backend's version is just "cpu"):
    a cache folder shared by two machines (a home directory on a network disk, a CI cache restored on
    another runner) would hand one CPU a program compiled for another's instructions. Each cache
    folder of this project is therefore per CPU."""
    import hashlib
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            what = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        what = ""
    return hashlib.sha256((what or platform.machine() + platform.processor()).encode()).hexdigest()[:12]


NOTED = []  # the cache's trouble, said once a process
WRITING = threading.Lock()


def guard_the_cache(folder: str) -> None:
    """JAX writes a cache entry in place: a full disk or a file size limit left a cut-off entry that
    JAX never rewrote, and every later run read it, failed, warned in 6 to 17 lines and compiled
    again (seventh hostile pass). Here a failed write removes what it began, a failed read removes
    the entry it read (the next run writes it whole), and either is one note on stderr, once; the
    run's result does not depend on the cache. JAX's private modules: where they moved, nothing is
    changed."""
    import warnings

    import jax

    try:
        from jax._src import compilation_cache, compiler, distributed, lru_cache
    except ImportError:
        return
    put = getattr(getattr(lru_cache, "LRUCache", None), "put", None)
    read = getattr(compilation_cache, "get_executable_and_time", None)
    write = getattr(compiler, "_cache_write", None)
    if not (callable(put) and callable(read) and callable(write)) or getattr(put, "guarded", False):
        return  # moved in another jax version (tests/test_safety.py checks they are there in both sets)
    suffix = getattr(lru_cache, "_CACHE_SUFFIX", "-cache")

    def current() -> str:  # the folder of now (setup_jax may be called again with another)
        return getattr(jax.config, "jax_compilation_cache_dir", None) or folder

    def note(what: str, err: Exception) -> None:
        if not NOTED:
            NOTED.append(err)
            from common import shell

            reason = getattr(err, "strerror", None) or type(err).__name__
            shell.say(f"note: the compilation cache in {current()} {what} ({reason}); the run goes on, compiling "
                      "what it could not read back")

    def guarded_put(self, key, value):
        path = os.path.join(self.path, f"{key}{suffix}")
        if getattr(self, "eviction_enabled", True):  # JAX's own put, under its lock
            try:
                put(self, key, value)
            except Exception as err:
                try:
                    os.unlink(path)
                except OSError:
                    pass
                note("could not be written", err)
            return
        temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"  # whole, or not there: two processes of
        try:  # a run may write one program's entry at once
            if not os.path.exists(path):
                with open(temporary, "wb") as f:
                    f.write(value)
                os.replace(temporary, path)
        except Exception as err:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            note("could not be written", err)

    def every_process_writes(*args, **kwargs):
        """JAX writes the cache from process 0 only (a shared file system's contention); here each
        process of a run on one machine compiles programs of its own devices, and process 1 compiled
        every one afresh in every run (about 5 s of a 2-process run's 11 here, 2026-12-07)."""
        state = distributed.global_state
        if getattr(state, "process_id", 0) == 0:
            return write(*args, **kwargs)
        with WRITING:
            saved, state.process_id = state.process_id, 0
            try:
                return write(*args, **kwargs)
            finally:
                state.process_id = saved

    def guarded_read(cache_key, *args, **kwargs):
        try:
            return read(cache_key, *args, **kwargs)
        except Exception as err:
            try:
                os.unlink(os.path.join(current(), f"{cache_key}{suffix}"))
            except OSError:
                pass
            note("held an entry that could not be read, now removed", err)
            return None, None

    guarded_put.guarded = True
    lru_cache.LRUCache.put = guarded_put
    compiler._cache_write = every_process_writes
    compilation_cache.get_executable_and_time = guarded_read
    warnings.filterwarnings("ignore", message="Error (reading|writing) persistent compilation cache entry")
