"""Sans-I/O core: wire formats, payloads and crypto.

Imports only the stdlib, nacl and msgspec (an import-linter contract enforces it).
"""
