"""Use cases of the service_desk service: one transaction each, called by service.py."""
