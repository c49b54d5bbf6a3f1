"""The embedded DNS resolver: one server in the daemon answers every sandbox that uses it.

``records`` holds the names per network and each sandbox's view of them, ``resolver`` the
per-sandbox listeners on 127.0.0.11:53 and the answering, ``forward`` the upstream queries.
"""
