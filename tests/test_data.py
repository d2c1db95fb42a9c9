"""The shared data layer: default names, the tokenizer, padding, and the names file parser."""

import numpy as np
import pytest

from common.data import Tokenizer, encode_name, load_names, training_batches
from common.errors import UserError


def test_default_names_are_the_census_list_lowercased_and_unique(docs):
    assert len(docs) == len(set(docs)) > 5000
    assert "".join(sorted(set("".join(docs)))) == "abcdefghijklmnopqrstuvwxyz"


def test_tokenizer_sorts_characters_and_puts_bos_last(tok):
    assert tok.chars == "abcdefghijklmnopqrstuvwxyz" and tok.bos == 26 and tok.vocab_size == 27
    assert tok.decode(tok.encode("kaelyn") + [tok.bos, 0, 0]) == "kaelyn"


def test_encode_pads_to_block_size_and_masks_the_padding(tok):
    b = encode_name("emma", tok, 16)
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (16,)
    assert list(b.inputs[:5]) == [tok.bos] + tok.encode("emma")
    assert list(b.targets[:5]) == tok.encode("emma") + [tok.bos]
    assert b.mask.sum() == 5 and b.mask[5:].sum() == 0


def test_long_names_are_truncated_to_block_size_as_the_seed_does(tok):
    name = "abcdefghijklmnopqrstuvwxyz"  # 26 letters: the seed keeps the first block_size positions
    b = encode_name(name, tok, 16)
    assert b.mask.sum() == 16
    assert list(b.targets) == tok.encode(name[:16])  # the closing BOS falls outside the block


def test_training_batches_are_shuffled_by_seed_and_reproducible(docs, tok):
    a = training_batches(docs, tok, 16, 50, seed=1)
    b = training_batches(docs, tok, 16, 50, seed=1)
    c = training_batches(docs, tok, 16, 50, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a.inputs, c.inputs)


def test_names_file_is_read_one_name_per_line(tmp_path):
    f = tmp_path / "n.txt"
    f.write_text("emma\n\n  olivia \nava\n")
    assert load_names(str(f)) == ["emma", "olivia", "ava"]


def test_characters_outside_the_vocabulary_are_refused(tok):
    with pytest.raises(UserError, match="outside the vocabulary"):
        tok.encode("Zoë")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\n  \n\n", "no usable names"),
        (b"emma\n\xff\xfeolivia\n", "not UTF-8"),
    ],
)
def test_bad_names_files_give_a_user_error(tmp_path, content, message):
    f = tmp_path / "names.txt"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_names(str(f))


def test_a_directory_is_not_a_names_file(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        load_names(str(tmp_path))


def test_tokenizer_from_a_file_with_other_characters():
    tok = Tokenizer.from_names(["Zoë", "ann"])
    assert tok.chars == "Zanoë" and tok.vocab_size == 6


def test_a_byte_order_mark_is_not_a_letter(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes(b"\xef\xbb\xbfemma\nava\n")
    assert load_names(str(f)) == ["emma", "ava"]
