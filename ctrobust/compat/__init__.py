"""Workarounds for third-party packages that do not work as released (NOTES section 2)."""
