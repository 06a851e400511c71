"""Celery application: syncs, bulk jobs, alerts and scheduled reports run here."""
import os

from celery import Celery
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "licensepools.settings")

app = Celery("licensepools")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def clear_content_type_cache(**kwargs) -> None:
    """Forget cached content types before each task.

    A worker lives longer than the content type rows it cached when the database is flushed and
    re-populated under it, as the test suite does between tests; django-guardian then sees two ids for
    one model and raises MixedContentTypeError. Re-reading costs one small query per model a task uses.
    """
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
