"""The dataset arguments of the tflite command-line tools (the spelling of the train/ binaries).

--dataset takes every spelling of keras_caps.data_sources (mnist, fashion_mnist, cifar10,
svhn_cropped, any TFDS image-classification name, folder:PATH, npz:PATH); --image_size,
--grayscale / --channels and --test_fraction as in train.train_capsnet.
"""

from __future__ import annotations

import os


def add_data_arguments(parser, default="fashion_mnist"):
    parser.add_argument("--dataset", default=default,
                        help="mnist | fashion_mnist | cifar10 | svhn_cropped | any TFDS image "
                        "dataset | folder:PATH | npz:PATH (as the train/ binaries)")
    parser.add_argument("--data_dir", default=None, help="IDX folder or TFDS data dir")
    parser.add_argument("--image_size", default=None, help="resize to H or H,W")
    parser.add_argument("--grayscale", action="store_true", help="convert to 1 channel")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=None)
    parser.add_argument("--test_fraction", type=float, default=None,
                        help="held-out test fraction of a source without a test split")


def data_options(args):
    """{"image_size", "channels", "test_fraction"} for data.load_arrays from parsed args."""
    from keras_caps import data_sources

    channels = args.channels
    if args.grayscale:
        if channels == 3:
            raise ValueError("--grayscale and --channels=3 contradict each other; pass one.")
        channels = 1
    return {"image_size": data_sources.parse_image_size(args.image_size), "channels": channels,
            "test_fraction": args.test_fraction}


def dataset_info(args):
    from keras_caps import data

    options = data_options(args)
    return data.info(args.dataset, options["image_size"], options["channels"],
                     data_dir=args.data_dir)


def load(args, split, max_examples=None):
    """(images uint8 (N, H, W, C), labels (N,)) of `split` of --dataset."""
    from keras_caps import data

    return data.load_arrays(args.dataset, split, data_dir=args.data_dir,
                            max_examples=max_examples, **data_options(args))


def write_labels(tflite_path, class_names):
    """labels.txt (one class name per line, line i = class id i) next to `tflite_path`,
    written atomically; returns its path."""
    from keras_caps.io_utils import write_text

    path = os.path.join(os.path.dirname(os.path.abspath(tflite_path)), "labels.txt")
    write_text(path, "".join(f"{name}\n" for name in class_names))
    return path


def flatbuffer_signature(flatbuffer):
    """(input image shape (H, W, C), number of classes J) of a TFLite classifier."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=bytes(flatbuffer))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    return tuple(int(d) for d in inp["shape"][1:]), int(out["shape"][-1])


def check_flatbuffer_data(flatbuffer, image_shape, num_classes, name, dataset):
    """ModelDataMismatch when the flatbuffer's input or class count differs from the data's."""
    from keras_caps.models.compat import check_signature

    check_signature(flatbuffer_signature(flatbuffer), image_shape, num_classes, name,
                    f"--dataset={dataset}")
