"""lqrppg: a reproducible rPPG experiment pipeline built around LQ-rPPG."""

__version__ = "0.1.0"
