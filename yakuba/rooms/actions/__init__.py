"""Every write of the rooms app, by subject: ``booking`` (create, change, cancel,
approve), ``series`` (recurring bookings), ``door`` (check-in, start now, extend, end
early, release of no-shows), ``rooms`` (rooms, CSV import, door panels, holidays),
``calendar`` (iCalendar import, feed URLs)."""
