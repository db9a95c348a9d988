"""The Speech Commands folder layout: which clip goes to which class and split.

The layout (used unchanged by Speech Commands v1/v2 and by our synthetic data)::

    ROOT/<word>/<speaker>_nohash_<n>.wav   one folder per spoken word
    ROOT/_background_noise_/*.wav          long noise recordings
    ROOT/validation_list.txt               relative paths of the eval split
    ROOT/testing_list.txt                  relative paths of the test split

Clips not named in either list are training clips. The lists are made per speaker,
so no speaker appears in two splits. Words in ``words`` are classes; every other
word folder feeds ``_unknown_`` (a fixed fraction of each split, sampled with a
seed); ``_silence_`` clips are cut from the noise recordings, each split from its
own disjoint stretch of every recording, so the splits share no audio either.
"""

from __future__ import annotations

import dataclasses
import posixpath
import random
from typing import Dict, List, Sequence

# The split vocabulary every ExampleGen of the project shares (components/ingestion.py).
from components.ingestion import (EVAL, SPLIT_LISTS, SPLITS, TEST, TRAIN, Filesystem,  # noqa: F401
                                  missing_from_lists, read_split_lists, speaker_of)

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
NOISE_DIR = "_background_noise_"
# Stands for silence examples when a dataset has no noise recordings.
DIGITAL_SILENCE = f"{NOISE_DIR}/digital_silence"
# Each noise recording is cut into disjoint stretches, one per split.
NOISE_REGIONS = {TRAIN: (0.0, 0.8), EVAL: (0.8, 0.9), TEST: (0.9, 1.0)}


@dataclasses.dataclass(frozen=True, slots=True)
class ClipRef:
    """One example to be produced: a word clip, or a slice of a noise recording.

    Attributes:
        relative: the path below the dataset root, as in the split lists.
        label: the class (a wanted word, ``_unknown_`` or ``_silence_``).
        word: the folder the clip came from.
        speaker: the speaker id (the file name before ``_nohash_``).
        split: ``train``, ``eval`` or ``test``.
        offset: for silence, the first sample taken from the noise recording.
        gain: for silence, the factor the noise is scaled by.
    """

    relative: str
    label: str
    word: str
    speaker: str
    split: str
    offset: int = 0
    gain: float = 1.0

    @property
    def source(self) -> str:
        """A unique, human-readable name of the example's origin."""
        if self.label == SILENCE_LABEL:
            return f"{self.relative}#{self.offset}"
        return self.relative


class LayoutError(ValueError):
    """The dataset folder does not have the Speech Commands layout."""


def check_layout(root: str, words: Sequence[str], fs: Filesystem) -> None:
    """Raises LayoutError, naming what is missing, when ``root`` is not a usable dataset."""
    if not fs.isdir(root):
        raise LayoutError(f"The dataset folder {root} does not exist.")
    missing_lists = [name for name in SPLIT_LISTS.values() if not fs.exists(posixpath.join(root, name))]
    if missing_lists:
        raise LayoutError(
            f"The dataset folder {root} has no {' or '.join(missing_lists)}. These files name "
            "the clips of the eval and test splits (one relative path a line, split by speaker), "
            "as in Speech Commands; create them, possibly empty, or regenerate the data with "
            "'tinyml-tfx data generate'.")
    missing_words = [w for w in words if not fs.isdir(posixpath.join(root, w))]
    if missing_words:
        raise LayoutError(
            f"The dataset folder {root} has no folder for the word(s) {', '.join(missing_words)} "
            "named in the config's data.words. Add the folders or remove the words from the config.")


def plan_clips(
    root: str,
    words: Sequence[str],
    fs: Filesystem,
    noise_lengths: Dict[str, int],
    *,
    clip_samples: int,
    unknown_fraction: float,
    silence_fraction: float,
    seed: int,
) -> List[ClipRef]:
    """Assigns every clip under ``root`` to a class and a split.

    Args:
        root: the dataset folder.
        words: the wanted words, in class order.
        fs: file operations for ``root``.
        noise_lengths: sample counts of the readable noise recordings, by relative path.
        clip_samples: samples per clip.
        unknown_fraction: ``_unknown_`` examples per split, as a fraction of that
            split's wanted-word examples.
        silence_fraction: ``_silence_`` examples per split, likewise.
        seed: makes the sampling of unknown and silence examples repeatable.

    Returns:
        The clips to read, sorted by split and path.
    """
    check_layout(root, words, fs)
    listed = read_split_lists(root, fs)

    wanted = set(words)
    word_clips: List[ClipRef] = []
    unknown_pool: Dict[str, List[ClipRef]] = {s: [] for s in SPLITS}
    for folder in sorted(fs.listdir(root)):
        folder = folder.rstrip("/")
        if folder == NOISE_DIR or folder.startswith(".") or not fs.isdir(posixpath.join(root, folder)):
            continue
        for name in sorted(fs.listdir(posixpath.join(root, folder))):
            if not name.lower().endswith(".wav"):
                continue
            relative = f"{folder}/{name}"
            split = listed.get(relative, TRAIN)
            label = folder if folder in wanted else UNKNOWN_LABEL
            clip = ClipRef(relative, label, folder, speaker_of(name), split)
            if label == UNKNOWN_LABEL:
                unknown_pool[split].append(clip)
            else:
                word_clips.append(clip)

    rng = random.Random(seed)
    clips = list(word_clips)
    for split in SPLITS:
        n_wanted = sum(1 for c in word_clips if c.split == split)
        pool = unknown_pool[split]
        n_unknown = min(len(pool), round(unknown_fraction * n_wanted))
        clips.extend(rng.sample(pool, n_unknown))
        clips.extend(_silence_clips(split, round(silence_fraction * n_wanted), noise_lengths,
                                    clip_samples, rng))
    clips.sort(key=lambda c: (SPLITS.index(c.split), c.relative, c.offset))
    return clips


def _silence_clips(split: str, count: int, noise_lengths: Dict[str, int], clip_samples: int,
                   rng: random.Random) -> List[ClipRef]:
    if count <= 0:
        return []
    if not noise_lengths:
        # No noise recordings: digital silence, so the class still exists.
        return [ClipRef(DIGITAL_SILENCE, SILENCE_LABEL, NOISE_DIR, "noise-none",
                        split, offset=i, gain=0.0) for i in range(count)]
    names = sorted(noise_lengths)
    lo, hi = NOISE_REGIONS[split]
    result = []
    for _ in range(count):
        name = rng.choice(names)
        length = noise_lengths[name]
        start, end = int(lo * length), int(hi * length)
        last_start = max(start, end - clip_samples)
        offset = rng.randint(start, last_start)
        gain = round(rng.uniform(0.0, 1.0), 4)
        result.append(ClipRef(name, SILENCE_LABEL, NOISE_DIR, f"noise-{speaker_of(name)}",
                              split, offset=offset, gain=gain))
    return result


def noise_files(root: str, fs: Filesystem) -> List[str]:
    """Relative paths of the WAV files in ``_background_noise_``."""
    noise_dir = posixpath.join(root, NOISE_DIR)
    if not fs.isdir(noise_dir):
        return []
    return sorted(f"{NOISE_DIR}/{n}" for n in fs.listdir(noise_dir) if n.lower().endswith(".wav"))
