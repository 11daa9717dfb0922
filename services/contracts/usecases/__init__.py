"""Use cases of the contracts service: one transaction each, called by service.py."""
