"""ITK HDF5 transforms (.h5) and displacement fields, against the real readers and resamplers.

References: SimpleITK (ITK's ResampleImageFilter, DisplacementFieldTransform, HDF5TransformIO) and
ANTsPy (ants.apply_transforms, i.e. antsApplyTransforms, and ants.read_transform). The input is a real
T1 volume (mricron's ch2, cropped and subsampled to keep the test quick). Interpolation is linear in
both, voxalign with mode 'itk' (ITK's edge handling), so the images agree everywhere up to float32
rounding: tolerance 1e-5 of the image range on every voxel (SimpleITK/ANTs resample float32 images in
float32 arithmetic).
"""
import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import voxalign as vx

ants = pytest.importorskip("ants")

TOL = 1e-5


@pytest.fixture
def t1_small(tmp_path, t1_path):
    """(path, data, affine): ch2 cropped to the head and subsampled by 2, float32."""
    img = nib.load(str(t1_path))
    data = np.asarray(img.dataobj, dtype=np.float32)[20:160:2, 20:200:2, 10:170:2]
    aff = img.affine.copy()
    aff[:3, :3] = img.affine[:3, :3] * 2
    aff[:3, 3] = img.affine[:3, :3] @ [20, 20, 10] + img.affine[:3, 3]
    path = tmp_path / "t1.nii.gz"
    nib.Nifti1Image(data, aff).to_filename(str(path))
    return path, data, aff


def smooth_field(shape, amplitude, seed=0):
    """A smooth random displacement field (mm) of shape (*shape, 3)."""
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(seed)
    u = np.stack([gaussian_filter(rng.normal(size=shape), 4) for _ in range(3)], axis=-1)
    return u * (amplitude / np.abs(u).max())


def write_field(path, u_lps, origin, spacing, direction=np.eye(3)):
    """Write an ITK displacement field (LPS vectors, LPS grid) as SimpleITK does; returns the image."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(u_lps.transpose(2, 1, 0, 3)), isVector=True)
    img.SetOrigin([float(x) for x in origin])
    img.SetSpacing([float(x) for x in spacing])
    img.SetDirection([float(x) for x in np.asarray(direction).ravel()])
    sitk.WriteImage(img, str(path))
    return img


def field_over(t1_small, tmp_path, name="field.nii.gz", amplitude=4.0):
    """A field on a grid of its own (coarser, shifted) covering most of the image: its geometry
    differs from the image's, so grid handling is exercised too."""
    _, data, aff = t1_small
    lo = aff @ [0, 0, 0, 1]
    hi = aff @ [*(np.array(data.shape) - 1), 1]
    lps_lo = np.minimum(lo[:3], hi[:3]) * [-1, -1, 1]
    lps_hi = np.maximum(lo[:3], hi[:3]) * [-1, -1, 1]
    origin = np.minimum(lps_lo, lps_hi) + 7.0
    spacing = np.array([3.0, 2.5, 3.5])
    shape = tuple(int(x) for x in (np.abs(lps_hi - lps_lo) - 14.0) // spacing)
    u = smooth_field(shape, amplitude)
    path = tmp_path / name
    img = write_field(path, u, origin, spacing)
    return path, img


def sitk_resample(path, transform, interp=sitk.sitkLinear):
    img = sitk.ReadImage(str(path), sitk.sitkFloat32)
    out = sitk.Resample(img, img, transform, interp, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def ours(t1_small, transform):
    _, data, aff = t1_small
    return vx.resample(data, aff, data.shape, aff, transform=transform, degree=1, mode="itk")


def assert_close(a, b, data, what):
    err = np.abs(a.astype(np.float64) - b).max() / np.ptp(data)
    print(f"{what}: max difference {err:.2e} of the range")
    assert err < TOL, what


AFFINE_TXT = ("#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
              "Parameters: 0.99 -0.06 0.03 0.07 0.98 -0.05 -0.02 0.06 1.02 2.5 -1.5 3.0\n"
              "FixedParameters: 1.0 -12.0 8.0\n")


def test_field_nifti_matches_simpleitk(t1_small, tmp_path):
    path, data, _ = t1_small
    fpath, fimg = field_over(t1_small, tmp_path)
    t = sitk.DisplacementFieldTransform(sitk.Cast(fimg, sitk.sitkVectorFloat64))
    ref = sitk_resample(path, t)
    got = ours(t1_small, [str(fpath)])
    assert_close(got, ref, data, "field .nii.gz vs SimpleITK")
    # The field moves the image: a comparison that ignored it would fail.
    assert np.abs(got - data).max() / np.ptp(data) > 0.2


def test_field_on_the_image_grid_matches_simpleitk(t1_small, tmp_path):
    """A field on the output grid itself (as antsRegistration writes warps) is read at the voxels."""
    path, data, _ = t1_small
    ref_img = sitk.ReadImage(str(path), sitk.sitkFloat32)
    u = smooth_field(data.shape, 5.0, seed=3)
    fimg = sitk.GetImageFromArray(np.ascontiguousarray(u.transpose(2, 1, 0, 3)), isVector=True)
    fimg.CopyInformation(ref_img)
    fpath = tmp_path / "ongrid.nii.gz"
    sitk.WriteImage(fimg, str(fpath))
    t = sitk.DisplacementFieldTransform(sitk.Cast(fimg, sitk.sitkVectorFloat64))
    got = ours(t1_small, [str(fpath), _write(tmp_path / "a.txt", AFFINE_TXT)])
    ref = sitk_resample(path, sitk.CompositeTransform([sitk.ReadTransform(str(tmp_path / "a.txt")), t]))
    assert_close(got, ref, data, "on-grid field + affine vs SimpleITK")


def test_field_and_affine_order_matches_ants(t1_small, tmp_path):
    """antsApplyTransforms' -t order is voxalign's: transformlist=[field, affine] samples at
    affine(field(x)), and voxalign's transform=[field, affine] does the same."""
    path, data, _ = t1_small
    fpath, _ = field_over(t1_small, tmp_path)
    (tmp_path / "aff.txt").write_text(AFFINE_TXT)
    mat = tmp_path / "aff.mat"
    sitk.WriteTransform(sitk.ReadTransform(str(tmp_path / "aff.txt")), str(mat))  # ITK binary .mat, as ANTs writes
    img = ants.image_read(str(path))
    ref = ants.apply_transforms(img, img, transformlist=[str(fpath), str(mat)], interpolator="linear").numpy()
    got = ours(t1_small, [str(fpath), str(mat)])
    assert_close(got, ref, data, "[field, affine] vs ants.apply_transforms")
    swapped = ours(t1_small, [str(mat), str(fpath)])
    assert np.abs(swapped - ref).max() / np.ptp(data) > 0.05  # the order matters


def test_ants_written_field_h5_composite(t1_small, tmp_path):
    """A composite .h5 holding an affine and a displacement field (as antsRegistration writes with
    --write-composite-transform) agrees with SimpleITK and with ANTs applying the same file."""
    path, data, _ = t1_small
    _, fimg = field_over(t1_small, tmp_path)
    aff = sitk.ReadTransform(_write(tmp_path / "aff.txt", AFFINE_TXT))
    field = sitk.DisplacementFieldTransform(sitk.Cast(fimg, sitk.sitkVectorFloat64))
    comp = sitk.CompositeTransform([aff, field])  # ITK applies the last first: field, then affine
    h5 = tmp_path / "composite.h5"
    sitk.WriteTransform(comp, str(h5))
    ref = sitk_resample(path, comp)
    got = ours(t1_small, str(h5))
    assert_close(got, ref, data, "composite .h5 vs SimpleITK")
    img = ants.image_read(str(path))
    ref_ants = ants.apply_transforms(img, img, transformlist=[str(h5)], interpolator="linear").numpy()
    assert_close(got, ref_ants, data, "composite .h5 vs ants.apply_transforms")
    # The same steps given one by one, in voxalign's order (field first).
    fpath = tmp_path / "f.nii.gz"
    sitk.WriteImage(fimg, str(fpath))
    assert_close(ours(t1_small, [str(fpath), str(tmp_path / "aff.txt")]), ref, data, "steps one by one")


def test_field_h5_alone(t1_small, tmp_path):
    path, data, _ = t1_small
    _, fimg = field_over(t1_small, tmp_path, amplitude=6.0)
    t = sitk.DisplacementFieldTransform(sitk.Cast(fimg, sitk.sitkVectorFloat64))
    h5 = tmp_path / "field.h5"
    sitk.WriteTransform(t, str(h5))
    assert_close(ours(t1_small, [str(h5)]), sitk_resample(path, t), data, "field .h5 vs SimpleITK")
    with pytest.raises(Exception, match="holds a displacement field"):
        vx.read_transform(h5)
    nii = tmp_path / "field.nii.gz"
    sitk.WriteImage(fimg, str(nii))
    with pytest.raises(Exception, match="field.nii.gz: a displacement field"):
        vx.read_transform(nii)


def _write(p, text):
    p.write_text(text)
    return str(p)


KINDS = {
    "affine": lambda: _affine(),
    "euler": lambda: sitk.Euler3DTransform([4.0, -3.0, 2.0], 0.08, -0.05, 0.12, [-2.0, 1.0, 3.5]),
    "versor": lambda: sitk.VersorRigid3DTransform([0.03, -0.04, 0.05, np.sqrt(1 - 0.0050)], [1.0, 2.0, -1.0],
                                                  [-4.0, 3.0, 1.0]),
    "similarity": lambda: sitk.Similarity3DTransform(1.05, [0.3, 0.2, 0.9], 0.1, [1.0, 2.0, 3.0], [0.5, 0.5, 0.5]),
    "translation": lambda: sitk.TranslationTransform(3, [1.5, -2.0, 0.5]),
}


def _affine():
    a = sitk.AffineTransform(3)
    a.SetMatrix([0.99, -0.06, 0.03, 0.07, 0.98, -0.05, -0.02, 0.06, 1.02])
    a.SetTranslation([2.5, -1.5, 3.0])
    a.SetCenter([1.0, -12.0, 8.0])
    return a


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_h5_written_by_simpleitk_reads_as_text(tmp_path, kind):
    """The same transform written by SimpleITK as .h5 and as ITK text reads to the same matrix."""
    t = KINDS[kind]()
    sitk.WriteTransform(t, str(tmp_path / "t.h5"))
    sitk.WriteTransform(t, str(tmp_path / "t.txt"))
    np.testing.assert_allclose(vx.read_transform(tmp_path / "t.h5"), vx.read_transform(tmp_path / "t.txt"),
                               atol=1e-12)


def test_h5_written_by_voxalign_reads_in_simpleitk_and_ants(tmp_path):
    M = vx.read_transform(_write(tmp_path / "a.txt", AFFINE_TXT))
    reg = vx.Registration.__new__(vx.Registration)  # save() needs only the matrix
    reg.matrix = M
    out = tmp_path / "saved.h5"
    reg.save(out)
    np.testing.assert_allclose(vx.read_transform(out), M, atol=1e-12)
    pts = [(1.0, 2.0, 3.0), (-40.0, 25.0, 12.5), (60.0, -70.0, -20.0)]
    t_sitk = sitk.ReadTransform(str(out))
    t_txt = sitk.ReadTransform(str(tmp_path / "a.txt"))
    t_ants = ants.read_transform(str(out), precision="double")
    for p in pts:
        np.testing.assert_allclose(t_sitk.TransformPoint(p), t_txt.TransformPoint(p), atol=1e-9)
        np.testing.assert_allclose(t_ants.apply_to_point(p), t_txt.TransformPoint(p), atol=1e-6)
    assert t_ants.type == "AffineTransform"


def test_malformed_h5_one_line_errors(tmp_path, cli, t1_small):
    path, _, _ = t1_small
    bad = {}
    bad["random.h5"] = b"\x00\x01 not hdf5 at all" * 20
    good = tmp_path / "good.h5"
    sitk.WriteTransform(_affine(), str(good))
    bad["truncated.h5"] = good.read_bytes()[:1500]
    img = sitk.Image([4, 4, 4], sitk.sitkFloat32)
    sitk.WriteImage(img, str(tmp_path / "image.h5"))  # an HDF5 image, not a transform
    bad["image.h5"] = (tmp_path / "image.h5").read_bytes()
    expected = {"random.h5": "not an HDF5 file", "truncated.h5": "corrupt", "image.h5": "no /TransformGroup"}
    for name, content in bad.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(Exception, match=expected[name]) as e:
            vx.read_transform(p)
        assert name in str(e.value) and "\n" not in str(e.value)
        r = cli("resample", path, "-o", tmp_path / "out.nii.gz", "-t", p, check=False)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and name in r.stderr, r.stderr
        assert not (tmp_path / "out.nii.gz").exists()


def test_field_that_is_not_a_vector_image(tmp_path, t1_small, cli):
    path, data, aff = t1_small
    with pytest.raises(Exception, match="not a vector image"):
        ours(t1_small, [str(path)])
    two = tmp_path / "two.nii.gz"
    u = np.zeros((4, 4, 4, 1, 2), np.float32)
    hdr = nib.Nifti1Header()
    hdr.set_intent("vector")
    nib.Nifti1Image(u, np.eye(4), hdr).to_filename(str(two))
    r = cli("resample", path, "-o", tmp_path / "out.nii.gz", "-t", two, check=False)
    assert r.returncode != 0 and "needs 3 components" in r.stderr and "two.nii.gz" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_matches_python_for_a_field(tmp_path, t1_small, cli):
    path, data, _ = t1_small
    fpath, _ = field_over(t1_small, tmp_path)
    cli("resample", path, "-o", tmp_path / "o.nii.gz", "-t", fpath, "--degree", "1", "--quiet")
    got = np.asarray(nib.load(str(tmp_path / "o.nii.gz")).dataobj)
    np.testing.assert_array_equal(got, ours(t1_small, [str(fpath)]))


def test_field_resampling_is_thread_count_independent(t1_small, tmp_path):
    fpath, _ = field_over(t1_small, tmp_path)
    _, data, aff = t1_small
    n0 = vx.get_num_threads()
    try:
        res = []
        for n in (1, 3):
            vx.set_num_threads(n)
            res.append(vx.resample(data, aff, data.shape, aff, transform=[str(fpath)], degree=3))
    finally:
        vx.set_num_threads(n0)
    np.testing.assert_array_equal(res[0], res[1])


def test_registration_apply_takes_a_field_before_its_matrix(t1_small, tmp_path):
    """Registration.apply(before=[field]) = resample(transform=[field, matrix]) = ANTs' -t field -t affine."""
    path, data, aff = t1_small
    fpath, _ = field_over(t1_small, tmp_path)
    reg = vx.register(data, data, fixed_affine=aff, moving_affine=aff, transform="rigid", levels=(4,),
                      iterations=2)
    reg.matrix = vx.read_transform(_write(tmp_path / "a.txt", AFFINE_TXT))
    got = reg.apply(data, before=str(fpath), degree=1)
    np.testing.assert_array_equal(got, ours(t1_small, [str(fpath), reg.matrix]))
    img = ants.image_read(str(path))
    ref = ants.apply_transforms(img, img, transformlist=[str(fpath), str(tmp_path / "a.txt")],
                                interpolator="linear").numpy()
    assert_close(got, ref, data, "Registration.apply(before=field) vs ants.apply_transforms")


def test_composites_written_by_ants_registration(t1_small, tmp_path):
    """antsRegistration's own .h5 composites (affine + SyN field, float, write_composite_transform):
    voxalign resamples through Composite.h5 and InverseComposite.h5 as ants.apply_transforms does."""
    from scipy.ndimage import shift
    path, data, aff = t1_small
    small = data[::2, ::2, ::2]
    a2 = aff.copy()
    a2[:3, :3] *= 2
    fixed_p, moving_p = tmp_path / "f.nii.gz", tmp_path / "m.nii.gz"
    nib.Nifti1Image(small, a2).to_filename(str(fixed_p))
    nib.Nifti1Image(shift(small, (1.5, -1.0, 0.5), order=1), a2).to_filename(str(moving_p))
    f, m = ants.image_read(str(fixed_p)), ants.image_read(str(moving_p))
    r = ants.registration(f, m, type_of_transform="SyN", reg_iterations=(4, 2), aff_iterations=(20, 10),
                          aff_shrink_factors=(2, 1), aff_smoothing_sigmas=(1, 0), write_composite_transform=True,
                          outprefix=str(tmp_path / "reg_"))
    comp, inv = tmp_path / "reg_Composite.h5", tmp_path / "reg_InverseComposite.h5"
    assert r["fwdtransforms"] == str(comp) and inv.exists()
    mov = np.asarray(nib.load(str(moving_p)).dataobj, dtype=np.float32)
    got = vx.resample(mov, a2, small.shape, a2, transform=str(comp), degree=1)
    ref = ants.apply_transforms(f, m, transformlist=[str(comp)], interpolator="linear").numpy()
    assert_close(got, ref, small, "ANTs Composite.h5 vs ants.apply_transforms")
    assert np.abs(got - mov).max() / np.ptp(small) > 0.05  # the composite moves the image
    back = vx.resample(small, a2, small.shape, a2, transform=str(inv), degree=1)
    ref_back = ants.apply_transforms(m, f, transformlist=[str(inv)], interpolator="linear").numpy()
    assert_close(back, ref_back, small, "ANTs InverseComposite.h5 vs ants.apply_transforms")
