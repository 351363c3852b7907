"""The training binaries: thin absl binaries over keras_caps.runs (this folder is not installed)."""
