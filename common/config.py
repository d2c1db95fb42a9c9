"""Hyperparameters of microgpt, defined once for every implementation.

The config is a frozen dataclass so that it is hashable: every implementation passes it to
`jax.jit` as a static argument, and nothing reads hyperparameters from a global.
"""

import dataclasses
import math
import struct

from common.errors import UserError

FLOAT32_MAX = 3.4028234663852886e38  # numbers above this are inf in float32, the dtype of the model

# The run's names are stacked in memory up front, block_size int32 triples per step: 2**26
# positions is 0.8 GB (4 million steps at block_size 16). The model's sizes are capped where a
# CPU run stops being an exercise and becomes a wait.
MAX_POSITIONS = 2**26
MAX_BLOCK_SIZE, MAX_N_EMBD, MAX_N_LAYER = 1024, 1024, 32

FLAG_NAMES = {"learning_rate": "lr", "num_steps": "steps"}  # the fields a flag of another name sets


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
        for field in dataclasses.fields(self):  # a config read from a checkpoint's JSON may hold anything
            value, name = getattr(self, field.name), FLAG_NAMES.get(field.name, field.name)
            if field.type is int and (type(value) is not int):
                raise UserError(f"{name}={value!r} is not an integer")
            if field.type is float and (type(value) not in (int, float) or not math.isfinite(value)):
                raise UserError(f"{name}={value!r} is not a finite number")
        if self.vocab_size < 2:
            raise UserError(f"vocab_size is {self.vocab_size}: the data must use at least 1 character")
        if self.n_embd < 1 or self.n_head < 1:
            raise UserError(f"n_embd={self.n_embd}, n_head={self.n_head}: both must be 1 or more")
        if self.n_embd % self.n_head:
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
        # float32 holds nothing between 0 and about 1.4e-45: a smaller lr trained with a rate of 0
        as_float32 = struct.unpack("f", struct.pack("f", min(self.learning_rate, FLOAT32_MAX)))[0]
        if not 0 < self.learning_rate <= FLOAT32_MAX or as_float32 == 0:
            raise UserError(f"lr={self.learning_rate}: use a learning rate above 0 that float32 can hold")
        for name, value, cap in [("block_size", self.block_size, MAX_BLOCK_SIZE), ("n_embd", self.n_embd, MAX_N_EMBD),
                                 ("n_layer", self.n_layer, MAX_N_LAYER)]:
            if value > cap:
                raise UserError(f"{name}={value} is above {cap}: this CPU-sized exercise stops there")
        if self.num_steps * self.block_size > MAX_POSITIONS:
            raise UserError(
                f"steps={self.num_steps} x block_size={self.block_size} is over {MAX_POSITIONS:,} positions, "
                "all held in memory: use fewer steps"
            )
        if not (self.init_std >= 0 and self.norm_eps > 0 and self.adam_eps > 0):
            raise UserError(
                f"init_std={self.init_std}, norm_eps={self.norm_eps}, adam_eps={self.adam_eps}: "
                "the epsilons must be above 0 and init_std at least 0"
            )
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise UserError(f"beta1={self.beta1}, beta2={self.beta2}: Adam's betas must be in [0, 1)")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head
