"""The device half: what a device is (:mod:`edgeport.host`), whether a bundle still gives the right answers
on it (:mod:`.selfcheck`), and running edgeport on a remote device (:mod:`.remote`) or on every
device of a Ray cluster (:mod:`.fleet`).  torch-free.
"""
