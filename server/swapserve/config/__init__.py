"""Configuration: settings, their sources (flags, YAML, TF Serving, Triton) and reloads."""
