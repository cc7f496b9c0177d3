#!/bin/sh
# Test double for Bazel in the tfserving_build Molecule scenario (the real build needs the
# internet): it answers --version like Bazel 6.4.0, records each build command line in
# .bazel-invocations and leaves a binary where Bazel would.
set -eu
if [ "${1:-}" = "--version" ]; then
  echo "bazel 6.4.0"
  exit 0
fi
echo "$*" >> .bazel-invocations
mkdir -p bazel-bin/tensorflow_serving/model_servers
printf '#!/bin/sh\necho "TensorFlow ModelServer: fake build"\n' > bazel-bin/tensorflow_serving/model_servers/tensorflow_model_server
chmod 0755 bazel-bin/tensorflow_serving/model_servers/tensorflow_model_server
