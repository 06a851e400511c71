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

    The test suite flushes and re-populates the database between tests, under a worker that keeps
    running, so content type ids change. django-guardian then finds two ids for one model and raises
    MixedContentTypeError. Re-reading costs one small query per model a task uses. django-guardian also
    caches content types by app label and permission codename, and clears that cache only on
    post_migrate in the process that migrates, so it is cleared here too.
    """
    from django.contrib.contenttypes.models import ContentType
    from guardian.shortcuts import clear_ct_cache

    ContentType.objects.clear_cache()
    clear_ct_cache()
