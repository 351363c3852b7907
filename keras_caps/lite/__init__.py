"""keras_caps.lite: integer TFLite export of keras_caps models, and the checks around it.

    export     Keras model -> TFLite flatbuffer (float32, dynamic_range, int8, int8_pot,
               int16x8) in the integer-friendly form TFLite Micro runs
    pot        power-of-two scales for an int8 flatbuffer
    audit      ops / dtypes / float islands / power-of-two scales against the TFLite Micro set
    evaluate   LiteRT and TFLite Micro accuracy, latency, arena size, agreement
    compare    op-by-op comparison of LiteRT, LiteRT reference kernels and TFLite Micro
    c_source   the C sources of a TFLite Micro project (model array, op resolver, constants)
    quiet      silencing the C++ runtimes' prints
    data_args  the dataset arguments of the command-line tools
    cli        the command lines (`python -m tflite.X`, `keras-caps-export`, ...)

The submodules are imported on use (`from keras_caps.lite import export`), so importing this
package loads neither TensorFlow nor the TFLite runtimes. The package is named `lite`, not
`tflite`: `tflite` is a PyPI package of its own (a flatbuffer parser) and both can be
installed side by side.

Example:
    >>> from keras_caps.lite import audit, export
    >>> flatbuffer = export.convert(model, "int8", calibration_images)  # doctest: +SKIP
    >>> audit.audit(flatbuffer, int8=True).ok  # doctest: +SKIP
    True
"""

