"""Deformable registration benchmark: voxalign register --transform syn vs ANTsPy's SyN on the same pairs,
in one run. Figures go to bench/RESULTS.md.

Pairs: the real T1 (Debian mricron-data's ch2.nii.gz) resampled to --vox mm (default 2), moved by a known
map: moving(z) = fixed(G(z)) with G(z) = R z + t + w(z), a rotation of a few degrees, a translation of a
few mm and a smooth random warp w (sums of sines, up to ~4 mm), seeded per pair. The true fixed -> moving
map is G^-1. Each tool's estimated map E (fixed world point -> moving world point) is read by resampling
the moving grid's world coordinates through the tool's own transforms (linear interpolation of a linear
function: exact inside the grid). Figures, over the brain (ch2bet > 0):
  err   RMS of |G(E(y)) - y| in mm (the composition error with the truth);
  dice  mean Dice over the AAL labels (aal.nii.gz on ch2's grid, resampled nearest to the pair's grid)
        of the atlas carried through E and the same atlas carried through the truth;
  detJ  min det of the Jacobian of E in the brain (finite differences on the fixed grid): <= 0 is folding;
  time  the registration call alone (in memory, no file I/O), 2 threads for every tool;
  cpu   the process's CPU seconds over that call (all threads; every tool runs in this process): less
        sensitive than the wall time to other work on a shared machine.

Peers: ANTsPy ants.registration(type_of_transform='SyN') (its quick default: affine then SyN[0.2,3,0]
with mattes, iterations 40x20x0) and, with --schedule slow, 'antsRegistrationSyN' (the script's
schedule via ANTsPy's 'antsRegistrationSyN[s]': SyN[0.1,3,0], CC radius 4, 100x70x50x20 on 8x4x2x1);
elastix (itk-elastix, `pip install itk-elastix`): its default 'affine' then 'bspline' parameter maps
(B-spline free-form deformation, Mattes MI, 4 resolutions, final grid spacing 10 mm), the estimated
map read from transformix's deformation field; FireANTs when it imports (it needs PyTorch).

Usage: python3 bench/bench_syn.py [--pairs 2] [--vox 2] [--peers ants,elastix,fireants] [--schedule quick|slow|both]
"""
import argparse
import os
import time

import nibabel as nib
import numpy as np
import scipy.ndimage as ndi

import voxalign as vx

T = "/usr/share/mricron/templates/"


def grid(vox):
    img = nib.load(T + "ch2.nii.gz")
    aff, f = img.affine, vox / abs(img.affine[0, 0])
    shape = [int(s // f) for s in img.shape]
    A = aff.copy()
    A[:3, :3] *= f
    A[:3, 3] += aff[:3, :3] @ np.full(3, (f - 1) / 2)
    idx = np.meshgrid(*[np.arange(n) * f + (f - 1) / 2 for n in shape], indexing="ij")
    F = ndi.map_coordinates(ndi.gaussian_filter(img.get_fdata(dtype=np.float32), 0.5 * f), idx, order=1)
    brain = ndi.map_coordinates(nib.load(T + "ch2bet.nii.gz").get_fdata(dtype=np.float32), idx, order=0) > 0
    labels = ndi.map_coordinates(nib.load(T + "aal.nii.gz").get_fdata(dtype=np.float32), idx, order=0)
    return F.astype(np.float32), A, brain, labels.astype(np.int32)


def world(A, shape):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    return ijk @ A[:3, :3].T + A[:3, 3]


def truth(seed, centre):
    rng = np.random.default_rng(seed)
    ang = np.deg2rad(rng.uniform(-4, 4, 3))
    cx, cy, cz = np.cos(ang)
    sx, sy, sz = np.sin(ang)
    R = (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
         @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))
    t = rng.uniform(-4, 4, 3)
    k = rng.uniform(1 / 30, 1 / 15, (3, 3))
    ph = rng.uniform(0, 2 * np.pi, (3, 3))
    amp = rng.uniform(1.5, 2.5, 3)

    def G(z):
        z = np.asarray(z, float)
        out = (z - centre) @ R.T + centre + t
        for c in range(3):
            s = sum(np.sin(k[c, d] * z[..., d] + ph[c, d]) for d in range(3)) / 3
            out[..., c] += amp[c] * 2 * s
        return out
    return G


def make_pair(F, A, seed):
    X = world(A, F.shape)
    G = truth(seed, X.reshape(-1, 3).mean(0))
    vi = (G(X) - A[:3, 3]) @ np.linalg.inv(A[:3, :3]).T
    M = ndi.map_coordinates(F, np.moveaxis(vi, -1, 0), order=3, mode="constant").astype(np.float32)
    return M, G


def estimated_map(A, shape, transforms):
    """E(y) for every fixed voxel y: the moving grid's world coordinates resampled through `transforms`."""
    X = world(A, shape)
    return np.stack([np.asarray(vx.resample(X[..., c], A, shape, A, transform=transforms, degree=1, mode="nearest"))
                     for c in range(3)], -1)


def figures(E, G, A, brain, labels, shape):
    X = world(A, shape)
    err = np.sqrt(np.mean(np.sum((G(E[brain]) - X[brain]) ** 2, -1)))
    # labels carried to the moving grid by the truth, then back through E (nearest)
    Lm = ndi.map_coordinates(labels, np.moveaxis((G(X) - A[:3, 3]) @ np.linalg.inv(A[:3, :3]).T, -1, 0), order=0)
    back = ndi.map_coordinates(Lm, np.moveaxis((E - A[:3, 3]) @ np.linalg.inv(A[:3, :3]).T, -1, 0), order=0)
    dice = []
    for lab in np.unique(labels[labels > 0]):
        a, b = labels == lab, back == lab
        if a.sum() > 20:
            dice.append(2 * (a & b).sum() / (a.sum() + b.sum()))
    vox = np.linalg.inv(A[:3, :3])
    J = np.stack(np.gradient(E, axis=(0, 1, 2)), -1) @ vox  # dE_c / dx_d in world units
    det = np.linalg.det(J[brain])  # in the brain: outside the moving grid the map is clamped
    return err, float(np.mean(dice)), float(det.min())


def run_voxalign(F, M, A, tmp):
    t0, c0 = time.perf_counter(), time.process_time()
    r = vx.register(M, F, moving_affine=A, fixed_affine=A, transform="syn")
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    return sec, cpu, [(r.warp, A), r.matrix]


def run_ants(F, M, A, tmp, kind):
    import ants
    fp, mp = os.path.join(tmp, "fixed.nii.gz"), os.path.join(tmp, "moving.nii.gz")
    nib.save(nib.Nifti1Image(F, A), fp)
    nib.save(nib.Nifti1Image(M, A), mp)
    fi, mi = ants.image_read(fp), ants.image_read(mp)  # read before the clock starts
    t0, c0 = time.perf_counter(), time.process_time()
    prefix = os.path.join(tmp, "".join(c if c.isalnum() else "_" for c in kind) + "_")  # ANTs refuses brackets
    out = ants.registration(fi, mi, type_of_transform=kind, outprefix=prefix)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    return sec, cpu, list(out["fwdtransforms"])  # [warp, affine]: the first applied first to the fixed point


def run_elastix(F, M, A, tmp):
    import itk
    fp, mp = os.path.join(tmp, "fixed.nii.gz"), os.path.join(tmp, "moving.nii.gz")
    nib.save(nib.Nifti1Image(F, A), fp)
    nib.save(nib.Nifti1Image(M, A), mp)
    fi, mi = itk.imread(fp, itk.F), itk.imread(mp, itk.F)  # read before the clock starts
    po = itk.ParameterObject.New()
    po.AddParameterMap(po.GetDefaultParameterMap("affine"))
    po.AddParameterMap(po.GetDefaultParameterMap("bspline"))
    t0, c0 = time.perf_counter(), time.process_time()
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(2)  # (its number_of_threads argument crashes 5.4)
    _, params = itk.elastix_registration_method(fi, mi, parameter_object=po, log_to_console=False)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    # transformix's deformation field: fixed point (LPS) -> moving point - fixed point, on the fixed grid
    cwd = os.getcwd()
    os.chdir(tmp)  # transformix writes deformationField.nii into the working directory
    try:
        d = itk.array_from_image(itk.transformix_deformation_field(mi, params)).transpose(2, 1, 0, 3).copy()
    finally:
        os.chdir(cwd)
    d[..., :2] *= -1  # LPS -> RAS
    return sec, cpu, [(d.astype(np.float32), A)]


def run_fireants(F, M, A, tmp):
    """FireANTs (PyTorch) on the CPU: its README's affine then greedy compositive deformable schedule
    (CC kernel 5, scales 4,2,1 x 200,100,50). E from its warped coordinates (grid_sample's [-1, 1])."""
    import torch
    from fireants.io import BatchedImages, Image
    from fireants.registration.affine import AffineRegistration
    from fireants.registration.greedy import GreedyRegistration
    torch.set_num_threads(2)
    fp, mp = os.path.join(tmp, "fixed.nii.gz"), os.path.join(tmp, "moving.nii.gz")
    nib.save(nib.Nifti1Image(F, A), fp)
    nib.save(nib.Nifti1Image(M, A), mp)
    bf = BatchedImages([Image.load_file(fp, device="cpu")])
    bm = BatchedImages([Image.load_file(mp, device="cpu")])
    t0, c0 = time.perf_counter(), time.process_time()
    aff = AffineRegistration([4, 2, 1], [200, 100, 50], bf, bm, optimizer="Adam", optimizer_lr=3e-3, cc_kernel_size=5)
    aff.optimize()
    reg = GreedyRegistration(scales=[4, 2, 1], iterations=[200, 100, 50], fixed_images=bf, moving_images=bm,
                             cc_kernel_size=5, deformation_type="compositive", smooth_grad_sigma=1,
                             smooth_warp_sigma=0.5, optimizer="Adam", optimizer_lr=0.5,
                             init_affine=aff.get_affine_matrix().detach())
    reg.optimize()
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    with torch.no_grad():
        g = reg.get_warped_coordinates(bf, bm)[0].cpu().numpy().transpose(2, 1, 0, 3)  # X, Y, Z, (x, y, z)
    n = np.array(M.shape, float)
    ijk = (g + 1) / 2 * (n - 1)  # align_corners=True
    E = ijk @ A[:3, :3].T + A[:3, 3]
    X = world(A, F.shape)
    return sec, cpu, [((E - X).astype(np.float32), A)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--vox", type=float, default=2.0)
    ap.add_argument("--peers", default="ants")
    ap.add_argument("--schedule", default="quick", choices=["quick", "slow", "both"])
    a = ap.parse_args()
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "2"
    vx.set_num_threads(2)
    import tempfile
    F, A, brain, labels = grid(a.vox)
    print(f"ch2 at {a.vox} mm: {F.shape}, 2 threads")
    kinds = {"quick": ["SyN"], "slow": ["antsRegistrationSyN[s]"], "both": ["SyN", "antsRegistrationSyN[s]"]}[a.schedule]
    rows = []
    for p in range(a.pairs):
        M, G = make_pair(F, A, 100 + p)
        with tempfile.TemporaryDirectory() as tmp:
            X = world(A, F.shape)
            err0 = np.sqrt(np.mean(np.sum((G(X[brain]) - X[brain]) ** 2, -1)))
            tools = [("voxalign syn", lambda: run_voxalign(F, M, A, tmp))]
            if "ants" in a.peers.split(","):
                for k in kinds:
                    tools.append((f"ants {k}", lambda k=k: run_ants(F, M, A, tmp, k)))
            if "elastix" in a.peers:
                tools.append(("elastix affine+bspline", lambda: run_elastix(F, M, A, tmp)))
            if "fireants" in a.peers:
                tools.append(("fireants", lambda: run_fireants(F, M, A, tmp)))
            for name, fn in tools:
                try:
                    sec, cpu, tr = fn()
                except (ImportError, ModuleNotFoundError) as e:
                    print(f"{name}: skipped ({e})")
                    continue
                err, dice, jmin = figures(estimated_map(A, F.shape, tr), G, A, brain, labels, F.shape)
                rows.append((p, name, err, dice, jmin, sec, cpu))
                print(f"pair {p} (start {err0:.2f} mm)  {name:28s} err {err:.3f} mm  dice {dice:.3f}  "
                      f"min detJ {jmin:.3f}  time {sec:.1f} s  cpu {cpu:.1f} s", flush=True)
    print("\n| tool | composition error RMS (mm) | AAL Dice | min det J | time (s) | cpu (s) |\n|---|---|---|---|---|---|")
    for name in dict.fromkeys(r[1] for r in rows):
        rs = [r for r in rows if r[1] == name]
        print(f"| {name} | {np.mean([r[2] for r in rs]):.3f} | {np.mean([r[3] for r in rs]):.3f} | "
              f"{min(r[4] for r in rs):.3f} | {np.mean([r[5] for r in rs]):.1f} | {np.mean([r[6] for r in rs]):.1f} |")


if __name__ == "__main__":
    main()
