"""Checkpoints both implementations read, the `sample` subcommand, and every bad input around
them: driven through the real CLI entry point, asserting exit code, message, no traceback, no
partial file."""

import functools
import os
import pickle
import shutil

import numpy as np
import pytest

import flax_port
import nnx_port
import pure
from common import checkpoint
from conftest import SHORT_RUN, assert_user_error, cli, first_quick

IMPLS = {"pure": pure.impl, "flax_port": flax_port.impl, "nnx_port": nnx_port.impl}
PAIRS = [(a, b) for a in IMPLS for b in IMPLS if a != b]


def samples(stdout):
    return [ln.split(": ", 1)[1] for ln in stdout.splitlines() if ln.startswith("sample ")]


@functools.lru_cache
def sampled(module: str, path: str) -> list[str]:
    """The names `module sample` prints for a checkpoint (--seed 5, 20 names), once per pair. With
    the session's private compilation cache, a sampler compiles once per implementation."""
    code, out, err = cli(module, "sample", "--load", path, "--seed", "5")
    assert code == 0, err
    return samples(out)


# ----------------------------------------------------------------------------- round trips

def test_the_checkpoint_is_a_plain_npz_under_the_seeds_names(trained):
    with np.load(trained["flax_port"], allow_pickle=False) as z:
        names = set(z.files)
    assert names == {"wte", "wpe", "lm_head", "l0.wq", "l0.wk", "l0.wv", "l0.wo", "l0.fc1", "l0.fc2",
                     "__config__", "__chars__", "__microgpt__"}


@pytest.mark.parametrize("saver, loader", PAIRS)
def test_saved_by_one_sampled_by_the_other_gives_the_same_names(trained, saver, loader):
    assert sampled(saver, trained[saver]) == sampled(loader, trained[saver])
    assert len(sampled(saver, trained[saver])) == 20


def test_prefix_starts_every_name(trained):
    code, out, _ = cli("pure", "sample", "--load", trained["pure"], "--prefix", "ka")
    assert code == 0 and len(samples(out)) == 20 and all(n.startswith("ka") for n in samples(out))


@pytest.mark.parametrize("module", first_quick(list(IMPLS), "the sampler loop is common/sampling.py; the grid's "
                                                            "samples check proves every pair bitwise from a prompt"))
def test_the_sampler_copies_the_prompt_and_continues_from_it(trained, module):
    """On the raw tokens (the CLI prepends the prefix when decoding, so look beneath it): the
    prompt is copied, and at a tiny temperature the next token is the model's argmax after it."""
    import jax
    import jax.numpy as jnp

    from common.config import Config
    from common.data import Tokenizer
    from common.runner import prompt_tokens

    flat, fields, chars = checkpoint.load(trained[module])
    cfg, tok, impl = Config(**fields), Tokenizer(chars), IMPLS[module]()
    params = impl.from_flat({k: jnp.asarray(v) for k, v in flat.items()}, cfg)
    for prefix in ("ka", "z", "abcdefghijklmn"):
        prompt, n = prompt_tokens(tok, prefix, cfg)
        out = np.asarray(impl.sample_tokens(params, prompt, n, cfg, key=jax.random.PRNGKey(0),
                                            num_samples=4, temperature=jnp.float32(1e-4)))
        assert (out[:, : len(prefix)] == tok.encode(prefix)).all()  # row[p] follows position p
        greedy = int(jnp.argmax(impl.forward(params, jnp.asarray(prompt), cfg)[len(prefix)]))
        assert (out[:, len(prefix)] == greedy).all()


def test_a_plain_dict_saved_by_the_seeds_script_loads_as_is(trained, tmp_path):
    with np.load(trained["pure"]) as z:
        seed_dict = {k: z[k] for k in z.files if not k.startswith("__")}
    plain = tmp_path / "seed.npz"
    np.savez(plain, **seed_dict)  # what the seed holds in memory, no config, no characters
    ours = cli("pure", "sample", "--load", trained["pure"])
    # characters from default data; the head count from --n-head, as no array's shape tells it
    theirs = cli("flax_port", "sample", "--load", str(plain), "--n-head", "4")
    assert ours[0] == theirs[0] == 0 and samples(ours[1]) == samples(theirs[1])
    assert_user_error(cli("flax_port", "sample", "--load", str(plain)),
                      "has no config", "pass --n-head")
    assert_user_error(cli("flax_port", "sample", "--load", str(plain), "--n-head", "3"),  # the flag's fault
                      f"--n-head 3 does not fit checkpoint {plain}", "not divisible by n_head=3")
    assert_user_error(cli("flax_port", "sample", "--load", str(plain), "--n-head", "4", "--n-embd", "32"),
                      "--n-embd 32 does not match checkpoint")  # a model flag that disagrees is never ignored


def test_the_check_of_equal_names_can_fail(trained, tmp_path):
    """Different weights give different names, so the cross-implementation test means something."""
    with np.load(trained["pure"]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["lm_head"] = arrays["lm_head"][::-1].copy()
    other = tmp_path / "other.npz"
    np.savez(other, **arrays)
    a = cli("pure", "sample", "--load", trained["pure"])
    b = cli("pure", "sample", "--load", str(other))
    assert samples(a[1]) != samples(b[1])


# ----------------------------------------------------------------------------- bad checkpoints

def test_missing_checkpoint(tmp_path):
    assert_user_error(cli("pure", "sample", "--load", str(tmp_path / "none.npz")), "does not exist")


def test_truncated_checkpoint(trained, tmp_path):
    data = open(trained["pure"], "rb").read()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    assert_user_error(cli("pure", "sample", "--load", str(cut)), str(cut))


def test_not_an_npz(tmp_path):
    text = tmp_path / "weights.npz"
    text.write_text("emma\nolivia\n")
    assert_user_error(cli("flax_port", "sample", "--load", str(text)), "is not an .npz file")


def test_a_pickle_is_refused_and_never_run(tmp_path):
    bad = tmp_path / "pickle.npz"
    np.savez(bad, wte=np.array([{"a": 1}], dtype=object))
    assert_user_error(cli("pure", "sample", "--load", str(bad)), "pickled objects")
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps({"wte": 1}))
    assert_user_error(cli("pure", "sample", "--load", str(raw)), "is not an .npz file")


def test_missing_extra_and_misshaped_parameters_are_each_listed(trained, tmp_path):
    with np.load(trained["pure"]) as z:
        arrays = {k: z[k] for k in z.files}
    del arrays["l0.wk"]
    arrays["l0.bias"] = np.zeros(16, np.float32)
    arrays["l0.fc1"] = np.zeros((16, 32), np.float32)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    assert_user_error(
        cli("pure", "sample", "--load", str(bad)),
        "missing l0.wk (expected (16, 16))", "extra l0.bias (16,)", "l0.fc1 has shape (16, 32), expected (16, 64)",
    )


def test_config_that_does_not_match_the_flags(trained):
    assert_user_error(cli("pure", "sample", "--load", trained["pure"], "--n-head", "2"),
                      "--n-head 2 does not match checkpoint", "n_head=4")


@pytest.mark.parametrize(
    "prefix, message", [("KA", "--prefix 'KA' has characters outside the vocabulary"),  # the flag named (tenth pass)
                        ("a" * 16, "more than block_size - 1 = 15")])
def test_bad_prefix(trained, prefix, message):
    assert_user_error(cli("pure", "sample", "--load", trained["pure"], "--prefix", prefix), message)


# ----------------------------------------------------------------------------- bad output paths, NaN, atomicity

def test_save_into_a_missing_directory(tmp_path):
    target = tmp_path / "nope" / "w.npz"
    assert_user_error(cli("pure", "--steps", "5", "--save", str(target)), "does not exist")
    assert not target.parent.exists()


def test_save_into_a_directory_that_is_not_writable(tmp_path):
    if os.geteuid() == 0:
        folder = "/sys"  # read-only even for root
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
    assert_user_error(cli("pure", "--steps", "5", "--save", f"{folder}/w.npz"), "is not writable")


def first_divergence(lr: float, steps: int):
    """The truth, found by hand: the trainer's initialisation and names, pure's jitted train_step
    one step at a time; (step, parameters) of the first update that leaves a weight non-finite."""
    import jax

    from common.config import Config
    from common.data import Tokenizer, default_names, training_batches
    from common.runner import init_state

    docs = default_names()
    tok = Tokenizer.from_names(docs)
    cfg = Config(vocab_size=tok.vocab_size, num_steps=steps, learning_rate=lr)
    batches = training_batches(docs, tok, cfg.block_size, steps, seed=42)
    impl = pure.impl()
    state = init_state(impl, cfg, key=jax.random.split(jax.random.PRNGKey(42))[0])
    step = jax.jit(lambda s, b: impl.train_step(s, b, cfg))
    for i in range(steps):
        state, _ = step(state, type(batches)(*(col[i] for col in batches)))
        bad = [k for k in pure.model.param_shapes(cfg) if not np.isfinite(np.asarray(state[0][k])).all()]
        if bad:
            return i + 1, bad
    raise AssertionError("this learning rate did not diverge")


@pytest.mark.parametrize("module", first_quick(list(IMPLS), "the check is common/runner.py's, the same for all"))
def test_nan_training_names_the_step_and_parameters_and_keeps_the_old_checkpoint(trained, tmp_path, module):
    step, bad = first_divergence(1e30, 50)
    keep = tmp_path / "good.npz"
    keep.write_bytes(open(trained[module], "rb").read())
    before = keep.read_bytes()
    result = cli(module, "--lr", "1e30", "--steps", "50", "--save", str(keep))
    assert_user_error(result, f"training diverged at step {step}: its update made {', '.join(bad)} non-finite",
                      "nothing was saved: lower --lr")
    assert keep.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npz"]


@pytest.mark.parametrize("module", first_quick(["pure", "flax_port"], "common/runner.py's check, as above"))
def test_a_run_whose_last_update_diverges_is_caught(module, tmp_path):
    """Every loss sees the weights before its step's update: when the last update of the run is
    the one that breaks the weights, every loss is finite and only the final weights show it."""
    step, bad = first_divergence(1e30, 50)
    target = tmp_path / "w.npz"
    code, out, err = cli(module, "--lr", "1e30", "--steps", str(step), "--save", str(target))
    assert "nan" not in out.lower()  # the printed losses are all finite
    assert_user_error((code, out, err), f"training diverged at step {step}: its update made {', '.join(bad)}")
    assert not target.exists()


def test_an_interrupted_save_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    target = tmp_path / "w.npz"
    target.write_bytes(b"old")

    def savez_interrupted(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_interrupted)
    from common.config import Config

    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(str(target), {"wte": np.zeros((27, 16), np.float32)}, Config(), "abc")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def test_a_saved_checkpoint_has_ordinary_permissions(trained):
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(trained["pure"]).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_a_zip_that_is_not_an_npz(tmp_path):
    import zipfile

    bad = tmp_path / "renamed.npz"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("notes.txt", "hello")
    assert_user_error(cli("pure", "sample", "--load", str(bad)), "is a zip but not an .npz")


# ----------------------------------------------------------------------------- what a checkpoint may hold

def rewritten(trained, tmp_path, change):
    """The pure checkpoint with `change(arrays)` applied, saved under a new name."""
    with np.load(trained["pure"]) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    path = tmp_path / "changed.npz"
    np.savez(path, **arrays)
    return str(path)


def without_config(*keys):
    import json

    def change(arrays):
        cfg = json.loads(str(arrays["__config__"]))
        arrays["__config__"] = np.array(json.dumps({k: v for k, v in cfg.items() if k not in keys}))
    return change


def with_config(**fields):
    import json

    def change(arrays):
        cfg = json.loads(str(arrays["__config__"]))
        arrays["__config__"] = np.array(json.dumps(cfg | fields))
    return change


@pytest.mark.parametrize("change, message", [
    (lambda a: a["l0.wq"].__setitem__((0, 0), np.nan), "l0.wq holds NaN or inf"),
    (with_config(block_size=16.0), "bad config (block_size=16.0 is not an integer)"),
    (with_config(norm_eps="x"), "bad config (norm_eps='x' is not a finite number)"),
    (with_config(norm_eps=[1e-5]), "norm_eps=[1e-05] is not a finite number"),
    (with_config(norm_eps=-1.0), "the epsilons must be above 0"),
    (lambda a: a.__setitem__("__chars__", np.array("abc")), "is inconsistent: its config has vocab 27"),
    (without_config("n_head"), "has a config without n_head: it was not written whole"),  # not a silent 4
    (lambda a: a.__setitem__("__chars__", np.array("bcdefghijklmnopqrstuvwxyza")), "out of order or repeated"),
    (lambda a: a.__setitem__("__config__", np.array(str(a["__config__"])[:-1] + ', "n_head": 2}')),
     "has an unreadable __config__"),  # n_head twice: json keeps the last, silently
    (lambda a: a.__setitem__("__config__", np.array("[" * 100_000 + "]" * 100_000)),
     "has an unreadable __config__"),  # nested past the recursion limit: a RecursionError (eighteenth hostile pass)
    (lambda a: a.__setitem__("__config__", np.array("[4]")), "is not a JSON object"),
    (lambda a: a.__setitem__("__chars__", np.array(list(str(a["__chars__"])))),  # letters, not one string: was
     "has an unreadable __chars__ (an array of shape (26,) where one string belongs)"),  # "a control character"
    (lambda a: a.__setitem__("__chars__", np.array("abcdefghijklmnopqrstuvwxyy")), "out of order or repeated"),
    (with_config(dropout=0.1), "a config with fields this program does not know (dropout)"),  # was Python's call
    (lambda a: a.__setitem__("X", np.zeros(3, np.float32)),
     "does not fit the model: extra X (3,): its arrays do not match its own config; save it again with --save"),
])
def test_a_checkpoint_with_bad_contents_is_refused(trained, tmp_path, change, message):
    assert_user_error(cli("flax_port", "sample", "--load", rewritten(trained, tmp_path, change)), message)


def test_a_load_path_too_long_to_exist_is_one_line(tmp_path):
    assert_user_error(cli("pure", "sample", "--load", str(tmp_path / ("a" * 300 + ".npz"))), "cannot be read")


def test_a_save_that_fails_midway_is_one_line_and_leaves_the_old_file(tmp_path, monkeypatch):
    """A disk that fills up during the write: a one-line error, the old file whole, no temporary."""
    import errno

    from common.config import Config
    from common.errors import UserError

    target = tmp_path / "w.npz"
    target.write_bytes(b"old")

    def savez_disk_full(f, **arrays):
        f.write(b"PK\x03\x04 part of a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez_disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        checkpoint.save(str(target), {"wte": np.zeros((27, 16), np.float32)}, Config(), "abc")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


# ----------------------------------------------------------------------------- a file that changes during the run

@pytest.mark.parametrize("before, meanwhile", [
    (None, "user"),  # a new path, where the user writes a file of their own during the run
    ("ours", "user"),  # a checkpoint of ours at the start, replaced by the user's file during the run
    (None, "another run"),  # two runs saving to one path: the other finished first
    ("ours", "another run"),
    (None, None),  # the twins: nothing happens meanwhile, and the save goes through
    ("ours", None),
])
def test_a_file_written_at_the_save_path_during_the_run_is_never_replaced(before, meanwhile, tmp_path, monkeypatch,
                                                                        trained):
    """The race, reproduced at the one moment that matters (checkpoint.before_final_step, between the
    whole temporary file and the step that puts it in place): the run checked the path before
    training, so anything that appeared or changed there since is someone else's. It is left as it
    is, the run says so in one line, exits 2, and leaves no temporary behind."""
    target = tmp_path / "out.npz"
    if before == "ours":
        target.write_bytes(open(trained["pure"], "rb").read())
    theirs = {"user": lambda: target.write_bytes(b"my own notes"),
              "another run": lambda: shutil.copyfile(trained["flax_port"], target),  # a whole checkpoint of ours
              None: lambda: None}[meanwhile]
    monkeypatch.setattr(checkpoint, "before_final_step", lambda path: theirs())
    code, out, err = cli("pure", *SHORT_RUN, "--save", str(target))
    if meanwhile is None:
        assert code == 0 and checkpoint.load(str(target))[1]["num_steps"] == 30, err
    else:
        assert_user_error((code, out, err), f"{target} was written by someone else while this run worked",
                          "nothing was saved")
        expected = b"my own notes" if meanwhile == "user" else open(trained["flax_port"], "rb").read()
        assert target.read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]
