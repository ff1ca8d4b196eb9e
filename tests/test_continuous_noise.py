"""The continuous mode's noise level: the reference and the windows measured alike."""

import numpy as np
import pytest
from _continuous_data import noise_only_eeg

from meeg_inverse.continuous import localize_continuous


@pytest.mark.parametrize("noise_segment", [(0.0, 6.0), None])
def test_stationary_noise_only_recording_has_a_noise_ratio_of_one(
        sample_evoked, sample_forward, sample_cov, noise_segment):
    """The noise segment was mean-subtracted and the windows were not: on this recording
    (offsets as large as the noise) every window's noise_ratio was ~2, the segment's level
    half the windows'. Measured alike, it is 1 (within :data:`NOISE_CHANGE`, not rescaled)."""
    raw, cov = noise_only_eeg(sample_evoked, sample_cov)
    with pytest.warns(RuntimeWarning, match="not high-pass filtered"):
        result = localize_continuous(raw, sample_forward, cov, noise_segment=noise_segment)
    ratio = np.asarray(result.windows["noise_ratio"])
    assert ratio.size == 119
    np.testing.assert_array_equal(ratio, 1.0)
    # The reference holds the offsets: twice the whitened noise of the samples alone
    # (1 per channel and sample, up to the estimate's spread).
    assert 1.6 < result.noise["variance"] < 2.4
