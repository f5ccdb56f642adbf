"""Stage 2, scenarios: scenario pcaps crafted with scapy, byte by byte where scapy cannot.

Imports only the bottom layer: a scenario is described by its own expectations, not by
the generated content it exercises.
"""
