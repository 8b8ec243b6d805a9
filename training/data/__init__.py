"""Data readers, the aligned-face cache and torch datasets."""
