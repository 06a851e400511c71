"""WSGI entry point for gunicorn and other WSGI servers."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "licensepools.settings")

application = get_wsgi_application()

# gunicorn runs no system checks, so the guessed e-mail link address is reported here at startup.
from licensepools.links import log_portal_base_url_problems  # noqa: E402 (needs the loaded settings)

log_portal_base_url_problems()
