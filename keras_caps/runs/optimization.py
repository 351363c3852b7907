"""The batch-size policy, LR schedule, optimizer and tf.distribute strategy of a run config.

    policy = batch_policy(config)
    optimizer = make_optimizer(config, num_examples=len(x_train), policy=policy)
"""

from __future__ import annotations


def batch_policy(config):
    """The keras_caps.schedules BatchSizePolicy an OptimizationConfig describes."""
    from keras_caps import schedules

    if config.batch_policy == "fixed":
        return schedules.FixedBatch(config.batch_size)
    params = dict(exponent=config.batch_exponent, warmup_epochs=config.batch_warmup_epochs,
                  epochs_per_step=config.batch_epochs_per_step,
                  warmup_batch_size=config.batch_warmup_size)
    if config.batch_growth_steps is not None:
        params["growth_steps"] = config.batch_growth_steps
    return schedules.make_batch_policy(config.batch_policy, **params)


def lr_schedule(config, num_examples, policy):
    """The LR schedule of an OptimizationConfig over `num_examples` training examples per
    epoch (step counts from the batch policy `policy`).

    WarmAdaBatch is a joint batch + LR policy (its LR is two cosine cycles): with
    batch_policy="warmadabatch" the default cosine lr_policy, or fixed, means the policy's
    own LR.
    """
    from keras_caps import schedules

    name = config.lr_policy
    if config.batch_policy == "warmadabatch" and name in ("fixed", "cosine"):
        name = "warmadabatch"
    return schedules.schedule_for_run(
        name, num_examples, config.epochs, policy, lr=config.learning_rate,
        lr_min=config.lr_min, decay_rate=config.lr_decay_rate,
        decay_steps=config.lr_decay_steps, drop=config.lr_drop,
        drop_epochs=config.lr_drop_epochs, power=config.lr_power,
        cycle_epochs=config.lr_cycle_epochs, cycle_mult=config.lr_cycle_mult,
    )


def make_optimizer(config, num_examples, policy):
    """The config's optimizer with its LR schedule (`lr_schedule`)."""
    from keras_caps import schedules

    return schedules.make_optimizer(config.optimizer, lr_schedule(config, num_examples, policy))


def make_strategy(name):
    """one_device (the default strategy) | mirrored | multi_worker -> a tf.distribute strategy."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    # The default strategy places ops on the GPU when there is one. OneDeviceStrategy("/cpu:0")
    # trained the M CapsNet 2.7x slower on 2 CPU cores (309 vs 844 images/s, same model and
    # data pipeline), from its per-step distribution overhead.
    return tf.distribute.get_strategy()


__all__ = ["batch_policy", "lr_schedule", "make_optimizer", "make_strategy"]
