from django.urls import path

from . import views

app_name = "fixgateway"

urlpatterns: list = [
    path("fix/messages/", views.messages_page, name="messages"),
]
