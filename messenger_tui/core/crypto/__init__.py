"""End-to-end crypto: identity keys, prekeys, X3DH, the Double Ratchet, sessions, safety
numbers and the identity key file. The app uses :mod:`.session`, :mod:`.keystore`,
:mod:`.safety` and the key generators in :mod:`.identity` / :mod:`.prekeys`; see
docs/protocol.md for the exact construction.
"""
