"""The simulated fleet and its stand-ins, for the main job on one machine, the tests and the
benchmarks: podman hosts (`sim.fleet`, with Molecule's platform and its lane runner), a TF-Serving
stand-in (`sim.tfserving_standin`), a stand-in of Triton's SDK image (`sim.triton_sdk_standin`) and a
Bazel test double (`sim/tfserving_build`). Production code never imports it."""
