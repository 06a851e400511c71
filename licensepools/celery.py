"""Celery application: syncs, bulk jobs, alerts and scheduled reports run here."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "licensepools.settings")

app = Celery("licensepools")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
