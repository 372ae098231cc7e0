"""A real test mail from every host, followed to its smarthost's reply:
`pyinfra inventories/<env>.py deploy/send_test.py --data to=ops@example.com [--data from=ADDR]`.

One line per host (delivered with the reply and TLS, or deferred/bounced with the reply and a
hint); exits non-zero when any host's mail was not delivered. Needs the agent (deploy/site.py).
"""

from roles.mailagent.send_test import send_test_mail

send_test_mail()
