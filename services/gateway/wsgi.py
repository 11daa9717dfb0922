"""WSGI entry point: `gunicorn -c services/gateway/gunicorn_conf.py services.gateway.wsgi:app`."""

from services.gateway.app import create_app

app = create_app()
