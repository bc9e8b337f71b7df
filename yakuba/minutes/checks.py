"""System checks of the minutes app (ids W3xx); see ``asr.checks``."""
