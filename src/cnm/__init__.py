"""cnm: the Container Network Model (the design behind Docker's libnetwork) in Python."""

__version__ = "0.1.0"
