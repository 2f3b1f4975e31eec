"""toyworld: oodbench's bundled offline benchmark, a plug-in (see :mod:`oodbench.toyworld.plugin`).

A deterministic generator of small RGB images of shapes and textures with captions (vocabulary and
caption grammar as data in ``world.json``), a tiny CLIP trained on them (config ``toyclip``, weights in
``assets/``) and the benchmark built from them (``toyworld.toml``): ID = 10 object classes, near-OOD = the
other 20 classes, far-OOD = object-free texture scenes. Everything toyworld is lives in this one folder
(the repository's ``toyworld/``, shipped as ``oodbench.toyworld``): the generator, its data sets, lexicon,
weights, suite, the scripts that trained the weights (``scripts/``) and ``README.md``.

Modules: ``world`` (the vocabulary), ``geometry`` / ``textures`` / ``render`` (pixels), ``scene``
(seeded sampling), ``captions`` (the grammar), ``generate`` (PNG folders), ``datasets`` / ``lexicon`` /
``weights`` (what the plug-in registers), ``pairs`` (image-caption pairs for training), ``quickeval``
(a quick zero-shot check of a model). Importing this package imports nothing else.
"""
