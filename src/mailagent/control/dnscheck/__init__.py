"""DNS readiness of the sender domains: SPF, DKIM, DMARC and MX, per provider each sender uses.

`mailagent dns-check` on the control machine, and the deploy's pre-flight
(roles/dns_readiness.py), both build `Sender` records (senders.py) and turn each into findings
(checks.py), one line each:

    fail  example.com  spf       no SPF record; publish: example.com. TXT "v=spf1 include:amazonses.com ~all"

Parsers (spf.py, dkim.py, dmarc.py) take record text and return typed records; every query goes
through resolve.Resolver (dnspython), whose nameserver is injectable.

    DnsError                 a query that could not be answered (timeout, SERVFAIL, refused)
    DnsGuardError            a query refused before it was sent: MAILAGENT_DNS_LOOPBACK_ONLY is set
                             and the nameserver is not an explicit loopback address (the tests)
"""
