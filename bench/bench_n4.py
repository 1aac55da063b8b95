"""N4 benchmark: voxalign vs SimpleITK (ITK's N4BiasFieldCorrectionImageFilter) on the same input,
same settings, in one run. Figures go to bench/RESULTS.md.

Input: a real T1 (Debian mricron-data's ch2.nii.gz, 181x217x181, 1 mm) multiplied by a known smooth
bias field, written as .nii.gz. Cases:
  shrink4   end to end (read .nii.gz, Otsu mask, shrink 4, N4 50x50x50x50, full-resolution bias,
            divide, write .nii.gz): `voxalign n4` CLI vs the same pipeline in SimpleITK.
  fullres   N4 at shrink 1 with 50x50x30x20 iterations on an image given by --fullres-zoom
            (1 = the 1 mm T1; 2 = the T1 at 2 mm, ~7x fewer voxels, so that ITK finishes in minutes),
            same Otsu mask for both, in memory (no I/O): voxalign.n4 vs SimpleITK.
  accuracy  the phantom of tests/python/test_n4_vs_sitk.py (40x48x36 for shrink 1, 64x72x56 otherwise):
            one iteration on one level, and 50x50x50x50 at shrink 1, 2, 3, 4, against SimpleITK
            (its 2-line ANTs pipeline: Shrink, N4, lattice on the full grid), same mask.
Accuracy against ITK (mean and 95th percentile of |ratio / median ratio - 1| inside the mask) and
against the truth (the T1 before the bias) is printed with each timing.

Usage: python3 bench/bench_n4.py [--cases shrink4,fullres] [--fullres-zoom 2] [--threads 2]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import nibabel as nib
import numpy as np
import SimpleITK as sitk

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "release", "python"))
import voxalign as vx  # noqa: E402

T1 = "/usr/share/mricron/templates/ch2.nii.gz"
VOXALIGN = os.path.join(HERE, "..", "build", "release", "voxalign")


def biased_t1(zoom: int):
    im = nib.load(T1)
    a = np.asarray(im.dataobj, dtype=np.float32)
    aff = im.affine.copy()
    if zoom > 1:
        a = a[::zoom, ::zoom, ::zoom].copy()
        aff[:3, :3] *= zoom
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in a.shape], indexing="ij")
    bias = np.exp(0.25 * x - 0.2 * y**2 + 0.3 * z + 0.1 * x * z).astype(np.float32)
    return a, a * bias, bias, aff


def rel(a, b, m):
    r = a[m > 0].astype(np.float64) / b[m > 0]
    d = np.abs(r / np.median(r) - 1)
    return d.mean(), np.percentile(d, 95)


def to_sitk(a, spacing):
    im = sitk.GetImageFromArray(np.ascontiguousarray(a.transpose(2, 1, 0)))
    im.SetSpacing([float(s) for s in spacing])
    return im


def from_sitk(im):
    return sitk.GetArrayFromImage(im).transpose(2, 1, 0)


def sitk_pipeline(inp, out):
    """What the CLI does, in SimpleITK: read, Otsu, shrink 4, N4, full-res bias, divide, write."""
    im = sitk.ReadImage(inp, sitk.sitkFloat32)
    mask = sitk.OtsuThreshold(im, 0, 1, 128)
    c = sitk.N4BiasFieldCorrectionImageFilter()
    c.SetMaximumNumberOfIterations([50, 50, 50, 50])
    c.SetConvergenceThreshold(0.0)
    c.SetNumberOfControlPoints([4, 4, 4])
    c.Execute(sitk.Shrink(im, [4] * 3), sitk.Shrink(mask, [4] * 3))
    corrected = im / sitk.Exp(c.GetLogBiasFieldAsImage(im))
    sitk.WriteImage(corrected, out)


def case_shrink4(tmp, threads):
    truth, biased, _, aff = biased_t1(1)
    inp = os.path.join(tmp, "t1_biased.nii.gz")
    nib.save(nib.Nifti1Image(biased, aff), inp)
    o_vx, o_itk = os.path.join(tmp, "vx.nii.gz"), os.path.join(tmp, "itk.nii.gz")
    t = time.perf_counter()
    subprocess.run([VOXALIGN, "n4", inp, "-o", o_vx, "-q", "--threads", str(threads)], check=True)
    t_vx = time.perf_counter() - t
    t = time.perf_counter()
    sitk_pipeline(inp, o_itk)
    t_itk = time.perf_counter() - t
    a_vx = np.asarray(nib.load(o_vx).dataobj, dtype=np.float32)
    a_itk = np.asarray(nib.load(o_itk).dataobj, dtype=np.float32)
    mask = vx.otsu_mask(biased)
    print(f"shrink4 end-to-end 181x217x181: voxalign {t_vx:.2f} s, SimpleITK {t_itk:.2f} s, ratio {t_itk / t_vx:.1f}x")
    print("  vs ITK mean %.2e p95 %.2e; vs truth: voxalign mean %.4f, ITK mean %.4f" %
          (*rel(a_vx, a_itk, mask), rel(a_vx, truth, mask)[0], rel(a_itk, truth, mask)[0]))


def case_fullres(zoom, threads):
    truth, biased, _, aff = biased_t1(zoom)
    spacing = np.sqrt((aff[:3, :3] ** 2).sum(0))
    mask = vx.otsu_mask(biased)
    vx.set_num_threads(threads)
    iters = [50, 50, 30, 20]
    t = time.perf_counter()
    out, _ = vx.n4(biased, mask, spacing=spacing, iterations=iters, shrink=1)
    t_vx = time.perf_counter() - t
    c = sitk.N4BiasFieldCorrectionImageFilter()
    c.SetMaximumNumberOfIterations(iters)
    c.SetConvergenceThreshold(0.0)
    c.SetNumberOfControlPoints([4, 4, 4])
    im, mk = to_sitk(biased, spacing), to_sitk(mask, spacing)
    t = time.perf_counter()
    ref = from_sitk(c.Execute(im, mk))
    t_itk = time.perf_counter() - t
    print(f"fullres {'x'.join(map(str, biased.shape))} ({spacing[0]:.0f} mm), 50x50x30x20, shrink 1: "
          f"voxalign {t_vx:.2f} s, SimpleITK {t_itk:.1f} s, ratio {t_itk / t_vx:.0f}x")
    print("  vs ITK mean %.2e p95 %.2e; vs truth: voxalign mean %.4f, ITK mean %.4f" %
          (*rel(out, ref, mask), rel(out, truth, mask)[0], rel(ref, truth, mask)[0]))


def case_accuracy():
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
    from test_n4_vs_sitk import itk_n4, phantom  # the same phantom and ITK pipeline as the tests

    img, mask, truth = phantom()
    ref, _, _ = itk_n4(img, mask, [1])
    out, _ = vx.n4(img, mask, iterations=[1], shrink=1)
    print("accuracy, phantom 40x48x36, one iteration: vs ITK mean %.1e p95 %.1e" % rel(out, ref, mask))
    for shrink in (1, 2, 3, 4):
        shape = (40, 48, 36) if shrink == 1 else (64, 72, 56)
        img, mask, truth = phantom(shape, seed=shrink)
        ref, _, _ = itk_n4(img, mask, [50, 50, 50, 50], shrink=shrink)
        out, _ = vx.n4(img, mask, iterations=[50, 50, 50, 50], shrink=shrink)
        print("accuracy, phantom %s, 50x50x50x50, shrink %d: vs ITK mean %.1e p95 %.1e; vs truth voxalign %.4f ITK %.4f"
              % ("x".join(map(str, shape)), shrink, *rel(out, ref, mask), rel(out, truth, mask)[0],
                 rel(ref, truth, mask)[0]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cases", default="shrink4,fullres")
    p.add_argument("--fullres-zoom", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(a.threads)
    print(f"SimpleITK {sitk.Version.VersionString()} ({a.threads} threads), voxalign {vx.__version__} "
          f"({a.threads} threads), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        for c in a.cases.split(","):
            if c == "shrink4":
                case_shrink4(tmp, a.threads)
            elif c == "fullres":
                case_fullres(a.fullres_zoom, a.threads)
            elif c == "accuracy":
                case_accuracy()


if __name__ == "__main__":
    main()
