"""The one place model code gets TensorFlow from.

Model code must run on TensorFlow 1.15 (the legacy baseline) and on 2.x, so it uses the
tf.compat.v1 graph API only, through this module. tests/unit/test_tf115_api.py checks every
`tf.` symbol the model zoo uses against the list of what TensorFlow 1.15 provides.
"""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter hides the progress output of the CLI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf

__all__ = ["tf"]
