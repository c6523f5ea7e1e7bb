"""Speed benchmarks of sszoo against torchvision and MMSegmentation: ``python -m benchmarks.run``.

See docs/benchmarks.md. Not part of the installed package; run it from the repository root.
"""
