"""URL patterns of the pools app for schemes; pools/urls.py adds them under the "pools" namespace."""

urlpatterns: list = []
