"""Model analysis: FLOPs and parameters per layer."""

from keras_caps.analysis.flops import format_profile, profile, total_flops

__all__ = ["format_profile", "profile", "total_flops"]
