"""drgrpo: normalization-bias ablations of GRPO (Dr. GRPO, arXiv 2503.20783) from the command line."""

__version__ = "0.1.0"
