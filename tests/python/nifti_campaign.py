"""A campaign of malformed and unusual NIfTI files, made from one small valid image by mutating
its header and data, each with nibabel as the oracle.

`make_campaign(dir)` writes the files and returns a list of Case(name, path, kind) where kind is
"read" (nibabel reads it with a finite affine: voxalign must give the same values and affine) or
"refuse" (nibabel refuses it, or what it reads is not usable: voxalign must refuse it with a
one-line error naming the file). The oracle is computed, not written down, so that a mutation whose
outcome one might guess wrong is still judged against nibabel.

Run as a script to write the campaign into a directory: python3 nifti_campaign.py DIR
"""
from __future__ import annotations

import gzip
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Field offsets (bytes) and formats in the NIfTI-1 header.
N1 = {
    "sizeof_hdr": (0, "i"), "dim_info": (39, "b"), "dim": (40, "8h"), "intent_code": (68, "h"),
    "datatype": (70, "h"), "bitpix": (72, "h"), "pixdim": (76, "8f"), "vox_offset": (108, "f"),
    "scl_slope": (112, "f"), "scl_inter": (116, "f"), "xyzt_units": (123, "B"), "qform_code": (252, "h"),
    "sform_code": (254, "h"), "quatern": (256, "6f"), "srow": (280, "12f"), "magic": (344, "4s"),
}
# NIfTI-2.
N2 = {
    "sizeof_hdr": (0, "i"), "magic": (4, "8s"), "datatype": (12, "h"), "bitpix": (14, "h"), "dim": (16, "8q"),
    "pixdim": (104, "8d"), "vox_offset": (168, "q"), "scl_slope": (176, "d"), "scl_inter": (184, "d"),
    "qform_code": (344, "i"), "sform_code": (348, "i"), "quatern": (352, "6d"), "srow": (400, "12d"),
    "xyzt_units": (500, "i"),
}


@dataclass
class Case:
    name: str
    path: Path
    kind: str  # "read" or "refuse"
    why: str = ""
    same_as: Path | None = None  # read: the values are those nibabel reads from this file


def _base_image(dtype=np.int16, shape=(5, 4, 3)):
    import nibabel as nib
    rng = np.random.default_rng(7)
    data = rng.integers(-100, 100, size=shape).astype(dtype) if np.issubdtype(dtype, np.integer) \
        else rng.standard_normal(shape).astype(dtype)
    aff = np.array([[-2.0, 0.1, 0, 10], [0.1, 2.0, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]])
    return data, aff


def _nifti1_bytes(data, aff, big_endian=False, qform_only=False, pair=False):
    import nibabel as nib
    cls = nib.Nifti1Pair if pair else nib.Nifti1Image
    img = cls(data, aff)
    img.header.set_data_dtype(data.dtype)
    if qform_only:
        img.set_qform(aff, code=1)
        img.set_sform(None, code=0)
    hdr = img.header
    if big_endian:
        hdr = hdr.as_byteswapped(">")
        img = cls(data, None, header=hdr)
        if qform_only:
            img.set_qform(aff, code=1)
            img.set_sform(None, code=0)
        else:
            img.set_sform(aff, code=2)
            img.set_qform(aff, code=2)
    return img


def _write_single(img, path):
    import nibabel as nib
    nib.save(img, str(path))
    return bytearray(Path(path).read_bytes())


def _get(buf, fields, name, endian="<"):
    off, fmt = fields[name]
    return struct.unpack_from(endian + fmt, buf, off)


def _set(buf, fields, name, values, endian="<"):
    off, fmt = fields[name]
    if not isinstance(values, (tuple, list)):
        values = (values,)
    struct.pack_into(endian + fmt, buf, off, *values)


def nibabel_verdict(path: Path):
    """(kind, why): 'read' when nibabel loads data and a finite, invertible affine; else 'refuse'."""
    import nibabel as nib
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = nib.load(str(path))
            data = np.asarray(img.dataobj)
            aff = img.affine
    except Exception as e:  # noqa: BLE001 -- any nibabel refusal is the oracle's "refuse"
        return "refuse", f"nibabel: {type(e).__name__}: {str(e)[:80]}"
    if aff is None or not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        return "refuse", "nibabel reads a non-finite or singular affine"
    if data.ndim > 4 and any(s != 1 for s in data.shape[4:]):
        return "refuse", "more than 4 dimensions"
    if np.iscomplexobj(data) or data.dtype.names is not None or data.dtype == np.float128 or data.dtype == bool:
        return "refuse", f"datatype {data.dtype}"
    return "read", ""


def make_campaign(out: Path) -> list[Case]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    data, aff = _base_image()

    def add(name, buf, suffix=".nii", gz=False, expect=None, same_as=None):
        p = out / (name + suffix + (".gz" if gz else ""))
        raw = bytes(buf)
        p.write_bytes(gzip.compress(raw, compresslevel=1) if gz else raw)
        kind, why = nibabel_verdict(p)
        if expect is not None and kind != expect:
            why = f"{why} (expected {expect} by construction)"
            kind = expect
        cases.append(Case(name + suffix + (".gz" if gz else ""), p, kind, why, same_as))

    tmp = out / "_base.nii"
    base = _write_single(_nifti1_bytes(data, aff), tmp)
    base_q = _write_single(_nifti1_bytes(data, aff, qform_only=True), out / "_base_q.nii")
    base_be = _write_single(_nifti1_bytes(data, aff, big_endian=True), out / "_base_be.nii")
    data_f, _ = _base_image(np.float32)
    base_f = _write_single(_nifti1_bytes(data_f, aff), out / "_base_f.nii")
    for p in (tmp, out / "_base_q.nii", out / "_base_be.nii", out / "_base_f.nii"):
        p.unlink()
    add("valid", base)
    add("valid_gz", base, gz=True)
    add("valid_be", base_be)
    add("valid_qform_only", base_q)

    # vox_offset (single file; the data follow the header at 352). 0 means 352 (the reading of
    # the standard; nibabel 5 reads the data from byte 0, nifti_clib from 348).
    payload = bytes(base[352:])
    for gz in (False, True):
        b = bytearray(base)
        _set(b, N1, "vox_offset", 0.0)
        add("voxoffset_0", b, gz=gz, same_as=out / "valid.nii")
    for tag, vo in [("100", 100.0), ("348", 348.0), ("351", 351.0), ("nan", float("nan")),
                    ("inf", float("inf")), ("neg16", -16.0), ("neg1e9", -1e9), ("2p5e9", 2.5e9), ("1e20", 1e20),
                    ("352p5", 352.5)]:
        b = bytearray(base)
        _set(b, N1, "vox_offset", vo)
        add(f"voxoffset_{tag}", b)
        add(f"voxoffset_{tag}", b, gz=True)
    for tag, vo in [("353", 353), ("355", 355), ("400", 400)]:  # legal offsets, data moved there (unaligned ones too)
        b = bytearray(base[:352]) + bytearray(vo - 352) + payload
        _set(b, N1, "vox_offset", float(vo))
        add(f"voxoffset_moved_{tag}", b)
        bf = bytearray(base_f[:352]) + bytearray(vo - 352) + bytes(base_f[352:])
        _set(bf, N1, "vox_offset", float(vo))
        add(f"voxoffset_moved_f32_{tag}", bf)
    # 'ni1' magic in a .nii (a pair's header in a single file).
    b = bytearray(base)
    _set(b, N1, "magic", b"ni1\0")
    add("magic_ni1_in_nii", b, expect="refuse")
    b = bytearray(base)
    _set(b, N1, "magic", b"xx1\0")
    add("magic_bad", b)
    b = bytearray(base)
    _set(b, N1, "sizeof_hdr", 349)
    add("sizeof_349", b)

    # Dimensions.
    for tag, dim in [("zero", (3, 5, 0, 3, 1, 1, 1, 1)), ("neg", (3, 5, -4, 3, 1, 1, 1, 1)),
                     ("dim0_0", (0, 5, 4, 3, 1, 1, 1, 1)), ("dim0_8", (8, 5, 4, 3, 1, 1, 1, 1)),
                     ("dim0_neg", (-3, 5, 4, 3, 1, 1, 1, 1)), ("big", (3, 32767, 32767, 32767, 1, 1, 1, 1)),
                     ("5d", (5, 5, 4, 3, 1, 2, 1, 1)), ("more_than_data", (3, 5, 4, 4, 1, 1, 1, 1))]:
        b = bytearray(base)
        _set(b, N1, "dim", dim)
        add(f"dim_{tag}", b)
        if tag in ("big", "more_than_data"):
            add(f"dim_{tag}", b, gz=True)

    # Datatypes.
    for code in (0, 1, 9999, -16, 32, 128, 2304, 1536):
        b = bytearray(base)
        _set(b, N1, "datatype", code)
        add(f"datatype_{code}", b, expect="refuse")

    # Scaling.
    for tag, sl, ic in [("slope_nan", float("nan"), 0.0), ("slope0", 0.0, 5.0), ("slope_inf", float("inf"), 0.0),
                        ("inter_nan", 2.0, float("nan")), ("inter_inf", 2.0, float("inf")), ("scaled", 0.5, -3.0)]:
        b = bytearray(base)
        _set(b, N1, "scl_slope", sl)
        _set(b, N1, "scl_inter", ic)
        add(f"scl_{tag}", b)

    # qform-only files with bad numbers, and sform with bad numbers.
    nan, inf = float("nan"), float("inf")
    def with_item(src, field, i, val):
        b = bytearray(src)
        v = list(_get(b, N1, field))
        v[i] = val
        _set(b, N1, field, v)
        return b

    for i, tag in enumerate(["b", "c", "d", "qx", "qy", "qz"]):
        for val, vt in ((nan, "nan"), (inf, "inf")):
            add(f"qform_{tag}_{vt}", with_item(base_q, "quatern", i, val))
    for i in (1, 2, 3):
        for val, vt in ((nan, "nan"), (inf, "inf"), (0.0, "zero")):
            add(f"qform_pixdim{i}_{vt}", with_item(base_q, "pixdim", i, val))
    b = bytearray(base_q)
    _set(b, N1, "quatern", (0.9, 0.9, 0.0, 1.0, 2.0, 3.0))
    add("qform_quaternion_norm_gt1", b)
    for i in (0, 5, 11):
        add(f"sform_srow{i}_nan", with_item(base, "srow", i, nan))
    b = bytearray(base)
    _set(b, N1, "srow", (0.0,) * 12)
    add("sform_zero", b)
    b = bytearray(base)
    _set(b, N1, "sform_code", 0)
    _set(b, N1, "qform_code", 0)
    add("no_xform", b)

    # Truncation and compression.
    add("truncated_data", base[:-7])
    add("truncated_data", base[:-7], gz=True)
    add("truncated_header", base[:200])
    add("empty", b"")
    gzb = bytearray(gzip.compress(bytes(base)))
    gzb[len(gzb) // 2] ^= 0xFF
    p = out / "gz_corrupt.nii.gz"
    p.write_bytes(bytes(gzb))
    cases.append(Case(p.name, p, *nibabel_verdict(p)))
    p = out / "gz_truncated_stream.nii.gz"
    p.write_bytes(bytes(gzip.compress(bytes(base)))[:-30])
    cases.append(Case(p.name, p, *nibabel_verdict(p)))
    p = out / "gz_trailing_garbage.nii.gz"
    p.write_bytes(gzip.compress(bytes(base)) + b"\0" * 64)
    cases.append(Case(p.name, p, *nibabel_verdict(p)))
    p = out / "gz_two_members.nii.gz"
    p.write_bytes(gzip.compress(bytes(base[:1000])) + gzip.compress(bytes(base[1000:])))
    cases.append(Case(p.name, p, *nibabel_verdict(p)))
    # A small .nii.gz that declares ~1.3 GB.
    b = bytearray(base)
    _set(b, N1, "dim", (4, 1024, 1024, 160, 4, 1, 1, 1))
    add("gz_declares_1p3GB", b + bytearray(200000), gz=True, expect="refuse")

    # Extensions: valid, and malformed ones (nibabel drops or refuses; data must still be right).
    ext = struct.pack("<ii", 32, 6) + b'{"EchoTime": 0.03}'.ljust(24, b"\0")
    b = bytearray(base[:348]) + bytearray(b"\1\0\0\0") + ext + payload
    _set(b, N1, "vox_offset", float(352 + len(ext)))
    add("extension_json", b)
    for tag, esize in [("esize0", 0), ("esize_huge", 1 << 30), ("esize_odd", 13)]:
        e = struct.pack("<ii", esize, 6) + b"x" * 24
        b = bytearray(base[:348]) + bytearray(b"\1\0\0\0") + e + payload
        _set(b, N1, "vox_offset", float(352 + len(e)))
        add(f"extension_{tag}", b)

    # Time units.
    d4, _ = _base_image(np.int16, (4, 3, 2, 5))
    b4 = bytearray(_write_single(_nifti1_bytes(d4, aff), out / "_b4.nii"))
    (out / "_b4.nii").unlink()
    pd = list(_get(b4, N1, "pixdim"))
    pd[4] = 2000.0
    _set(b4, N1, "pixdim", pd)
    _set(b4, N1, "xyzt_units", 2 | 16)  # mm, msec
    add("tr_msec", b4)

    # .hdr/.img pairs with bad offsets.
    import nibabel as nib
    pair = nib.Nifti1Pair(data, aff)
    for tag, vo in [("ok", 0.0), ("neg", -16.0), ("nan", nan), ("beyond", 1e6)]:
        stem = out / f"pair_voxoffset_{tag}"
        nib.save(pair, str(stem) + ".hdr")
        h = bytearray((Path(str(stem) + ".hdr")).read_bytes())
        _set(h, N1, "vox_offset", vo)
        Path(str(stem) + ".hdr").write_bytes(bytes(h))
        p = Path(str(stem) + ".hdr")
        cases.append(Case(p.name, p, *nibabel_verdict(p)))

    # NIfTI-2.
    img2 = nib.Nifti2Image(data, aff)
    p2 = out / "_base2.nii"
    nib.save(img2, str(p2))
    base2 = bytearray(p2.read_bytes())
    p2.unlink()
    add("n2_valid", base2)
    b = bytearray(base2)
    _set(b, N2, "vox_offset", 0)
    add("n2_voxoffset_0", b, same_as=out / "n2_valid.nii")
    for tag, vo in [("100", 100), ("neg1", -1), ("huge", 2**63 - 10), ("neg_huge", -(2**63) + 5),
                    ("beyond", 1 << 40)]:
        b = bytearray(base2)
        _set(b, N2, "vox_offset", vo)
        add(f"n2_voxoffset_{tag}", b)
    b = bytearray(base2)
    _set(b, N2, "dim", (3, 2**40, 2**40, 2**40, 1, 1, 1, 1))
    add("n2_dim_overflow", b)
    return cases


if __name__ == "__main__":
    cs = make_campaign(Path(sys.argv[1]))
    for c in cs:
        print(f"{c.kind:7s} {c.name:40s} {c.why}")
