"""The TFLite command-line tools: thin binaries over keras_caps.lite (this folder is not installed)."""
