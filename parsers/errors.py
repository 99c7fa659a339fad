"""The two ways a sans-IO reader can refuse its input.

Every parser in this package returns a typed value or raises exactly one of these; callers
count them as anomalies and carry on (Zeek's "weirds"), they never stop a run.
"""


class ParseError(ValueError):
    """Base class: the bytes are not a valid message of this protocol."""

    kind = "malformed"


class Truncated(ParseError):
    """The message ends before a length field says it should."""

    kind = "truncated"


class Malformed(ParseError):
    """The bytes are complete but break the protocol's rules (reserved values, bad lengths)."""

    kind = "malformed"
