"""The one error the CT package raises for a wrong use of it; the CLI shows it as one line, like CtrobustError.

Kept inside ``ct/`` so the CT unit and its application import nothing of ctrobust's but themselves.
"""


class CTError(ValueError):
    """A wrong implementation name, or a batch that does not match the betas given per sample."""
