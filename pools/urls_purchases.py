"""URL patterns of the pools app for purchases; pools/urls.py adds them under the "pools" namespace."""

urlpatterns: list = []
