"""A TF-Serving gRPC server with a load curve known in advance (the capacity search's yardstick)."""
