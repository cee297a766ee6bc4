"""What several areas (attribution methods, generative, inspection, robustness, evaluation) share:
per-call hooks on the shared model (`hooks`), layer capture (`capture`), layer lookup and index checks
(`layers`), range and limit checks (`validation`), threat models (`threat`) and the one projected
gradient descent (`pgd`).

Sits above `core`, `config` and `backends` and below `methods`, `serving` and the areas; imports none
of them.
"""
