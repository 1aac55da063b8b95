"""Write the fuzzers' seed corpus (tests/fuzz/corpus/): small valid files of each kind, each prefixed
by the selector byte the targets read first (tests/fuzz/targets.hpp). Run once; the output is kept.
The hash-named files beside these seeds are inputs from `make fuzz` runs, merged in with libFuzzer's
-merge=1 (only those that add coverage): CI replays them all (FuzzRegressions.*)."""
import gzip
import io
import struct
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "corpus")
(out / "nifti").mkdir(parents=True, exist_ok=True)
(out / "transform").mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
aff = np.array([[-2.0, 0, 0, 4], [0, 2, 0, -3], [0, 0, 2.5, 1], [0, 0, 0, 1]])


def nii_bytes(img):
    bio = io.BytesIO()
    fm = img.make_file_map({"image": bio, "header": bio})
    img.to_file_map(fm)
    return bio.getvalue()


cases = {
    "int16.nii": nib.Nifti1Image(rng.integers(-9, 9, (3, 2, 2)).astype(np.int16), aff),
    "float32_4d.nii": nib.Nifti1Image(rng.standard_normal((2, 2, 2, 2)).astype(np.float32), aff),
    "uint8_2d.nii": nib.Nifti1Image(rng.integers(0, 255, (4, 3)).astype(np.uint8), aff),
    "float64_n2.nii": nib.Nifti2Image(rng.standard_normal((2, 2, 2)), aff),
}
be = nib.Nifti1Image(rng.integers(-9, 9, (3, 2, 2)).astype(">i2"), aff)
cases["int16_be.nii"] = be
q = nib.Nifti1Image(rng.integers(0, 9, (2, 2, 2)).astype(np.int32), None)
q.set_qform(aff, code=1)
cases["qform_only.nii"] = q
e = nib.Nifti1Image(rng.integers(0, 9, (2, 2, 2)).astype(np.uint16), aff)
e.header.extensions.append(nib.nifti1.Nifti1Extension(6, b'{"TR": 2}'))
cases["extension.nii"] = e
s = nib.Nifti1Image(rng.integers(0, 99, (2, 2, 2)).astype(np.int16), aff)
s.header.set_slope_inter(0.5, -2.0)
cases["scaled.nii"] = s
for name, img in cases.items():
    b = nii_bytes(img)
    (out / "nifti" / name).write_bytes(b"\0" + b)
    (out / "nifti" / (name + ".gz")).write_bytes(b"\0" + gzip.compress(b, 1))
pair = nii_bytes(cases["int16.nii"])
hdr = bytearray(pair[:348])
hdr[344:348] = b"ni1\0"
struct.pack_into("<f", hdr, 108, 0.0)
(out / "nifti" / "pair_int16").write_bytes(b"\1" + bytes(hdr) + pair[352:])

itk = ("#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
       "Parameters: 1 0.1 0 0 1 0 0 0 1 2 3 4\nFixedParameters: 0 0 0\n")
comp = ("#Insight Transform File V1.0\n#Transform 0\nTransform: CompositeTransform_double_3\n#Transform 1\n"
        "Transform: Euler3DTransform_double_3_3\nParameters: 0.1 0.2 0.3 1 2 3\nFixedParameters: 0 0 0 0\n"
        "#Transform 2\nTransform: VersorRigid3DTransform_double_3_3\nParameters: 0 0 0.1 1 0 0\n"
        "FixedParameters: 1 2 3\n")
mat = b""
for name, vals in (("AffineTransform_double_3_3", [1, 0, 0, 0, 1, 0, 0, 0, 1, 2.0, 3.0, 4.0]), ("fixed", [0.0] * 3)):
    nm = name.encode() + b"\0"
    mat += struct.pack("<5i", 0, len(vals), 1, 0, len(nm)) + nm + struct.pack(f"<{len(vals)}d", *vals)
ras = "# voxalign RAS pull-back\n1 0 0 2\n0 1 0 3\n0 0 1 4\n0 0 0 1\n"
flirt = "1 0 0 2\n0 1 0 3\n0 0 1 4\n0 0 0 1\n"
afni = "1 0 0 2 0 1 0 3 0 0 1 4\n"
for sel, name, content in ((0, "itk.txt", itk), (2, "composite.tfm", comp), (1, "ants.mat", mat),
                           (0, "ras.txt", ras), (1, "flirt.mat", flirt), (3, "afni.1D", afni)):
    b = content.encode() if isinstance(content, str) else content
    (out / "transform" / name).write_bytes(bytes([sel]) + b)
