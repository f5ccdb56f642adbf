"""Stage 1, inputs: the range catalogue, the Tor lists and the options that load them.

Imports nothing of the package but ``errors`` and ``atomic``; every other stage reads
its inputs through here.
"""
