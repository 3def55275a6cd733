"""The canonical model, format declarations, plugin hooks and errors (``annobridge.core``)."""
