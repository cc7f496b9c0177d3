"""Controller-only parts of the benchmark protocol: they may use third-party packages (PyYAML) and
never travel to the hosts (the modelzoo role's bundle leaves this package out; what it ships imports
only the standard library, tests/unit/test_host_runtime.py checks)."""
