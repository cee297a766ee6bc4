"""Explanation quality: faithfulness, localisation, randomisation sanity checks, robustness and
complexity of attribution maps, computed as one job (`kinds.py`) over a set of images."""
