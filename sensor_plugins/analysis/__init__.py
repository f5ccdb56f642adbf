"""Stage 3, analysis: Zeek logs in, findings with evidence out (one-shot and follow).

``logs``/``logfiles`` read, ``detect`` finds, ``findings``/``output`` shape and write,
``follow`` tails, ``command`` is ``sensor-plugins analyze``. May import ``inputs`` and the
bottom layer, never ``sensors`` or ``report``.
"""
