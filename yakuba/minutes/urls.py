"""The minutes pages.  Each view module lists its own ``urlpatterns``: ``meetings``
(list, create, overview, search), ``recordings`` (uploads, audio, transcription jobs),
``editor`` (transcript editor, speakers, ward dictionary), ``document`` (the minutes,
summary, approval, .docx and PDF)."""

from django.urls import URLPattern

from yakuba.minutes.views import document, editor, meetings, recordings

app_name = "minutes"

urlpatterns: list[URLPattern] = [
    *meetings.urlpatterns,
    *recordings.urlpatterns,
    *editor.urlpatterns,
    *document.urlpatterns,
]
