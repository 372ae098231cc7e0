"""Packaged pyinfra deploys, one folder per service. `deploy/` entry points call them."""
