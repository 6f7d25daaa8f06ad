"""Servers as seen over SSH: their facts (facts.py), sessions and checks."""
