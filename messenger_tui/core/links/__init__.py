"""Connection lifecycles as transition tables (sans-I/O), driven by the transport's asyncio
code: the relay link (:mod:`.relay_link`) and a call's media link (:mod:`.media_rejoin`)."""
