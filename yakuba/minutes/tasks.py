"""The minutes app's jobs, registered on import (see ``transcription_tasks``)."""
