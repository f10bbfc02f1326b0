from django.urls import path

from trials import views

app_name = "trials"

urlpatterns = [
    path("<slug:slug>/", views.entry, name="entry"),
    path("<slug:slug>/end/", views.finished, name="finished"),
    path("<slug:slug>/s/<slug:stage_key>/", views.stage, name="stage"),
]
