app_name = "chargeback"

urlpatterns = []
