"""Dataset readers for RAVDESS (speech) and FER-2013 (faces)."""
