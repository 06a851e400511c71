"""URL patterns of the pools app for recovery; pools/urls.py adds them under the "pools" namespace."""

urlpatterns: list = []
