from django.urls import path

from . import api_views

urlpatterns = [
    path(
        "settlement-files/",
        api_views.SettlementFileListView.as_view(),
        name="settlement-file-list",
    ),
    path(
        "settlement-files/<int:pk>/download/",
        api_views.SettlementFileDownloadView.as_view(),
        name="settlement-file-download",
    ),
]
