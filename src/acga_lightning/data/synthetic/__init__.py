"""Small generated datasets, written in the real on-disk layouts.

Nobody can download the real data here, so tests, the demo and the notebooks use data that
this package writes in exactly the real layout: the readers cannot tell the difference, except
for ``toy_manifest.json``, which records what was generated (for tests) and which no reader
may need. Everything is a function of the seed. One module per format (:mod:`.a2d`,
:mod:`.jhmdb`, :mod:`.ref_vos`, :mod:`.acga_h5`), on shared scenes (:mod:`.scenes`) and
sentences (:mod:`.text`); :mod:`.command` is ``acga toy-data``.
"""

from acga_lightning.data.synthetic.a2d import write_a2d
from acga_lightning.data.synthetic.command import toy_data_main
from acga_lightning.data.synthetic.jhmdb import write_jhmdb
from acga_lightning.data.synthetic.ref_vos import write_ref_vos
from acga_lightning.data.synthetic.scenes import Actor, Scene, render_frame, sample_scene
from acga_lightning.data.synthetic.text import describe, write_word2vec

__all__ = [
    "Actor",
    "Scene",
    "describe",
    "render_frame",
    "sample_scene",
    "toy_data_main",
    "write_a2d",
    "write_jhmdb",
    "write_ref_vos",
    "write_word2vec",
]
