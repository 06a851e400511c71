"""URL patterns of the pools app for bulk; pools/urls.py adds them under the "pools" namespace."""

urlpatterns: list = []
