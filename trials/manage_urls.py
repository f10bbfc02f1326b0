from django.urls import URLPattern, URLResolver, include, path

from trials import manage_views
from trials.stage_kinds import staff_url_modules

app_name = "manage"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", manage_views.trial_list, name="trial_list"),
    path("trials/<slug:slug>/v<int:version>/", manage_views.trial_detail, name="trial_detail"),
    path(
        "trials/<slug:slug>/v<int:version>/p/<str:code>/",
        manage_views.participant_replay_view,
        name="participant_replay",
    ),
    path(
        "trials/<slug:slug>/v<int:version>/p/<str:code>/conversation/",
        manage_views.participant_conversation_view,
        name="participant_conversation",
    ),
]
# Pages of other apps' stage kinds (e.g. the quiz page), registered in their AppConfig.ready()
# (which runs before URLconfs load); included by name, so trials imports none of them.
urlpatterns += [path("", include(module)) for module in staff_url_modules()]
