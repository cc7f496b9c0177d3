"""recbench model zoo: recommendation models trained and exported for TF-Serving (runs on the hosts)."""

__version__ = "0.1.0"
