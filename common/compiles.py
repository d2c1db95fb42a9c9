"""Counting XLA compilations, so tests can assert "compiled once" without timing anything; and the
CPU a compiled program is for, which JAX's persistent cache does not tell apart.

One count is one executable the process had to obtain for a program it had not run yet. JAX records
the event around its compile-or-read step, so an executable read from the persistent compilation
cache (common/cli.py's setup_jax; the test session shares one) counts as well, at the seconds the
read took: a count means the same with the cache warm or cold (tests/test_models.py checks it)."""

import contextlib
import os

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


def guard_the_cache(folder: str) -> None:
    """JAX writes a cache entry in place: a full disk or a file size limit left a cut-off entry that
    JAX never rewrote, and every later run read it, failed, warned in 6 to 17 lines and compiled
    again (seventh hostile pass). Here a failed write removes what it began, a failed read removes
    the entry it read (the next run writes it whole), and either is one note on stderr, once; the
    run's result does not depend on the cache. JAX's private modules: where they moved, nothing is
    changed."""
    import warnings

    try:
        from jax._src import compilation_cache, lru_cache
    except ImportError:
        return
    put, read = lru_cache.LRUCache.put, compilation_cache.get_executable_and_time
    if getattr(put, "guarded", False):
        return
    suffix = getattr(lru_cache, "_CACHE_SUFFIX", "-cache")

    def note(what: str, err: Exception) -> None:
        if not NOTED:
            NOTED.append(err)
            from common import shell

            reason = getattr(err, "strerror", None) or type(err).__name__
            shell.say(f"note: the compilation cache in {folder} {what} ({reason}); the run goes on, compiling "
                      "what it could not read back")

    def guarded_put(self, key, value):
        try:
            put(self, key, value)
        except Exception as err:
            try:
                os.unlink(os.path.join(self.path, f"{key}{suffix}"))
            except OSError:
                pass
            note("could not be written", err)

    def guarded_read(cache_key, *args, **kwargs):
        try:
            return read(cache_key, *args, **kwargs)
        except Exception as err:
            try:
                os.unlink(os.path.join(folder, f"{cache_key}{suffix}"))
            except OSError:
                pass
            note("held an entry that could not be read, now removed", err)
            return None, None

    guarded_put.guarded = True
    lru_cache.LRUCache.put = guarded_put
    compilation_cache.get_executable_and_time = guarded_read
    warnings.filterwarnings("ignore", message="Error (reading|writing) persistent compilation cache entry")
