"""Hyperparameters of microgpt, defined once for both implementations.

The config is a frozen dataclass so that it is hashable: both implementations pass it to
`jax.jit` as a static argument, and nothing reads hyperparameters from a global.
"""

import dataclasses

from common.errors import UserError

FLOAT32_MAX = 3.4028234663852886e38  # numbers above this are inf in float32, the dtype of the model


@dataclasses.dataclass(frozen=True)
class Config:
    vocab_size: int = 27  # 26 letters + BOS, set from the data by `Tokenizer`
    n_embd: int = 16
    n_head: int = 4
    n_layer: int = 1
    block_size: int = 16
    init_std: float = 0.08  # every weight starts as N(0, init_std)
    norm_eps: float = 1e-5  # RMSNorm epsilon; microgpt has no learnable scale
    num_steps: int = 1000  # one name per step; the learning rate decays to 0 over them
    learning_rate: float = 0.01
    beta1: float = 0.85
    beta2: float = 0.99
    adam_eps: float = 1e-8

    def __post_init__(self):
        if self.vocab_size < 2:
            raise UserError(f"vocab_size is {self.vocab_size}: the data must use at least 1 character")
        if self.n_embd < 1 or self.n_head < 1 or self.n_embd % self.n_head:
            raise UserError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: "
                "choose n_embd as a positive multiple of n_head"
            )
        if self.n_layer < 1:
            raise UserError(f"n_layer={self.n_layer}: use at least 1 layer")
        if self.block_size < 2:
            raise UserError(f"block_size={self.block_size} is below 2: a name needs room for BOS and a letter")
        if self.num_steps < 1:
            raise UserError(f"steps={self.num_steps}: train for at least 1 step")
        if not 0 < self.learning_rate <= FLOAT32_MAX:
            raise UserError(f"lr={self.learning_rate}: use a learning rate above 0 that float32 can hold")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head
