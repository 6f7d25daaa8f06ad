"""Servers as seen over SSH: their facts (facts/), sessions and checks."""
