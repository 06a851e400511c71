"""URL patterns of the pools app for alerts; pools/urls.py adds them under the "pools" namespace."""

urlpatterns: list = []
