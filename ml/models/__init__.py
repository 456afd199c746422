"""Network definitions, each declared once and imported by training, evaluation and serving."""
