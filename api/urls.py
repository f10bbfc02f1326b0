from django.urls import URLPattern, URLResolver, path, re_path
from drf_spectacular.views import SpectacularAPIView

from api import views

app_name = "api"
urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.ApiRootView.as_view(), name="root"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", views.ApiDocsView.as_view(), name="docs"),
    path("trials/", views.TrialListView.as_view(), name="trials"),
    path("trials/<slug:slug>/", views.TrialDetailView.as_view(), name="trial"),
    path("trials/<slug:slug>/codebook/", views.CodebookView.as_view(), name="codebook"),
    path("trials/<slug:slug>/datasets/<str:name>/", views.DatasetView.as_view(), name="dataset"),
    path("trials/<slug:slug>/exports/", views.ExportView.as_view(), name="export"),
    path("trials/<slug:slug>/results/", views.ResultsView.as_view(), name="results"),
    path("participants/", views.ParticipantListView.as_view(), name="participants"),
    path("allocations/", views.AllocationListView.as_view(), name="allocations"),
    path("events/", views.EventListView.as_view(), name="events"),
    path("items/", views.ItemListView.as_view(), name="items"),
    # Anything else under /api/ is a JSON 404, not the site's HTML page.
    re_path(r"^", views.api_not_found),
]
