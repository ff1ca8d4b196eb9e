"""Channel names and types from other systems: matching to montages, bads, types.

Recordings name their electrodes the way their amplifier does ('EEG Fz-Ref',
'EEG-Fz', 'Fp1.', 'FZ'); standard montages use the 10-05 names ('Fz', 'Fp1').
Some systems type EOG or ECG leads as EEG.  These helpers match names after
removing the common prefixes and reference suffixes (and say what they
matched), and apply the user's bad channels and channel types with clear errors.
"""

import re

import mne

from .errors import InputError

# Leading channel-type labels and trailing reference labels that amplifiers add.
_PREFIX = re.compile(r"^eeg[\s_\-:]*", re.IGNORECASE)
_SUFFIX = re.compile(r"[\s_\-:/]+(?:ref|reference|a1|a2|a1a2|m1|m2|m1m2|le|re|lm|rm|ar|av|avg|"
                     r"average|car|com|cz)$", re.IGNORECASE)


def canonical_name(name):
    """An electrode name without amplifier prefixes, reference suffixes and punctuation.

    ``'EEG Fz-Ref'``, ``'EEG-Fz'``, ``'Fz-A1'``, ``'Fz.'`` and ``'FZ'`` all give ``'fz'``.
    """
    text = str(name).strip().strip(".").strip()
    stripped = _SUFFIX.sub("", _PREFIX.sub("", text)).strip(" ._-")
    return (stripped or text).lower()


def match_names(names, montage_names):
    """Match recording channel names to montage names.

    Exact names (ignoring case) are matched first; the others after
    :func:`canonical_name` on both sides, when that is unambiguous.

    Returns
    -------
    matched : dict
        Recording name → montage name, for every channel matched.
    renamed : dict
        The part of ``matched`` that needed prefixes/suffixes removed.
    """
    exact = {m.lower(): m for m in montage_names}
    canonical = {}
    for m in montage_names:
        canonical.setdefault(canonical_name(m), []).append(m)
    matched, renamed = {}, {}
    for name in names:
        if name.lower() in exact:
            matched[name] = exact[name.lower()]
            continue
        candidates = canonical.get(canonical_name(name), [])
        if len(candidates) == 1:
            matched[name] = renamed[name] = candidates[0]
    # Two recording channels onto one electrode (e.g. 'Fz' and 'EEG Fz-Ref'): keep neither guess.
    taken = {}
    for name, target in matched.items():
        taken.setdefault(target, []).append(name)
    for target, sources in taken.items():
        if len(sources) > 1:
            for name in sources:
                if name in renamed:
                    del matched[name], renamed[name]
    return matched, renamed


def _split_list(text):
    if text is None:
        return []
    if isinstance(text, str):
        return [item.strip() for item in text.split(",") if item.strip()]
    return list(text)


def apply_channel_options(inst, *, bads=None, ch_types=None):
    """Mark bad channels and set channel types of a recording (in place).

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | mne.Evoked
    bads : str | list of str | None
        Channels to leave out (``'T7,T8'`` or a list).
    ch_types : dict | str | None
        Channel name → type (``{'HEOG': 'eog'}`` or ``'HEOG=eog,ECG=ecg'``), e.g.
        EOG leads that the file types as EEG.

    Raises
    ------
    InputError
        For names that are not channels of the recording, or unknown types.
    """
    if isinstance(ch_types, str):
        pairs = {}
        for item in _split_list(ch_types):
            name, sep, kind = item.partition("=")
            if not sep or not name.strip() or not kind.strip():
                raise InputError(f"Cannot read the channel type {item!r}.",
                                 "write NAME=TYPE pairs, e.g. --ch-types HEOG=eog,ECG=ecg.")
            pairs[name.strip()] = kind.strip().lower()
        ch_types = pairs
    ch_types = dict(ch_types or {})
    bads = _split_list(bads)
    unknown = [c for c in list(ch_types) + bads if c not in inst.ch_names]
    if unknown:
        raise InputError(
            f"Not channels of the recording: {', '.join(unknown)}.",
            f"use names from the recording: {', '.join(inst.ch_names[:12])}"
            + (", ..." if len(inst.ch_names) > 12 else "") + ".")
    if ch_types:
        try:
            inst.set_channel_types(ch_types, verbose=False)
        except (ValueError, KeyError) as exc:
            raise InputError(f"Cannot set the channel types {ch_types}: {exc}",
                             "use MNE channel types: eeg, eog, ecg, emg, misc, stim.") from None
    if bads:
        inst.info["bads"] = list(dict.fromkeys(list(inst.info["bads"]) + bads))
    return inst
