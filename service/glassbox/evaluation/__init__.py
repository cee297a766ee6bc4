"""Explanation quality: faithfulness, localisation, randomisation sanity checks, robustness and
complexity of attribution maps, computed as one job over a set of images (its proto adapter:
`wire.kinds.evaluation`)."""
