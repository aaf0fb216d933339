"""``wavfolder:DIR``: one subfolder of ``.wav`` files per class (sorted, as ImageFolder), or a flat
folder (unlabelled).

Files are 16-bit PCM, mono or stereo, any sample rate (:mod:`edgeport.audioio`);
every header is read when the source opens, so a bad file fails before
anything is written.  Each batch decodes only the window its clips keep and
runs the manifest's audio steps (:class:`edgeport.audio.AudioPreprocessing`),
the same code ``predict`` runs on a device.  Labels are class indices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .base import REAL_LABELLED, REAL_UNLABELLED, DataSource, file_identity, pool
from .imagefolder import list_class_folders

SUFFIXES = (".wav",)


class WavFolderSource(DataSource):
    kind = "wavfolder"

    def __init__(self, root: Path, preprocessing, *, positions=None, role=""):
        super().__init__(positions, role)
        self.root = Path(root)
        self.where = f"wavfolder:{self.root}"
        if getattr(preprocessing, "kind", None) != "audio":
            raise ConfigError(
                f"{self.where}: the model has no input with audio steps; export picks them for wavfolder data "
                "(or pass --preprocess kws or an audio JSON file)"
            )
        self.pre = preprocessing
        files, labels, classes = list_class_folders(self.root, SUFFIXES, "wavfolder", "WAV files")
        if files is None:
            files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
            if not files:
                raise DataError(
                    f"{self.where}: no .wav files found; pass one subfolder of WAV files per class"
                )
        self.files, self.labels_, self.classes = files, labels, classes
        self.label_kind = None if labels is None else "class"
        self.evidence = REAL_LABELLED if labels is not None else REAL_UNLABELLED
        self._check_headers()

    def _check_headers(self) -> None:
        from ..audioio import wav_info

        with pool() as p:
            list(p.map(wav_info, self.files))  # the first bad file raises its DataError

    def _all(self) -> int:
        return len(self.files)

    def _labels_full(self):
        return self.labels_

    def _feeds(self, positions):
        with pool() as p:
            waves = list(p.map(self.pre.decode_file, [self.files[i] for i in positions]))
        return {self.pre.input: self.pre.apply(np.stack(waves))}

    def identity(self) -> dict:
        d = file_identity(super().identity(), self.root, self.files, self._pos())
        d["sample_rate"] = self.pre.sample_rate
        if self.classes:
            d["classes"] = list(self.classes)
        return d
