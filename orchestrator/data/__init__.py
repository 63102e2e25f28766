"""SIDD data: readers and index (:mod:`.sidd`), the synthetic SIDD-like generator (:mod:`.synthetic`)."""
