"""microgpt as a plain dict of arrays and pure functions (the reference flax_port/ and nnx_port/ are compared to)."""


def impl():
    """This implementation, as the command line and compare/ use it (see common/impl.py)."""
    from common.impl import Impl
    from pure import checkpoint, model, sample, train

    return Impl(
        name="pure", init_state=train.init_state, train_step=train.train_step,
        train_steps=train.train_steps,
        params_of=train.params_of, sample_tokens=sample.sample_tokens, tapped_sample=sample.tapped_sample,
        forward=model.forward, loss_fn=model.loss_fn, batch_loss_fn=model.batch_loss_fn, tapped_loss=model.tapped_loss,
        to_flat=checkpoint.to_flat, from_flat=checkpoint.from_flat,  # pure's params already are the flat dict
        state_to_flat=checkpoint.state_to_flat, state_from_flat=checkpoint.state_from_flat,
    )
