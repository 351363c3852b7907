"""Reference model files (see keras_caps.models.reference)."""
