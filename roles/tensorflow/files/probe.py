import json
import os
import platform

import tensorflow as tf

try:
    from tensorflow.python.util import _pywrap_util_port as port

    built = bool(port.IsMklEnabled())
except Exception:
    built = None
print(
    json.dumps(
        {
            "version": tf.__version__,
            "python": platform.python_version(),
            "arch": platform.machine(),
            "onednn_built": built,
            "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        }
    )
)
