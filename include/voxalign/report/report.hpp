// Plots (SVG), slice images (PNG) and the HTML report of a realignment (docs/realign.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "voxalign/image/image.hpp"
#include "voxalign/realign/realign.hpp"

namespace voxalign {

/// An SVG line plot: one curve per series (all the same length), x = frame index.
std::string svg_line_plot(const std::string& title, const std::string& ylabel, const std::vector<std::string>& names,
                          const std::vector<std::vector<double>>& series);

/// An 8-bit greyscale PNG file's bytes (rows top to bottom), deflate-compressed with zlib.
std::string png_gray(const std::vector<uint8_t>& pixels, int width, int height);
/// The same for 8-bit RGB (3 bytes per pixel, rows top to bottom).
std::string png_rgb(const std::vector<uint8_t>& pixels, int width, int height);

std::string base64(const std::string& bytes);

/// Three orthogonal middle slices of a 3D image side by side (planes k, j and i of the voxel grid,
/// the last voxel axis of each panel drawn upwards), scaled from 0 to the 99.5th percentile, as a PNG.
std::string orthogonal_slices_png(const Image<float>& img);

/// Write DIR/index.html (self-contained: plots inline, slices embedded) plus the plots as
/// DIR/translation.svg, rotation.svg, fd.svg and the slices as DIR/mean_before.png, mean_after.png.
void write_realign_report(const std::string& dir, const std::string& input_name, const RealignResult& r,
                          const Image<float>& mean_before, const Image<float>& mean_after, double seconds);

} // namespace voxalign
