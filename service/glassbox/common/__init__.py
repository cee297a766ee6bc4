"""What several areas (attribution methods, generative, inspection, robustness, evaluation) share:
per-call hooks on the shared model (`hooks`), layer capture (`capture`), layer lookup and index checks
(`layers`), range and limit checks (`validation`) and the small result types they exchange (`types`).

Sits above `backends`/`models` and below `methods`, `serving` and the areas; imports none of them.
"""
