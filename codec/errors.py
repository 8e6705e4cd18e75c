"""Errors raised when reading a bitstream."""


class BitstreamError(ValueError):
    """A bitstream that is truncated, corrupted, inconsistent or beyond the decoder's limits."""


class ChecksumError(BitstreamError):
    """A bitstream whose CRC-32 does not match its body, so it was damaged in transit."""


class UnsupportedVersionError(BitstreamError):
    """A bitstream written in a format version this decoder does not read."""
