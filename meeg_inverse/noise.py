"""The noise level of an average, measured on its own pre-stimulus baseline.

The whitener makes the noise of *single trials* white with unit variance when
the noise covariance is right; the noise of an average of ``nave`` trials then
has variance ``1 / nave``. Real covariances are estimated from other data
(another run, empty room) and real filtered recordings are correlated in time,
so the selection of λ and the confidence redraws use the level and the lag-1
temporal autocorrelation measured on the average's own whitened baseline when
it has enough samples (on the shared sample averages: 1.06–1.24 × 1/nave, lag-1
autocorrelation 0.61–0.64).
"""

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["NoiseEstimate", "baseline_noise", "draw_noise"]

#: Fewest pre-stimulus samples for a baseline estimate of the noise level.
MIN_BASELINE_SAMPLES = 10


@dataclass
class NoiseEstimate:
    """Noise of the whitened average.

    Attributes
    ----------
    variance : float
        Per channel and sample (whitened units; ``1 / nave`` nominally).
    autocorrelation : float
        Lag-1 temporal autocorrelation of the noise (0 when unknown).
    nominal_variance : float
        ``1 / nave``: what the noise covariance alone predicts.
    n_samples : int
        Baseline samples used (0 for the nominal level).
    source : str
        ``'baseline'`` or ``'nominal'``.
    """

    variance: float
    autocorrelation: float
    nominal_variance: float
    n_samples: int
    source: str

    @property
    def std(self):
        return float(np.sqrt(self.variance))

    @property
    def ratio_to_nominal(self):
        return float(self.variance / self.nominal_variance)

    def as_dict(self):
        return {**asdict(self), "ratio_to_nominal": self.ratio_to_nominal}


def baseline_noise(evoked, whitener, ch_names):
    """Noise of a whitened average from its pre-stimulus samples.

    Parameters
    ----------
    evoked : mne.Evoked
        The whole (uncropped) average, baseline-corrected.
    whitener : ndarray, shape (n_whitened, n_channels)
        The whitener of the problem (rows of the noise covariance's rank).
    ch_names : list of str
        The channels the whitener acts on, in its order.

    Returns
    -------
    noise : NoiseEstimate
        Measured on the baseline when it has at least
        :data:`MIN_BASELINE_SAMPLES` samples, else the nominal ``1 / nave``.
    """
    nave = max(int(evoked.nave), 1)
    nominal = 1.0 / nave
    pre = evoked.times < 0
    if pre.sum() < MIN_BASELINE_SAMPLES:
        return NoiseEstimate(nominal, 0.0, nominal, 0, "nominal")
    picks = [evoked.ch_names.index(c) for c in ch_names]
    base = whitener @ evoked.data[picks][:, pre]
    base = base - base.mean(axis=1, keepdims=True)
    n_samples = base.shape[1]
    # ddof 1 per channel: the baseline correction removed each channel's mean.
    variance = float(np.sum(base ** 2) / (base.shape[0] * (n_samples - 1)))
    rho = float(np.sum(base[:, :-1] * base[:, 1:]) / max(np.sum(base ** 2), 1e-300))
    return NoiseEstimate(variance, float(np.clip(rho, 0.0, 0.99)), nominal, n_samples,
                         "baseline")


def draw_noise(rng, shape, noise):
    """Gaussian noise with the estimate's variance and AR(1) temporal correlation.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (n_channels, n_times)
    noise : NoiseEstimate

    Returns
    -------
    draw : ndarray, shape ``shape``
    """
    e = rng.standard_normal(shape)
    rho = noise.autocorrelation
    if rho > 0:
        from scipy.signal import lfilter

        # x_t = ρ x_{t-1} + √(1-ρ²) e_t with x_0 = e_0 (stationary, unit variance):
        # the recursion in C, its initial state chosen so that x_0 = e_0.
        scale = np.sqrt(1.0 - rho ** 2)
        e, _ = lfilter([scale], [1.0, -rho], e, axis=1, zi=(1.0 - scale) * e[:, :1])
    return e * noise.std
