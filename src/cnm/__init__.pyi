# The types of cnm's public surface; __init__.py loads these names lazily.
from cnm.lab import Lab as Lab
from cnm.lab import LabError as LabError
from cnm.lab import Network as Network
from cnm.lab import Sandbox as Sandbox

__version__: str
__all__ = ["Lab", "LabError", "Network", "Sandbox", "__version__"]
