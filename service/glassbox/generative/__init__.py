"""Generative methods: images made by optimisation against a model (feature visualisation, class model
visualisation, DeepDream, feature inversion, style transfer, adversarial images).

Shared pieces, one module each: `objectives`, `parametrisations`, `transforms`, `regularisers` and
`optimise` (the loop); layer capture and checks come from `glassbox.common`. Each method is one small
module on top of them. Nothing here knows about protos: `wire.generative` and `wire.kinds.generative`
translate the job specs of generative.proto to and from these core types.
"""
