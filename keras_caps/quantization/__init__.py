"""Power-of-two post-training quantization: quantizers, specs, simulation, memory, searches.

    pot          the quantizer (bits, power-of-two exponents, rounding, clipping, granularity)
    spec         the JSON quantization spec, its schema and validation
    simulate     simulated quantized inference of any keras_caps model, calibration
    memory       weight / activation memory in bits, float32 vs a spec
    progressive  bit-width searches: A uniform, B layer-wise under a budget, C refinement
"""

from keras_caps.quantization.pot import (  # noqa: F401
    frac_bits_for,
    quantize,
    quantize_array,
)
from keras_caps.quantization.simulate import (  # noqa: F401
    Calibration,
    accuracy,
    complete_spec,
    quantized_model,
)
from keras_caps.quantization.spec import (  # noqa: F401
    SpecError,
    load_spec,
    save_spec,
    uniform_spec,
    validate,
)
