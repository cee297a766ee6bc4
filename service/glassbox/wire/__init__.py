"""Proto ↔ core translations: the one package outside server/ that imports protobuf or the generated
messages (tests/test_import_rules.py holds it to that). Shared by the gRPC servicers (server/) and the
job kinds (`kinds`), which also run in `glassbox worker` processes with no server: no grpc import, and no
model work (the kinds' `run` functions call into the areas; some results still render their figures
while translating).

One module per area (attribution, generative, inspection, evaluation, robustness, monitoring,
image_sets, method_params, tensors), `fields` for proto3 optional fields and enums, `jobs` for a job
kind over proto messages, and `kinds` for the kinds themselves (`kinds.job_kinds()`).
"""
