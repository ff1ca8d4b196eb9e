"""Names the command line accepts, without importing the solvers.

``meeg-inverse localize`` checks its options in a light launcher process (see
:mod:`meeg_inverse._stages`): these constants are what that check needs, so
that it imports neither numpy nor numba. :data:`PENALTY_NAMES` equals the keys
of :data:`meeg_inverse.penalties.PENALTIES` (tested).
"""

#: Every penalty :func:`meeg_inverse.penalties.make_penalty` builds, by name.
PENALTY_NAMES = ("l21", "weighted_l21", "l1", "mcp", "scad", "l05", "l23", "log", "irmxne")
#: The penalty of the default rule when none is given: BIC along the L0.5 path
#: won the study (amendment 5); a number or 'sure' keeps MNE's L2,1.
DEFAULT_RULE_PENALTY = "l05"


def resolve_penalty(penalty, alpha):
    """The penalty to use: ``penalty``, or the default of the λ rule when it is None."""
    if penalty is not None:
        return penalty
    return DEFAULT_RULE_PENALTY if alpha == "auto" else "l21"
