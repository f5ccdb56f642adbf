"""Bottom layer: running the real engine binaries (find them, check content, replay pcaps).

Every stage that needs an engine uses these: ``generate`` to validate what it staged,
``sensors`` to replay and deploy. So they sit below both and import only ``errors``.
"""
