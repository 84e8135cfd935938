"""The lab: a local emulation of AKS + Entra ID + ARM + Key Vault that real clients use unchanged.

Start it with ``python -m lab up --state-dir DIR``; see ``lab.runtime.Lab`` for the in-process API.
"""
