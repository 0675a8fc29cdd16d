from django.urls import path

from . import api_views

# Ids and dates in the path are taken as text and checked by the views, so whatever is asked
# for gets the API's JSON answer (a 404 for an id that names nothing, a 400 for a bad date).
# /api/blocks/ is the desk's (orders app); the booking ledger's view of a block is under
# /api/booking/blocks/.
urlpatterns = [
    path("allocations/", api_views.AllocationListView.as_view(), name="allocation-list"),
    path(
        "booking/blocks/<str:block_id>/days/",
        api_views.BlockDayListView.as_view(),
        name="booking-block-days",
    ),
    path(
        "booking/blocks/<str:block_id>/days/<str:trade_date>/finalise/",
        api_views.DayFinaliseView.as_view(),
        name="booking-day-finalise",
    ),
    path(
        "settlement-files/",
        api_views.SettlementFileListView.as_view(),
        name="settlement-file-list",
    ),
    path(
        "settlement-files/generate/",
        api_views.SettlementFileGenerateView.as_view(),
        name="settlement-file-generate",
    ),
    path(
        "settlement-files/<str:pk>/download/",
        api_views.SettlementFileDownloadView.as_view(),
        name="settlement-file-download",
    ),
]
