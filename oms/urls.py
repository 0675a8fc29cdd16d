from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from . import api_views, views

# No format-suffix routes (/api/exceptions.json/): the API speaks JSON, and they passed a
# `format` argument the viewsets' actions do not take (a 500 the URL walk found).
router = DefaultRouter()
router.include_format_suffixes = False
router.register("securities", api_views.SecurityViewSet, basename="security")
router.register("accounts", api_views.AccountViewSet, basename="account")
router.register("exceptions", api_views.ExceptionViewSet, basename="exception")

# Each app owns its pages (urls.py) and API routes (api_urls.py); this file only mounts them.
APPS = [
    "audit",
    "orders",
    "compliance",
    "positions",
    "allocation",
    "fixgateway",
    "marketdata",
    "reports",
]

api_patterns = [
    path("auth/token/", api_views.TokenLoginView.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "securities/search/",
        # A list of at most 20, not a page.
        api_views.SecurityViewSet.as_view({"get": "search"}, pagination_class=None),
        name="security-search",
    ),
    *[path("", include(f"{app}.api_urls")) for app in APPS],
    path("", include(router.urls)),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", views.account_list, name="accounts"),
    path("accounts/<str:code>/", views.account_detail, name="account_detail"),
    path("exceptions/", views.exceptions_page, name="exceptions"),
    path("exceptions/<int:exception_id>/", views.exception_detail, name="exception_detail"),
    path(
        "exceptions/<int:exception_id>/resolve/",
        views.exception_resolve,
        name="exception_resolve",
    ),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    *[path("", include(f"{app}.urls")) for app in APPS],
]

# Never Django's debug or bare pages: JSON under /api/, the site's page elsewhere.
handler400 = "oms.error_views.bad_request"
handler403 = "oms.error_views.permission_denied"
handler404 = "oms.error_views.page_not_found"
handler500 = "oms.error_views.server_error"
