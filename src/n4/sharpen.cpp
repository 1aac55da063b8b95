// ITK's SharpenImage: the intensity mapping E(u|v) that deconvolves the log-intensity histogram by
// the Gaussian model of the bias blur (Wiener filter in the Fourier domain).
#include "internal.hpp"

#include <algorithm>
#include <cmath>
#include <complex>

namespace voxalign {
namespace n4_detail {

std::vector<Real> sharpening_map(const std::vector<double>& hist, Real bin_min, Real slope, const N4Options& o,
                                Eigen::FFT<double>& fft) {
  const int bins = o.bins;
  const double exponent = std::ceil(std::log(static_cast<double>(bins)) / std::log(2.0)) + 1;
  const auto padded = static_cast<unsigned>(std::pow(2.0, exponent) + 0.5);
  const auto offset = static_cast<unsigned>(0.5 * (padded - bins));
  using C = std::complex<double>;
  std::vector<C> V(padded, C(0, 0)), Vf, F(padded, C(0, 0)), Ff, U, Uf(padded), num(padded), numf, den, denf;
  for (int n = 0; n < bins; ++n) V[n + offset] = hist[static_cast<size_t>(n)];
  fft.fwd(Vf, V);

  // Gaussian of the given FWHM (in bins), as ITK samples it.
  const Real scaled_fwhm = static_cast<Real>(o.fwhm) / slope;
  const Real exp_factor = static_cast<Real>(4.0 * std::log(2.0) / (static_cast<double>(scaled_fwhm) * scaled_fwhm));
  const Real scale_factor = static_cast<Real>(2.0 * std::sqrt(std::log(2.0) / M_PI) / scaled_fwhm);
  F[0] = C(scale_factor, 0.0);
  const unsigned half = padded / 2;
  for (unsigned n = 1; n <= half; ++n)
    F[n] = F[padded - n] = C(scale_factor * std::exp(-static_cast<double>(n) * n * exp_factor), 0.0);
  if (padded % 2 == 0)
    F[half] = C(scale_factor * std::exp(0.25 * -static_cast<double>(padded) * padded * exp_factor), 0.0);
  fft.fwd(Ff, F);

  // Wiener deconvolution of the histogram.
  for (unsigned n = 0; n < padded; ++n) {
    const C c = std::conj(Ff[n]);
    const C g = c / (c * Ff[n] + o.wiener);
    Uf[n] = Vf[n] * g.real();
  }
  fft.inv(U, Uf); // Eigen scales the inverse by 1/N, vnl does not: E below is a ratio, so it is the same
  for (auto& u : U) u = C(std::max(u.real(), 0.0), 0.0);

  // E(u|v) = (v * U conv F) / (U conv F).
  for (unsigned n = 0; n < padded; ++n)
    num[n] = C((bin_min + (static_cast<Real>(n) - static_cast<Real>(offset)) * slope) * U[n].real(), 0.0);
  fft.fwd(numf, num);
  for (unsigned n = 0; n < padded; ++n) numf[n] *= Ff[n];
  fft.inv(num, numf);
  fft.fwd(denf, U);
  for (unsigned n = 0; n < padded; ++n) denf[n] *= Ff[n];
  fft.inv(den, denf);
  std::vector<Real> E(static_cast<size_t>(bins));
  for (int n = 0; n < bins; ++n) {
    const double d = den[n + offset].real();
    E[static_cast<size_t>(n)] = d != 0.0 ? static_cast<Real>(num[n + offset].real() / d) : Real(0);
  }
  return E;
}

} // namespace n4_detail
} // namespace voxalign
