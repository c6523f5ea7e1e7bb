import os
import sys

# tests import small helpers (oracle_weights, ...) from this folder
sys.path.insert(0, os.path.dirname(__file__))
