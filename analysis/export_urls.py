from django.urls import URLPattern, URLResolver, path

from analysis import export_views

app_name = "exports"
urlpatterns: list[URLPattern | URLResolver] = [
    path("<slug:slug>/", export_views.export_page, name="trial"),
    path("<slug:slug>/v<int:version>/", export_views.export_page, name="trial_version"),
    path("<slug:slug>/v<int:version>/download/", export_views.export_download, name="download"),
]
