"""Workarounds for third-party packages that do not work as released (see the README, "robustbench as released")."""
