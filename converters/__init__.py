"""The conversion engine, the command-line interface and the Python API (``annobridge.converters``)."""
