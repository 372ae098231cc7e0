"""Control-machine side of mailagent: what is built here and uploaded to hosts.

Never installed on fleet hosts (the agent's project wheel leaves this subpackage out), and free
of pyinfra, so the `mailagent` command can use it as well as the roles.
"""
