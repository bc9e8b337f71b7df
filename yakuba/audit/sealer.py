"""Chains committed audit entries (filled in by the audit-log work)."""


def wake() -> None:
    """Hint that new entries were committed."""
