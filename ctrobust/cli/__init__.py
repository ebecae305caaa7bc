"""The ``ctrobust`` command line."""
