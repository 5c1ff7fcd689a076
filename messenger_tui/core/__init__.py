"""Sans-I/O core: wire formats, relay session protocol and crypto. Imports only stdlib, nacl, msgspec."""
