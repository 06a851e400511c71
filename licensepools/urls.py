from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from licensepools import account

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/email/", account.email_page, name="account_email"),
    path("api/v1/", include("licensepools.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("graphsync.urls")),
    path("", include("chargeback.urls")),
    path("", include("pools.urls")),
]

# Paths under /api/ get JSON errors, every other path Django's HTML pages.
handler400 = "licensepools.api_errors.bad_request"
handler403 = "licensepools.api_errors.permission_denied"
handler404 = "licensepools.api_errors.page_not_found"
handler500 = "licensepools.api_errors.server_error"
