"""Every write to the directory goes through a ``do_*``/``check_*`` in this package:
``auth`` for sign-in, sessions, second factors and API tokens; ``staff`` for
departments, staff, roles, guests, CSV import and personnel transfers."""
