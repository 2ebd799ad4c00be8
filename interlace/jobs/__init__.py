"""Resumable jobs: units of work run into one store, resumed after any interruption, refused
when the store holds another job. :mod:`.engine` is the engine; ``cache`` (:mod:`.cache`) and
studies (:mod:`interlace.studies.execute`) are its jobs. :mod:`.dataset` reads the datasets
they run over, :mod:`.model` the model's side of a job, :mod:`.writer` writes units in the
background.
"""
