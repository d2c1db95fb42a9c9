"""microgpt as a plain dict of arrays and pure functions (the reference flax_port/ is compared to)."""


def impl():
    """This implementation, as the command line and compare/ use it (see common/impl.py)."""
    from common.impl import Impl
    from pure import sample, train

    return Impl(
        name="pure", init_state=train.init_state, train_step=train.train_step,
        train_steps=train.train_steps,
        params_of=train.params_of, sample_tokens=sample.sample_tokens,
        to_flat=dict, from_flat=dict,  # pure's params already are the seed's flat dict
    )
