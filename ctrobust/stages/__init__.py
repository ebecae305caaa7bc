"""The run: the protocol as stages (sweep, finals, checks) on a subject, with its progress and ETA."""
