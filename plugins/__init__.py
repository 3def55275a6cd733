"""Built-in formats. Every public module here is a plugin registered like a third-party one."""
