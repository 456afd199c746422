"""Emoface HTTP service: speech emotion recognition and emotion-conditioned face generation."""
