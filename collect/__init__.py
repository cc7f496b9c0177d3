"""recbench collector: gathers fleet results into a store and reports on them (runs on the controller)."""

__version__ = "0.1.0"
