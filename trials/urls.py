from django.urls import path

from trials import participant_api, views

app_name = "trials"

urlpatterns = [
    path("<slug:slug>/", views.entry, name="entry"),
    path("<slug:slug>/resume/", views.resume, name="resume"),
    path("<slug:slug>/end/", views.finished, name="finished"),
    path("<slug:slug>/s/<slug:stage_key>/", views.stage, name="stage"),
    path("<slug:slug>/api/save/", participant_api.save, name="api_save"),
    path("<slug:slug>/api/run/", participant_api.run, name="api_run"),
    path("<slug:slug>/api/check/", participant_api.check, name="api_check"),
    path("<slug:slug>/api/queue/", participant_api.queue, name="api_queue"),
    path("<slug:slug>/api/events/", participant_api.record_events, name="api_events"),
    path("<slug:slug>/api/answers/", participant_api.answers, name="api_answers"),
    path("<slug:slug>/api/assistant/", participant_api.ask_assistant, name="api_assistant"),
]
