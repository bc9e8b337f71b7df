"""Every write of the minutes app, by subject: ``meetings`` (the meeting and its
header), ``recordings`` (uploads), ``transcription`` (jobs: request, cancel, run),
``editor`` (segments and speakers), ``dictionary`` (the ward dictionary), ``document``
(the minutes, summary and approval)."""
