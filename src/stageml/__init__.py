"""stageml: infer each buyer's Buying Stage and the likelihood of the next inflection.

Importing the package has no side effects: no tracking URI is set, no folder is made and
no logging is configured. Entry points live in :mod:`stageml.cli`.
"""

__version__ = "0.1.0"
