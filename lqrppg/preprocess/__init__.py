"""Preprocessing: face detection and cropping, the chunk store, and the pipeline that fills it."""
