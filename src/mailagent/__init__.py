"""mailagent: relay-only Postfix to an authenticated smarthost, a queue-health agent, a collector."""

__version__ = "0.1.0"
