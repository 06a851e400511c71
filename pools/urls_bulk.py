"""URL patterns of the pools app for assignment details and bulk jobs; pools/urls.py adds them under the
"pools" namespace."""
from django.urls import path

from . import views_bulk

urlpatterns: list = [
    path("pools/<int:pool_pk>/members/<int:user_pk>/assign/", views_bulk.assign_details, name="assign_details"),
    path("pools/<int:pool_pk>/usage-location/", views_bulk.pool_usage_location, name="pool_usage_location"),
    path("pools/<int:pool_pk>/bulk/", views_bulk.bulk_selection, name="bulk_selection"),
    path("pools/<int:pool_pk>/bulk/upload/", views_bulk.bulk_upload, name="bulk_upload"),
    path("bulk/<int:job_pk>/", views_bulk.bulk_job, name="bulk_job"),
    path("bulk/<int:job_pk>/resume/", views_bulk.bulk_job_resume, name="bulk_job_resume"),
    path("bulk/<int:job_pk>/results.csv", views_bulk.bulk_job_results, name="bulk_job_results"),
]
