"""Stage 2, generate: one content model, a renderer per engine, sids and validation.

The model (``content``) is built from ``inputs``; ``zeek`` and ``suricata`` render it,
``sids`` keeps Suricata sids stable, ``validate`` checks the staged files with the real
engines (through ``runners``) before ``command`` replaces anything. May import ``inputs``
and the bottom layer (``errors``, ``atomic``, ``runners``).
"""
