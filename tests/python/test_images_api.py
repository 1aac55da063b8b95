"""The Python API over paths and images (docs/python.md): every public function that takes an image
accepts a NIfTI path, a nibabel image or an array, and returns a nibabel image (with the affine of the
grid it lies on) for the first two and an array for the third, with the same numbers; Coefficients
stand in for an image wherever one is interpolated, with bit-identical results; the top level exports
the public API only; the Python defaults are the C++ option structs' defaults, and the CLI and Python
give the same voxels with their defaults."""
import inspect

import nibabel as nib
import numpy as np
import pytest

import voxalign as vx

# float32-exact, as a NIfTI sform stores it: a path gives the numbers an image in memory gives
A = np.array([[1.2, 0.1, 0.0, -11.0], [0.0, 1.1, 0.05, -9.0], [0.02, 0.0, 1.3, -8.0], [0, 0, 0, 1.0]],
             dtype=np.float32).astype(np.float64)


def blob(shape=(18, 16, 14), seed=0):
    g = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r2 = sum(x * x for x in g)
    rng = np.random.default_rng(seed)
    return np.asfortranarray(100 * np.exp(-2 * r2) + 20 + rng.normal(0, 0.5, shape), dtype=np.float32)


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """One image as the three kinds a caller may hold: (array, nibabel image, path)."""
    a = blob()
    img = nib.Nifti1Image(a, A)
    p = tmp_path_factory.mktemp("img") / "blob.nii.gz"
    nib.save(img, p)
    return a, img, str(p)


def field(shape, amp=1.2):
    g = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    return np.stack([amp * np.sin(g[(d + 1) % 3] / 4) for d in range(len(shape))], -1).astype(np.float32)


def check_kinds(call, kinds, affine=A, **kw):
    """call(x) for the three kinds: the array gives an array; the image and the path give a
    Nifti1Image on `affine` holding the same numbers."""
    a, img, p = kinds
    ra = call(a)
    assert isinstance(ra, np.ndarray), type(ra)
    for x in (img, p):
        r = call(x)
        assert isinstance(r, nib.Nifti1Image), type(r)
        np.testing.assert_allclose(r.affine, affine, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(r.dataobj), ra)
    return ra


def test_resample_kinds(kinds):
    T = np.eye(4)
    T[:3, 3] = [1.5, -0.7, 0.4]
    B = A.copy()
    B[:3, :3] *= 1.5
    out = check_kinds(lambda x: vx.resample(x, A if isinstance(x, np.ndarray) else None, (12, 11, 9), B, transform=T),
                      kinds, affine=B)
    assert out.shape == (12, 11, 9) and out.dtype == np.float32
    # the target grid from a reference image (path or image); an array with the same grid, the same numbers
    ref = nib.Nifti1Image(np.zeros((12, 11, 9), np.float32), B)
    r = vx.resample(kinds[2], transform=T, reference=ref)
    assert isinstance(r, nib.Nifti1Image) and r.shape == (12, 11, 9)
    np.testing.assert_array_equal(np.asarray(r.dataobj), out)
    # the input's own grid by default
    same = vx.resample(kinds[1])
    assert same.shape == kinds[0].shape and np.allclose(same.affine, A)


def test_n4_and_otsu_kinds(kinds):
    a, img, p = kinds
    kw = dict(iterations=(4, 3), shrink=2)
    ca, ba = vx.n4(a, spacing=np.sqrt((A[:3, :3] ** 2).sum(0)), **kw)
    assert isinstance(ca, np.ndarray) and isinstance(ba, np.ndarray)
    for x in (img, p):  # spacing from the image's voxel sizes
        c, b = vx.n4(x, **kw)
        assert isinstance(c, nib.Nifti1Image) and isinstance(b, nib.Nifti1Image)
        assert np.allclose(c.affine, A)
        np.testing.assert_array_equal(np.asarray(c.dataobj), ca)
        np.testing.assert_array_equal(np.asarray(b.dataobj), ba)
    m = check_kinds(lambda x: vx.otsu_mask(x), kinds)
    assert m.dtype == np.uint8 and 0 < m.mean() < 1
    t = {vx.otsu_threshold(x) for x in kinds}
    assert len(t) == 1
    # a mask given as a path or an image
    c1, _ = vx.n4(a, mask=m, **kw)
    c2, _ = vx.n4(a, mask=nib.Nifti1Image(m, A), **kw)
    np.testing.assert_array_equal(c1, c2)


def test_warp_family_kinds(kinds):
    a = kinds[0]
    u = field(a.shape)
    w = check_kinds(lambda x: vx.warp(x, u), kinds)
    check_kinds(lambda x: vx.adjoint_warp(x, u), kinds)
    for i in range(2):
        check_kinds(lambda x: vx.warp_gradient(x, u)[i], kinds)
    check_kinds(lambda x: vx.warp_jvp(x, u, 0.5 * u), kinds)
    check_kinds(lambda x: vx.warp_vjp(x, u, w), kinds)
    M = np.eye(4)
    M[:3, 3] = [0.6, -0.4, 0.3]
    check_kinds(lambda x: vx.affine_warp(x, M), kinds)
    check_kinds(lambda x: vx.adjoint_affine_warp(x, M), kinds)
    model = vx.AffineModel(a.shape)
    check_kinds(lambda x: vx.affine_param_jvp(x, model, [0.1, 0, 0, 0.01, 0, 0], [1, 0, 0, 0, 0, 0]), kinds)
    g = {tuple(vx.affine_param_vjp(x, model, np.zeros(6), w)) for x in kinds}
    assert len(g) == 1
    check_kinds(lambda x: vx.approx.approx_adjoint_warp(x, u), kinds)
    check_kinds(lambda x: vx.approx.approx_warp_jvp(x, u, u), kinds)
    # fields as images: invert_field and field_mm_to_voxels keep the field's grid
    fimg = nib.Nifti1Image(u, A)
    inv = vx.invert_field(fimg)
    assert isinstance(inv, nib.Nifti1Image) and np.allclose(inv.affine, A)
    np.testing.assert_array_equal(np.asarray(inv.dataobj), vx.invert_field(u))
    vox = vx.field_mm_to_voxels(nib.Nifti1Image(u.astype(np.float64), A), image_affine=kinds[1])
    assert isinstance(vox, nib.Nifti1Image)
    np.testing.assert_array_equal(np.asarray(vox.dataobj), vx.field_mm_to_voxels(u, A, A))


def test_adjoint_warp_defaults_to_the_fields_grid():
    rng = np.random.default_rng(3)
    u = field((9, 8, 7))
    y = rng.standard_normal((9, 8, 7))
    np.testing.assert_array_equal(vx.adjoint_warp(y, u), vx.adjoint_warp(y, u, (9, 8, 7)))


def test_spline_and_io_kinds(kinds, tmp_path):
    a, img, p = kinds
    ca = vx.spline_coefficients(a)
    assert ca.affine is None
    for x in (img, p):
        c = vx.spline_coefficients(x)
        assert np.allclose(c.affine, A)
        np.testing.assert_array_equal(c.array, ca.array)
    pts = np.array([[3.2, 4.1, 5.5], [7.0, 1.5, 2.25]])
    v = {tuple(vx.interpolate(x, pts)) for x in kinds}
    assert len(v) == 1
    m = {tuple(vx.map_coordinates(x, pts.T)) for x in kinds}
    assert len(m) == 1
    for i, x in enumerate(kinds):
        q = tmp_path / f"w{i}.nii"
        vx.write_nifti(q, x, A if i == 0 else None)
        back = nib.load(q)
        np.testing.assert_allclose(back.affine, A, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(back.dataobj), a)


def test_register_and_apply_kinds(kinds, tmp_path):
    a, img, p = kinds
    T = np.eye(4)
    T[:3, 3] = [1.0, -0.5, 0.5]
    moved = vx.resample(a, A, a.shape, A, transform=T, mode="nearest")
    mimg = nib.Nifti1Image(moved, A)
    mp = tmp_path / "moving.nii.gz"
    nib.save(mimg, mp)
    kw = dict(levels=(2, 1), transform="translation")
    mats = [vx.register(m, f, moving_affine=A if m is moved else None, fixed_affine=A if f is a else None, **kw).matrix
            for m, f in ((moved, a), (mimg, img), (str(mp), p))]
    for M in mats[1:]:
        np.testing.assert_array_equal(M, mats[0])
    r = vx.register(mimg, img, **kw)
    out = r.apply(mimg)
    assert isinstance(out, nib.Nifti1Image) and np.allclose(out.affine, A)
    np.testing.assert_array_equal(np.asarray(out.dataobj), r.apply(moved))
    np.testing.assert_array_equal(np.asarray(r.apply(str(mp)).dataobj), r.apply(moved))


def test_realign_kinds(tmp_path):
    rng = np.random.default_rng(5)
    vol = blob((14, 13, 10))
    frames = []
    for t in range(3):
        T = np.eye(4)
        T[:3, 3] = rng.uniform(-0.5, 0.5, 3)
        frames.append(vx.resample(vol, A, vol.shape, A, transform=T, mode="nearest"))
    data = np.asfortranarray(np.stack(frames, 3), dtype=np.float32)
    img = nib.Nifti1Image(data, A)
    p = tmp_path / "bold.nii.gz"
    nib.save(img, p)
    ra = vx.realign(data, A, sep=2.0)
    assert isinstance(ra.resliced, np.ndarray) and ra.resliced.shape == data.shape  # reslices by default
    for x in (img, str(p)):
        r = vx.realign(x, sep=2.0)
        assert isinstance(r.resliced, nib.Nifti1Image) and isinstance(r.mean, nib.Nifti1Image)
        assert np.allclose(r.resliced.affine, A) and r.mean.shape == data.shape[:3]
        np.testing.assert_array_equal(r.matrices, ra.matrices)
        np.testing.assert_array_equal(np.asarray(r.resliced.dataobj), ra.resliced)
    assert vx.realign(data, A, sep=2.0, reslice=False).resliced is None


def test_cli_and_python_agree_with_their_defaults(kinds, cli, tmp_path):
    """The same call through the CLI and through Python, each with its own defaults, gives the same
    voxels: resample, n4, register -o / Registration.apply, realign -o / Realignment.resliced."""
    a, img, p = kinds
    T = np.eye(4)
    T[:3, 3] = [1.3, -0.8, 0.6]
    tp = tmp_path / "t.txt"
    np.savetxt(tp, T)
    ref = tmp_path / "ref.nii.gz"
    B = A.copy()
    B[:3, 3] += 2.0
    nib.save(nib.Nifti1Image(np.zeros((15, 13, 12), np.float32), B), ref)
    cli("resample", p, "-o", tmp_path / "r.nii.gz", "--like", ref, "-t", tp, "-q")
    py = vx.resample(p, transform=str(tp), reference=ref)
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "r.nii.gz").dataobj), np.asarray(py.dataobj))
    cli("n4", p, "-o", tmp_path / "n.nii.gz", "-q")
    c, _ = vx.n4(p)
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "n.nii.gz").dataobj), np.asarray(c.dataobj))
    # register -o and Registration.apply; realign -o and realign().resliced
    moved = tmp_path / "moved.nii.gz"
    nib.save(vx.resample(img, transform=T, mode="nearest"), moved)
    cli("register", moved, "--fixed", p, "-o", tmp_path / "m.nii.gz", "-q")
    r = vx.register(moved, p)
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "m.nii.gz").dataobj), np.asarray(r.apply(moved).dataobj))
    series = np.stack([a, np.asarray(nib.load(moved).dataobj), a], 3)
    bold = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(series, A), bold)
    cli("realign", bold, "-o", tmp_path / "rbold.nii.gz", "-q")
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "rbold.nii.gz").dataobj),
                                  np.asarray(vx.realign(bold).resliced.dataobj))


@pytest.mark.parametrize("call", [
    lambda x: vx.resample(x, np.eye(4), (4, 4, 4), np.eye(4)),
    lambda x: vx.n4(x),
    lambda x: vx.warp(x, field((4, 4, 4))),
    lambda x: vx.spline_coefficients(x),
    lambda x: vx.otsu_mask(x),
    lambda x: vx.write_nifti("never-written.nii", x, np.eye(4)),
    lambda x: vx.register(x, np.ones((4, 4, 4))),
    lambda x: vx.realign(x),
], ids=["resample", "n4", "warp", "spline_coefficients", "otsu_mask", "write_nifti", "register", "realign"])
@pytest.mark.parametrize("bad", [0, 2.5, None, {"a": 1}])
def test_wrong_types_are_named(call, bad):
    with pytest.raises(TypeError) as e:
        call(bad)
    msg = str(e.value)
    assert "path" in msg and "nibabel" in msg and "dimensions" not in msg, msg


def test_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        vx.n4(tmp_path / "absent.nii.gz")
    assert "absent.nii.gz" in str(e.value)


def test_top_level_exports_the_public_api_only():
    names = set(dir(vx))
    for private in ("np", "os", "Optional", "Sequence", "warnings", "numbers", "nib", "_core"):
        assert private not in names
    assert set(vx.__all__) <= names and all(hasattr(vx, n) for n in vx.__all__)
    for moved in ("approx_adjoint_warp", "approx_warp_jvp"):
        assert moved not in names and hasattr(vx.approx, moved)
    for sub in ("io", "spline", "resampling", "warping", "registration", "realignment", "bias", "distortion",
                "reconstruction", "solvers", "approx"):
        assert sub in names


def test_warp_field_is_a_deprecated_alias():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 9, 8))
    u = field(x.shape).astype(np.float64)
    with pytest.warns(DeprecationWarning, match="voxalign.warp"):
        w = vx.warp_field(x, u, degree=3, mode="mirror", cval=0.5)
    np.testing.assert_array_equal(w, vx.warp(x, u, degree=3, mode="mirror", cval=0.5))


@pytest.mark.parametrize("degree,mode", [(1, "constant"), (3, "mirror"), (3, "grid-constant"), (5, "nearest"),
                                         ("keys", "itk"), (3, "itk")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_coefficients_give_identical_results(degree, mode, dtype):
    x = blob((13, 12, 11)).astype(dtype)
    c = vx.spline_coefficients(x, degree, mode, cval=0.0)
    T = np.eye(4)
    T[:3, 3] = [0.7, -1.1, 0.3]
    kw = dict(degree=degree, mode=mode)
    np.testing.assert_array_equal(vx.resample(c, A, (10, 9, 12), A, transform=T, **kw),
                                  vx.resample(x, A, (10, 9, 12), A, transform=T, **kw))
    u = field(x.shape).astype(dtype)
    np.testing.assert_array_equal(vx.warp(c, u, **kw), vx.warp(x, u, **kw))
    for a, b in zip(vx.warp_gradient(c, u, **kw), vx.warp_gradient(x, u, **kw)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(vx.warp_jvp(c, u, u, **kw), vx.warp_jvp(x, u, u, **kw))
    np.testing.assert_array_equal(vx.warp_vjp(c, u, x, **kw), vx.warp_vjp(x, u, x, **kw))
    M = np.eye(4)
    M[:3, 3] = [0.4, 0.2, -0.3]
    np.testing.assert_array_equal(vx.affine_warp(c, M, **kw), vx.affine_warp(x, M, **kw))
    model = vx.AffineModel(x.shape)
    th = [0.2, 0.1, 0, 0.02, 0, 0.01]
    np.testing.assert_array_equal(vx.affine_param_jvp(c, model, th, np.ones(6), **kw),
                                  vx.affine_param_jvp(x, model, th, np.ones(6), **kw))
    np.testing.assert_array_equal(vx.affine_param_vjp(c, model, th, x, **kw), vx.affine_param_vjp(x, model, th, x, **kw))
    # left at their defaults, degree and mode come from the coefficients
    np.testing.assert_array_equal(vx.warp(c, u), vx.warp(x, u, **kw))


def test_coefficients_of_an_image_resample_to_an_image(kinds):
    c = vx.spline_coefficients(kinds[2], 3, "itk")
    r = vx.resample(c, shape=(10, 10, 10), target_affine=A)
    assert isinstance(r, nib.Nifti1Image)
    np.testing.assert_array_equal(np.asarray(r.dataobj), vx.resample(kinds[0], A, (10, 10, 10), A, mode="itk"))
    reg = vx.register(kinds[1], kinds[1], levels=(1,), transform="translation", iterations=2)
    np.testing.assert_array_equal(np.asarray(reg.apply(c).dataobj), np.asarray(reg.apply(kinds[1]).dataobj))


def test_coefficients_mismatch_and_trailing_unit_axis():
    x = blob((12, 10, 1))[..., :1]
    with pytest.raises(ValueError, match="differ"):
        vx.resample(vx.spline_coefficients(x[..., 0], 3, "mirror"), np.eye(4), (12, 10, 1), np.eye(4), mode="nearest")
    # a 2D image stored X x Y x 1: resample interpolates 2 axes, so 3-axis coefficients are refused and
    # the 2-axis ones give what the image gives
    with pytest.raises(ValueError, match="trailing length-1"):
        vx.resample(vx.spline_coefficients(x, 3, "itk"), np.eye(4), (12, 10, 1), np.eye(4))
    T = np.eye(4)
    T[:2, 3] = [0.3, -0.6]
    c2 = vx.spline_coefficients(x[..., 0], 3, "itk")
    np.testing.assert_array_equal(vx.resample(c2, np.eye(4), (12, 10, 1), np.eye(4), transform=T),
                                  vx.resample(x, np.eye(4), (12, 10, 1), np.eye(4), transform=T))


def defaults(f):
    return {k: p.default for k, p in inspect.signature(f).parameters.items() if p.default is not inspect.Parameter.empty}


def test_defaults_are_the_cpp_defaults():
    # the dicts come from default-constructed C++ option structs; the signatures must use them
    assert vx.RESAMPLE_DEFAULTS == {"degree": 3, "mode": "itk", "cval": 0.0}
    assert vx.RESAMPLE_DEFAULT_MODE == vx.RESAMPLE_DEFAULTS["mode"]
    for f in (vx.resample, vx.Registration.apply):
        d = defaults(f)
        assert {k: d[k] for k in ("degree", "mode", "cval")} == vx.RESAMPLE_DEFAULTS, f
    d = defaults(vx.n4)
    assert {k: d[k] for k in vx.N4_DEFAULTS} == vx.N4_DEFAULTS
    assert vx.N4_DEFAULTS["iterations"] == (50, 50, 50, 50) and vx.N4_DEFAULTS["shrink"] == 4
    d = defaults(vx.register)
    assert {k: d[k] for k in vx.REGISTER_DEFAULTS} == vx.REGISTER_DEFAULTS
    assert vx.REGISTER_DEFAULTS["transform"] == "rigid" and vx.REGISTER_DEFAULTS["levels"] == (4, 2, 1)
    d = defaults(vx.realign)
    assert {k: d[k] for k in vx.REALIGN_DEFAULTS} == vx.REALIGN_DEFAULTS
    assert d["reslice"] is True and vx.REALIGN_DEFAULTS["ref"] == "mean"
    d = defaults(vx.superres)
    assert {k: d[k] for k in vx.SUPERRES_DEFAULTS} == vx.SUPERRES_DEFAULTS
    assert vx.SUPERRES_DEFAULTS["iterations"] == 3 and d["resolution"] is None
