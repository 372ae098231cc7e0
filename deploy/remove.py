"""Take mailagent off hosts: `pyinfra inventories/<env>.py deploy/remove.py`.

Drain each host first (`mailagent drain` on it): a host with mail still queued stops the deploy
before anything changes, unless `--data remove_force=true`. `--data remove_postfix=true` also
purges Postfix and its secret maps. The collector keeps the host's history; delete the host
there with the admin token when it is gone for good.
"""

from roles.removal import remove

remove()
