"""Postfix's queue names, in the order reports and metrics list them.

Its own module so that the queue scan (agent/queue_scan.py) needs nothing but the standard
library: the queue counter helper imports it when systemd starts it at the agent's first
connection, and pydantic would make that start about 8x slower.
"""

QUEUE_NAMES = ("maildrop", "incoming", "active", "deferred", "hold")
