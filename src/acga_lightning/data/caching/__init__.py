"""Caches: I3D features on disk (:mod:`.features`, built by :mod:`.build`), decoded samples in
memory (:mod:`.memory`) and readers' parsed indexes (:mod:`.index`)."""
