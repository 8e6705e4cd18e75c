"""Protocol buffers of the sparse-split wire format, one subpackage per version."""
