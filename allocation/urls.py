from django.urls import path

from . import views

app_name = "allocation"

urlpatterns = [
    path("operations/", views.operations, name="operations"),
    path("operations/blocks/<int:block_id>/", views.block_allocations, name="block"),
    path("operations/blocks/<int:block_id>/finalise/", views.finalise, name="finalise"),
    path(
        "operations/settlement-files/<int:file_id>/download/",
        views.settlement_file_download,
        name="settlement_file_download",
    ),
]
