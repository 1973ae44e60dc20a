"""Diagnostics: gradient flow through time (Eq. 11-15)."""
