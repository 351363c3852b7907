"""The arrays a run trains and evaluates on, from its `DataConfig`.

    (x_train, y_train), (x_eval, y_eval) = load_datasets(config)

Images are uint8 (N, H, W, C) (or float in [0, 1]), labels integer class ids (N,). The
evaluation split is the test split, or with `validation_examples` the last N training
examples (the test split is then not read).
"""

from __future__ import annotations


def image_shape_of(images):
    """(H, W, C) of an image array (N, H, W[, C])."""
    shape = tuple(int(d) for d in images.shape[1:])
    return shape + (1,) if len(shape) == 2 else shape


def split_shape(split):
    """(H, W, C) of an (images, labels) split or a `keras_caps.data_sources.StreamedSplit`."""
    from keras_caps.data_sources import StreamedSplit

    if isinstance(split, StreamedSplit):
        return tuple(split.image_shape)
    return image_shape_of(split[0])


def head_images(split, n=256):
    """The first `n` images of a split (in memory; decoded for a StreamedSplit), e.g. for the
    capsule-length init."""
    from keras_caps.data_sources import StreamedSplit

    return split.arrays(n)[0] if isinstance(split, StreamedSplit) else split[0][:n]


def dataset_info(config):
    """keras_caps.data.DatasetInfo of `config.dataset` after its image_size / channels (class
    names, num_classes, image_shape)."""
    from keras_caps import data

    options = config.data_options()
    return data.info(config.dataset, options["image_size"], options["channels"],
                     data_dir=config.data_dir)


def class_names(config, num_classes=None):
    """The dataset's class names ("0" .. "K-1" when unknown or when `num_classes` differs)."""
    from keras_caps import data_sources

    info = dataset_info(config)
    return data_sources.class_names_for(info.class_names, num_classes or info.num_classes)


def evaluation_split(config):
    """What a run evaluates on: "test", or "validation" (validation_examples)."""
    return "validation" if config.validation_examples else "test"


def validation_split(train, num_examples):
    """(train minus its last `num_examples`, those last examples): a held-out tuning split."""
    images, labels = train
    if not 0 < int(num_examples) < len(images):
        raise ValueError(
            f"--validation_examples={num_examples} must lie in (0, {len(images)}): the number of "
            "training examples held out for evaluation (see --train_examples)."
        )
    cut = len(images) - int(num_examples)
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


def preprocess(config, datasets, seed=0):
    """The config's denoise, remove_constant_features and balance (training split only,
    seeded with `seed`) applied to ((x_train, y_train), (x_test, y_test))."""
    from keras_caps import data

    (xtr, ytr), (xte, yte) = datasets
    denoise = config.denoise or "none"
    if denoise != "none":
        xtr, xte = data.denoise(xtr, denoise), data.denoise(xte, denoise)
    if config.remove_constant_features:
        _, xtr, xte = data.remove_constant_features(xtr, xte)
    balance = config.balance or "none"
    if balance != "none":
        xtr, ytr = data.balance_classes(xtr, ytr, balance, seed=seed)
    return (xtr, ytr), (xte, yte)


def refuse_stream(config, streamed=False):
    """ConfigError when config.stream is set (or `streamed`: streamed splits were passed in):
    for the binaries that need the images in memory."""
    from keras_caps.runs.config import ConfigError

    if streamed or getattr(config, "stream", False):
        raise ConfigError(
            "--stream (StreamedSplits read from disk) was given to a run that needs the images "
            "in memory. The train/ binaries that train (the pipeline and the studies too) "
            "take --stream; from Python, pass stream_ok=True to load_datasets where the caller "
            "trains on StreamedSplits, or drop --stream (and use --train_examples / "
            "--image_size to fit).")


def load_streamed(config):
    """(train, evaluation) `keras_caps.data_sources.StreamedSplit`s of a --stream run (a
    folder: dataset; validation_examples hold out the training split's last N files)."""
    from keras_caps import data_sources

    options = config.data_options()
    target = data_sources.parse(config.dataset).target

    def split(name, limit):
        return data_sources.folder_split(target, name, options["image_size"],
                                         options["channels"], options["test_fraction"], limit)

    train = split("train", config.train_examples)
    if not config.validation_examples:
        return train, split("test", config.test_examples)
    n = int(config.validation_examples)
    if not 0 < n < len(train):
        raise ValueError(f"--validation_examples={n} must lie in (0, {len(train)}): the number "
                         "of training examples held out for evaluation (see --train_examples).")
    return train.take(slice(None, len(train) - n)), train.take(slice(len(train) - n, None))


def in_memory(datasets, train_images=2000):
    """The arrays a run measures on, beside the splits it trains on.

    For (train, evaluation) `StreamedSplit`s (a --stream run): the first `train_images`
    training images and the whole evaluation split decoded into memory (bound the latter with
    --test_examples); for arrays: `datasets` as they are.

    Example:
        >>> training = load_datasets(config, stream_ok=True)  # doctest: +SKIP
        >>> (x_head, y_head), (x_eval, y_eval) = in_memory(training, 500)  # doctest: +SKIP
    """
    from keras_caps.data_sources import StreamedSplit

    train, evaluation = datasets
    if not isinstance(train, StreamedSplit):
        return datasets
    return train.arrays(train_images), evaluation.arrays()


def stream_sample_size(config):
    """Training images a --stream pipeline decodes into memory (the first ones): the int8
    export's 2,000 calibration images, the PoT search's calibration batches and the QAT
    examples, whichever is most."""
    return max(2000, int(config.calibration_batches) * int(config.calibration_batch_size),
               int(config.qat_examples) if config.qat_epochs else 0)


class PreparedSplits(tuple):
    """The (train, evaluation) splits `load_datasets` returns: preprocessed and, with
    validation_examples, already held out. Passed on as another run's `datasets_override`
    (the pipeline's and the studies' stages) they are used as they are; a plain tuple override
    with validation_examples is split again (its training tail held out), so a stage does not
    hold out a second validation split from its training images."""


def load_datasets(config, datasets_override=None, num_classes=None, hint="", seed=0,
                  stream_ok=False):
    """((train images, labels), (evaluation images, labels)) of a run.

    Args:
        config: a DataConfig (any run config): the dataset, its spelling and options.
        datasets_override: ((x_train, y_train), (x_test, y_test)) arrays instead of loading;
            taken as prepared (no preprocessing), but still checked. Or two `StreamedSplit`s
            (the pipeline's --stream), returned as they are where stream_ok.
        num_classes: labels must lie in [0, num_classes) (default: the dataset's classes).
        hint: ends the label error message (e.g. "; set --num_classes").
        seed: the seed of class balancing.
        stream_ok: the caller trains on `StreamedSplit`s (train, distill): with config.stream
            they are returned instead of arrays (`load_streamed`); without it --stream is a
            ConfigError.
    Returns:
        The two splits as `PreparedSplits`, every label checked; loaded data preprocessed
        (`preprocess`).

    Example:
        >>> train, test = load_datasets(DataConfig(train_examples=1000))  # doctest: +SKIP
    """
    from keras_caps import data, validation
    from keras_caps.data_sources import StreamedSplit

    # streamed splits passed in (the pipeline's --stream), or --stream loading them here
    streamed = datasets_override is not None and isinstance(datasets_override[0], StreamedSplit)
    if streamed or (getattr(config, "stream", False) and datasets_override is None):
        if not stream_ok:
            refuse_stream(config, streamed)
        return tuple(datasets_override) if streamed else load_streamed(config)
    options = config.data_options()

    def split(name, limit):
        return data.load_arrays(config.dataset, name, data_dir=config.data_dir,
                                source=config.data_source, max_examples=limit, **options)

    held_out = config.validation_examples
    datasets = datasets_override or (split("train", config.train_examples),
                                     None if held_out else split("test", config.test_examples))
    if held_out and not isinstance(datasets_override, PreparedSplits):
        datasets = validation_split(datasets[0], held_out)
    num_classes = num_classes or dataset_info(config).num_classes
    datasets = tuple(  # images uint8 or float in [0, 1], finite; integer labels in range
        validation.check_dataset(images, labels, num_classes, name,
                                 hint=f" for {config.dataset}{hint}")
        for name, (images, labels) in zip(("training", evaluation_split(config)), datasets))
    # an override is taken as prepared (the pipeline passes its preprocessed arrays on)
    return PreparedSplits(datasets if datasets_override else preprocess(config, datasets, seed))


__all__ = ["PreparedSplits", "class_names", "dataset_info", "evaluation_split", "head_images",
           "image_shape_of", "in_memory", "load_datasets", "load_streamed", "preprocess",
           "refuse_stream", "split_shape", "stream_sample_size", "validation_split"]
