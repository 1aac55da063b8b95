"""Small real inputs for the pipeline tests (Nipype, Pydra, BIDS App): per subject a T1 cut from ch2
(mricron-data), downsampled to 3 mm with a smooth multiplicative bias, and a short BOLD run from
nibabel's example4d EPI (its two frames plus shifted copies), and a 3 mm template for registration.
Also a bit-for-bit comparison of outputs and a stand-in SLURM."""
import filecmp
import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.testing import data_path
from scipy import ndimage

SUBJECTS = ("01", "02")


def _t1(src, sub_index):
    img = nib.load(src)
    vol = np.asarray(img.dataobj, np.float32)[::3, ::3, ::3] + 1.0
    affine = img.affine.copy()
    affine[:3, :3] *= 3.0
    i, j, k = np.meshgrid(*(np.linspace(-1, 1, n) for n in vol.shape), indexing="ij")
    vol *= 1.0 + 0.2 * (i + 0.5 * j * (1 + sub_index)) + 0.1 * k ** 2
    affine[:3, 3] += (1.5 * sub_index, -1.0 * sub_index, 0.5)   # each subject a little off the template
    return nib.Nifti1Image(vol.astype(np.float32), affine), nib.Nifti1Image(
        (np.asarray(img.dataobj, np.float32)[::3, ::3, ::3] + 1.0), img.affine @ np.diag([3, 3, 3, 1]))


def _bold(sub_index, frames=4):
    img = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    data = np.asarray(img.dataobj)[16:112, 16:80, :, :].astype(np.float32)
    out = []
    for t in range(frames):
        shift = (0.4 * t * (1 + sub_index) % 1.5, -0.3 * t, 0.0)
        out.append(ndimage.shift(data[..., t % 2], shift, order=1, mode="nearest"))
    affine = img.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array([16, 16, 0])
    bold = nib.Nifti1Image(np.stack(out, axis=-1).astype(np.int16), affine)
    bold.header.set_xyzt_units("mm", "sec")
    bold.header["pixdim"][4] = 2.0
    return bold


def make_inputs(folder, t1_source):
    """{sub: {"t1": path, "bold": path}} and the template path, written in folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    template = None
    for n, sub in enumerate(SUBJECTS):
        t1, tpl = _t1(t1_source, n)
        files[sub] = {"t1": folder / f"sub-{sub}_T1w.nii.gz", "bold": folder / f"sub-{sub}_task-rest_bold.nii.gz"}
        nib.save(t1, files[sub]["t1"])
        nib.save(_bold(n), files[sub]["bold"])
        template = folder / "template.nii.gz"
        nib.save(tpl, template)
    return files, template


def assert_same_file(a, b):
    """Bit-identical content: NIfTI by header and voxels (gzip framing aside), other files byte for byte."""
    a, b = str(a), str(b)
    if a.endswith((".nii", ".nii.gz")):
        ia, ib = nib.load(a), nib.load(b)
        assert ia.header.binaryblock == ib.header.binaryblock, f"{a} and {b}: headers differ"
        va, vb = np.asarray(ia.dataobj), np.asarray(ib.dataobj)
        assert va.dtype == vb.dtype and va.shape == vb.shape, f"{a} and {b} differ in type or shape"
        assert np.array_equal(va, vb, equal_nan=True), f"{a} and {b}: voxels differ"
    else:
        assert filecmp.cmp(a, b, shallow=False), f"{a} and {b} differ"


def slurm_stand_ins(bin_dir, log):
    """A stand-in SLURM in bin_dir (put it first on PATH): sbatch records its arguments in log and runs
    the job at once; squeue then reports no pending job."""
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"""#!/bin/bash
echo "$@" >> {log}
out=""; err=""; args=("$@")
for ((i = 0; i < ${{#args[@]}}; i++)); do
  case "${{args[i]}}" in -o) out="${{args[i+1]}}";; -e) err="${{args[i+1]}}";; esac
done
n=$(( $(wc -l < {log}) ))
script="${{args[-1]}}"
bash "$script" > "${{out//%j/$n}}" 2>&1
echo "Submitted batch job $n"
""")
    (bin_dir / "squeue").write_text("#!/bin/bash\necho '             JOBID PARTITION     NAME     USER ST'\n")
    for f in ("sbatch", "squeue"):
        (bin_dir / f).chmod((bin_dir / f).stat().st_mode | stat.S_IEXEC)


def qsub_stand_ins(bin_dir, log, flavour):
    """A stand-in SGE or PBS (Torque) in bin_dir: qsub records its arguments in log, runs the job at once
    (its output in the -o directory) and answers as the real qsub does; qstat then reports the job done
    (PBS: "Unknown Job Id", what Torque says of a finished job; SGE: the job listed in qstat's XML in
    the state Nipype's SGE plugin takes as finished, sparing the qacct round trips a cluster needs)."""
    bin_dir.mkdir()
    answer = ('echo "Your job $n (\\"$name\\") has been submitted"' if flavour == "SGE" else 'echo "$n.pbs-server"')
    (bin_dir / "qsub").write_text(f"""#!/bin/bash
echo "$@" >> {log}
out=.; name=job; args=("$@")
for ((i = 0; i < ${{#args[@]}}; i++)); do
  case "${{args[i]}}" in -o) out="${{args[i+1]}}";; -N) name="${{args[i+1]}}";; esac
done
n=$(( $(wc -l < {log}) ))
script="${{args[-1]}}"
bash "$script" > "$out/$name.o$n" 2>&1
{answer}
""")
    if flavour == "SGE":
        qstat = f"""#!/bin/bash
echo "<?xml version='1.0'?><job_info><queue_info></queue_info><job_info>"
for ((n = 1; n <= $(wc -l < {log}); n++)); do
  echo "<job_list state=\\"finished\\"><JB_job_number>$n</JB_job_number><slots>1</slots></job_list>"
done
echo "</job_info></job_info>"
"""
    else:
        qstat = '#!/bin/bash\necho "qstat: Unknown Job Id ${@: -1}" >&2\nexit 153\n'
    (bin_dir / "qstat").write_text(qstat)
    for f in ("qsub", "qstat"):
        (bin_dir / f).chmod((bin_dir / f).stat().st_mode | stat.S_IEXEC)
