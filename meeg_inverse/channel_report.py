"""Which channels of a recording a localization leaves out, and why.

A forward solution or noise covariance computed for fewer channels than the
recording has makes the inverse use fewer sensors; that must never happen
without a word, and losing a whole channel type (all the EEG of a MEG+EEG
recording) is refused unless asked for.
"""

from dataclasses import dataclass, field

from .errors import InputError

_TYPE_NAMES = {"mag": "magnetometer", "grad": "gradiometer", "eeg": "EEG"}


@dataclass
class ChannelReport:
    """The M/EEG channels of a recording: used, and left out by reason.

    Attributes
    ----------
    used : dict
        Channel type → number of channels used.
    left_out : dict
        Reason → list of channel names.
    lost_types : list of str
        Channel types with good channels in the recording and none used.
    """

    used: dict
    left_out: dict = field(default_factory=dict)
    lost_types: list = field(default_factory=list)

    def lines(self):
        """One line per reason a channel is left out that the user did not ask for."""
        out = []
        for reason, names in self.left_out.items():
            if reason.startswith("marked bad"):
                continue  # the recording's or covariance's own choice
            shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)"
                                             if len(names) > 10 else "")
            out.append(f"{len(names)} channel(s) {reason} are left out: {shown}")
        return out

    def as_dict(self):
        return {"used": self.used, "left_out": self.left_out, "lost_types": self.lost_types}


def channel_report(info, forward, noise_cov):
    """Compare the recording's M/EEG channels with the forward and the noise covariance.

    Parameters
    ----------
    info : mne.Info
        The recording's measurement info.
    forward : mne.Forward
    noise_cov : mne.Covariance

    Returns
    -------
    report : ChannelReport
    """
    types = dict(zip(info["ch_names"], info.get_channel_types()))
    meeg = [c for c in info["ch_names"] if types[c] in _TYPE_NAMES]
    fwd_names = set(forward["sol"]["row_names"])
    cov_names = set(noise_cov["names"])
    bads_rec, bads_cov = set(info["bads"]), set(noise_cov["bads"])
    left_out, used = {}, []
    for name in meeg:
        if name in bads_rec:
            reason = "marked bad in the recording"
        elif name in bads_cov:
            reason = "marked bad in the noise covariance"
        elif name not in fwd_names:
            reason = "not in the forward solution"
        elif name not in cov_names:
            reason = "not in the noise covariance"
        else:
            used.append(name)
            continue
        left_out.setdefault(reason, []).append(name)
    good_types = {types[c] for c in meeg if c not in bads_rec}
    used_types = {types[c] for c in used}
    counts = {t: sum(types[c] == t for c in used) for t in sorted(used_types)}
    return ChannelReport(used=counts, left_out=left_out,
                         lost_types=sorted(good_types - used_types))


def check_channel_types(report, *, allow=False, api=False):
    """Refuse to lose a whole channel type of the recording, unless ``allow``.

    ``api``: the message's fix is for the Python API (MNE objects in hand), not the
    command line's options.

    Raises
    ------
    InputError
        A channel type of the recording has no channel left, and not ``allow``.
    """
    if not report.lost_types or allow or not report.used:
        return  # with no channel at all, the inverse's own check names the problem
    lost = " and ".join(_TYPE_NAMES[t] for t in report.lost_types)
    where = sorted({reason for reason in report.left_out if not reason.startswith("marked")})
    raise InputError(
        f"All {lost} channels of the recording would be left out "
        f"({'; '.join(where) or 'left out'}), so the localization would use only "
        f"{', '.join(f'{n} {_TYPE_NAMES[t]}' for t, n in report.used.items())} channels.",
        ("pass a forward solution and noise covariance that cover every channel type of "
         "the recording, or pick the channels to localize with first, e.g. "
         f"evoked.copy().pick({sorted(report.used)!r})." if api else
         "give a forward solution and noise covariance that cover every channel type of the "
         "recording, or add --allow-missing-types to localize without them."))
