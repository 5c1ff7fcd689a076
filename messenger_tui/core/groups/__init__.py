"""Group chats (sans-I/O): sender keys (:mod:`.sender_keys`), held messages (:mod:`.pending`)
and signed, versioned membership (:mod:`.membership`)."""
