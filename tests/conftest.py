import os
import sys

# tests import small helpers (oracle_weights, ...) from this folder
sys.path.insert(0, os.path.dirname(__file__))

# Under pytest-xdist (`-n 2`) each worker process gets one intra-op thread: two workers then use the two cores
# without oversubscribing them (torch's thread pools spin while they wait, and 2 x 2 threads on 2 cores run
# several times slower than 2 x 1).
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
