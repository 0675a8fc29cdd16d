app_name = "fixgateway"

urlpatterns: list = []
