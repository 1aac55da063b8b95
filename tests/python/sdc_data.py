"""Blip-up/blip-down test pairs for `voxalign sdc`, made from real images distorted by a known
smooth field with scipy (independent of voxalign's model code): mricron's ch2 T1 block-averaged to
2 mm (or coarser) with ch2bet as the brain mask, or a frame of nibabel's example4d EPI.

The forward model is topup's: along the phase-encoding axis, a structure at true position y appears
at y + s T f(y) in the image acquired with direction s (+1 up, -1 down), with intensity divided by
the Jacobian 1 + s T f'(y) (the signal of a stretched region spreads over more voxels).
Field: a positive peak (Hz) behind the frontal sinus / above the orbits, a smaller negative one at
the left temporal pole, and a gentle linear term."""
import os

import nibabel as nib
import numpy as np
from nibabel.testing import data_path
from scipy import ndimage

CH2 = "/usr/share/mricron/templates/ch2.nii.gz"
CH2BET = "/usr/share/mricron/templates/ch2bet.nii.gz"


def block_average(vol, f):
    """Average f x f x f blocks (the volume cropped to multiples of f)."""
    s = [n // f * f for n in vol.shape]
    v = vol[: s[0], : s[1], : s[2]]
    return v.reshape(s[0] // f, f, s[1] // f, f, s[2] // f, f).mean(axis=(1, 3, 5))


def ch2(voxel=2):
    """(T1 at `voxel` mm as float32, brain mask (bool), affine)."""
    img = nib.load(CH2)
    vol = block_average(np.asarray(img.dataobj, np.float64), voxel)
    brain = block_average((np.asarray(nib.load(CH2BET).dataobj) > 0).astype(np.float64), voxel) > 0.5
    aff = img.affine.copy()
    aff[:3, :3] *= voxel
    aff[:3, 3] += 0.5 * (voxel - 1)   # block centres
    return vol.astype(np.float32), brain, aff


def epi():
    """(frame 0 of example4d as float32, a mask of the head (> 20 % of the 98th percentile), affine)."""
    img = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    vol = np.asarray(img.dataobj, np.float32)[..., 0]
    return vol, vol > 0.2 * np.percentile(vol, 98), img.affine


def field_hz(shape, affine, peak=70.0, centre=(0.0, 40.0, -20.0), sigma=18.0, dip=-25.0,
             dip_centre=(-45.0, 5.0, -30.0), gradient=(0.0, 0.0, 0.1)):
    """The field (Hz) on the grid: Gaussian peak + dip (world mm centres, sigma mm) + gradient (Hz/mm)."""
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    xyz = (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape((3,) + tuple(shape))
    g = lambda c: np.exp(-sum((xyz[a] - c[a]) ** 2 for a in range(3)) / (2 * sigma ** 2))
    centre_xyz = np.mean(xyz.reshape(3, -1), axis=1)
    lin = sum(gradient[a] * (xyz[a] - centre_xyz[a]) for a in range(3))
    return peak * g(centre) + dip * g(dip_centre) + lin


def distort(true, field, axis, sign, readout, upsample=8):
    """The image acquired with phase encoding (axis, sign) and total readout time `readout` (s)."""
    t = np.moveaxis(true.astype(np.float64), axis, -1)
    f = np.moveaxis(field, axis, -1)
    n = t.shape[-1]
    fine = np.arange((n - 1) * upsample + 1) / upsample
    lines_t = t.reshape(-1, n)
    lines_f = f.reshape(-1, n)
    coef = ndimage.spline_filter1d(lines_t, order=3, axis=-1, mode="mirror")
    out = np.empty_like(lines_t)
    grid = np.arange(n, dtype=np.float64)
    for q in range(lines_t.shape[0]):
        d_fine = sign * readout * np.interp(fine, grid, lines_f[q])
        # The field is smooth: its cubic spline along the line, for the position and the Jacobian.
        fc = ndimage.spline_filter1d(lines_f[q], order=3, mode="mirror")
        d_fine = sign * readout * ndimage.map_coordinates(fc, [fine], order=3, mode="mirror", prefilter=False)
        z = fine + d_fine                       # where the point at `fine` appears
        y = np.interp(grid, z, fine)            # the true position seen at each acquired voxel
        dy = sign * readout * ndimage.map_coordinates(
            fc, [y + 0.5], order=3, mode="mirror", prefilter=False) - sign * readout * ndimage.map_coordinates(
            fc, [y - 0.5], order=3, mode="mirror", prefilter=False)
        val = ndimage.map_coordinates(coef[q:q + 1], [np.zeros(n), y], order=3, mode="mirror", prefilter=False)
        out[q] = val / (1.0 + dy)
    return np.moveaxis(out.reshape(t.shape), -1, axis).astype(np.float32)


def pair(kind="ch2", voxel=2, axis=1, readout=0.05, noise=0.01, seed=0, **field_args):
    """(up, down, true, field_hz, mask, affine): up acquired with +axis, down with -axis, Gaussian
    noise of `noise` x the mean brain intensity."""
    true, mask, aff = ch2(voxel) if kind == "ch2" else epi()
    if kind != "ch2" and "centre" not in field_args:
        # example4d is not in MNI space: the peak at a fixed place of its grid, low and to the front
        # of the head, the dip to one side.
        at = lambda f: tuple(aff[:3, :3] @ (np.array(f) * (np.array(true.shape) - 1)) + aff[:3, 3])
        field_args = dict(field_args, centre=at((0.5, 0.7, 0.3)), dip_centre=at((0.25, 0.45, 0.25)))
    f = field_hz(true.shape, aff, **field_args)
    up = distort(true, f, axis, +1, readout)
    down = distort(true, f, axis, -1, readout)
    rng = np.random.default_rng(seed)
    s = noise * float(true[mask].mean())
    up = (up + rng.normal(0, s, up.shape)).astype(np.float32)
    down = (down + rng.normal(0, s, down.shape)).astype(np.float32)
    return up, down, true, f.astype(np.float32), mask, aff


def rigid_ras(rot_deg=(1.5, 0.0, 0.0), trans_mm=(1.5, 0.0, 0.0), centre=(0.0, 0.0, 0.0)):
    """4x4 RAS map x -> centre + t + R (x - centre), R = Rz Ry Rx (degrees about x, y, z)."""
    rx, ry, rz = np.deg2rad(rot_deg)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    R = (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
         @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = np.asarray(centre) + np.asarray(trans_mm) - R @ np.asarray(centre)
    return M


def moved_pair(rot_deg=(1.5, 0.0, 0.0), trans_mm=(1.5, 0.0, 0.0), axis=1, readout=0.05, noise=0.01, seed=0,
               **field_args):
    """(up, down, true, field_hz, mask, affine, motion): as pair() on ch2 at 2 mm, but the head moved
    between the two acquisitions. `motion` is the RAS pull-back from UP's world to DOWN's (the head's
    point at x in UP sits at motion @ x in DOWN), a rotation about the grid's centre plus `trans_mm`
    (keep its PE component 0: the pair cannot tell it from the field's mean). DOWN is the moved head,
    with the field moved along (it belongs to the head), distorted along the scanner's PE axis: the
    physical model, not voxalign's fixed-field approximation."""
    true, mask, aff = ch2(2)
    centre = aff[:3, :3] @ ((np.array(true.shape) - 1) / 2.0) + aff[:3, 3]
    M = rigid_ras(rot_deg, trans_mm, centre)
    Minv = np.linalg.inv(M)
    f = field_hz(true.shape, aff, **field_args)
    up = distort(true, f, axis, +1, readout)
    # DOWN's frame: true_D(z) = true(M^-1 z), in voxels A^-1 M^-1 A
    vox = np.linalg.inv(aff) @ Minv @ aff
    true_d = ndimage.affine_transform(true.astype(np.float64), vox[:3, :3], vox[:3, 3], order=3, mode="nearest")
    f_d = field_hz(true.shape, Minv @ aff, **field_args)
    down = distort(true_d, f_d, axis, -1, readout)
    rng = np.random.default_rng(seed)
    s = noise * float(true[mask].mean())
    up = (up + rng.normal(0, s, up.shape)).astype(np.float32)
    down = (down + rng.normal(0, s, down.shape)).astype(np.float32)
    return up, down, true, f.astype(np.float32), mask, aff, M
