"""The domain core: no Flask here, and ``now`` is always passed in."""
