"""Where sources are and on which surface to draw them.

Everything is returned in metres, in the subject's MRI (surface RAS) frame when it can be
reached (source space already in MRI coordinates, or head coordinates plus ``trans``), else in
the source space's own frame.  The template option maps sources to MNI space and snaps them on
nilearn's fsaverage5 meshes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._utils import source_amplitudes

FIFFV_COORD_HEAD = 4
FIFFV_COORD_MRI = 5
HEMIS = ("lh", "rh")


@dataclass
class HemiGeometry:
    """One cortical hemisphere: its mesh and the stc rows living on it."""

    hemi: str
    rr: np.ndarray  # (n_vertices, 3) metres
    tris: np.ndarray  # (n_tris, 3)
    rows: np.ndarray  # rows of stc.data belonging to this hemisphere
    mesh_idx: np.ndarray  # mesh vertex of each of those rows
    pos: np.ndarray  # (len(rows), 3) positions of those sources (metres)
    label: str = ""


@dataclass
class SourceGeometry:
    kind: str  # 'surface' or 'volume'
    frame: str  # 'mri', 'head' or 'mni'
    hemis: list = field(default_factory=list)  # surface: list[HemiGeometry]
    pos: np.ndarray | None = None  # all stc rows' positions (metres), in stc row order
    hemi_of_row: np.ndarray | None = None  # 'lh'/'rh'/'vol' per row
    vertno_of_row: np.ndarray | None = None
    envelope: tuple | None = None  # volume: (rr, tris) of a transparent brain surface
    mri_head_t: object = None


# --------------------------------------------------------------------------- transforms
def _read_trans(trans):
    import mne

    if trans is None:
        return None
    if isinstance(trans, (str, Path)):
        if str(trans) == "fsaverage":
            trans = Path(mne.__file__).parent / "data" / "fsaverage" / "fsaverage-trans.fif"
        trans = mne.read_trans(trans, verbose=False)
    if trans["from"] == FIFFV_COORD_HEAD:
        trans = mne.transforms.invert_transform(trans)
    return trans  # mri -> head


def _src_frame_to_mri(src, trans):
    """Return (function mapping src-frame points to display frame, frame name, mri_head_t)."""
    import mne

    frame = src[0]["coord_frame"]
    mri_head_t = _read_trans(trans)
    if frame == FIFFV_COORD_MRI:
        return (lambda x: x), "mri", mri_head_t
    if frame == FIFFV_COORD_HEAD and mri_head_t is not None:
        head_mri = mne.transforms.invert_transform(mri_head_t)["trans"]
        return (lambda x: mne.transforms.apply_trans(head_mri, x)), "mri", mri_head_t
    return (lambda x: x), ("head" if frame == FIFFV_COORD_HEAD else "unknown"), mri_head_t


def to_mni(pos_mri, subject, subjects_dir):
    """MRI (surface RAS, metres) → MNI (metres) through the subject's talairach.xfm."""
    import mne

    ident = mne.transforms.Transform("mri", "head", np.eye(4))
    return mne.head_to_mni(pos_mri, subject, ident, subjects_dir=subjects_dir, verbose=False) / 1e3


# --------------------------------------------------------------------------- meshes
_FSAVERAGE5 = None


def fsaverage5_meshes(surface="pial"):
    """fsaverage5 (lh, rh) meshes from nilearn (shipped with the package, no download)."""
    global _FSAVERAGE5
    if _FSAVERAGE5 is None:
        from nilearn import datasets

        _FSAVERAGE5 = datasets.load_fsaverage("fsaverage5")
    mesh = _FSAVERAGE5[surface]
    out = []
    for part in ("left", "right"):
        m = mesh.parts[part]
        out.append((np.asarray(m.coordinates, float) / 1e3, np.asarray(m.faces, np.int64)))
    return out


def _subject_surface(subjects_dir, subject, hemi, surface):
    import mne

    if subjects_dir is None or subject is None:
        return None
    fname = Path(subjects_dir) / subject / "surf" / f"{hemi}.{surface}"
    if not fname.exists():
        return None
    rr, tris = mne.read_surface(fname, verbose=False)
    return rr / 1e3, tris


def _src_subject(src, subject):
    if subject is not None:
        return subject
    try:
        return src._subject
    except AttributeError:
        return src[0].get("subject_his_id")


def source_geometry(stc, src, subject=None, subjects_dir=None, trans=None, surface="auto"):
    """Locate every row of ``stc`` and pick the meshes to draw.

    ``surface``: ``'auto'`` (the subject's FreeSurfer surface named ``'white'`` when found and
    matching the source space, else the source space's own triangulation, else fsaverage5),
    ``'source'`` (the source space triangulation), ``'fsaverage'`` (template fsaverage5 pial via
    MNI coordinates) or any FreeSurfer surface name (``'pial'``, ``'inflated'``...).
    """
    import mne

    subject = _src_subject(src, subject)
    to_disp, frame, mri_head_t = _src_frame_to_mri(src, trans)
    kinds = {s["type"] for s in src}
    if isinstance(stc, (mne.VolSourceEstimate, mne.VolVectorSourceEstimate)) or kinds == {"vol"}:
        return _volume_geometry(stc, src, subject, subjects_dir, to_disp, frame, mri_head_t)
    if kinds != {"surf"} or len(src) != 2:
        raise ValueError(f"expected a 2-hemisphere surface or a volume source space, got {kinds}")

    vertices = stc.vertices
    offsets = np.cumsum([0] + [len(v) for v in vertices])
    hemis = []
    pos_all, hemi_of_row, vertno_of_row = [], [], []
    use_template = surface == "fsaverage"
    for i, hemi in enumerate(HEMIS):
        s = src[i]
        vertno = np.asarray(vertices[i])
        rows = np.arange(offsets[i], offsets[i + 1])
        pos = to_disp(s["rr"][vertno]) if len(vertno) else np.zeros((0, 3))
        pos_all.append(pos)
        hemi_of_row += [hemi] * len(vertno)
        vertno_of_row.append(vertno)
        mesh = None
        if not use_template:
            if surface not in ("auto", "source") and frame == "mri":
                mesh = _subject_surface(subjects_dir, subject, hemi, surface)
                if mesh is None:
                    warnings.warn(f"no {hemi}.{surface} surface for {subject!r}; using the "
                                  "source space triangulation", stacklevel=3)
            elif surface == "auto" and frame == "mri":
                mesh = _subject_surface(subjects_dir, subject, hemi, "white")
            if mesh is not None and len(mesh[0]) != s["np"]:
                mesh = None  # not the surface this source space was made from
            if mesh is None and s.get("tris") is not None and len(s["tris"]):
                mesh = (to_disp(s["rr"]), np.asarray(s["tris"]))
            if mesh is None and s.get("use_tris") is not None and len(s["use_tris"]):
                mesh = (to_disp(s["rr"]), np.asarray(s["use_tris"]))
        if mesh is None:
            use_template = True
            break
        hemis.append(HemiGeometry(hemi, mesh[0], mesh[1], rows, vertno, pos))
    pos_all = np.concatenate(pos_all) if pos_all else np.zeros((0, 3))
    geom = SourceGeometry("surface", frame, hemis, pos_all, np.array(hemi_of_row),
                          np.concatenate(vertno_of_row) if vertno_of_row else np.zeros(0, int),
                          mri_head_t=mri_head_t)
    if use_template:
        geom = _template_geometry(stc, src, subject, subjects_dir, to_disp, frame, geom)
    return geom


def _template_geometry(stc, src, subject, subjects_dir, to_disp, frame, geom):
    """Snap sources (through MNI coordinates) onto nilearn's fsaverage5 pial meshes."""
    from scipy.spatial import cKDTree

    vertices = stc.vertices
    offsets = np.cumsum([0] + [len(v) for v in vertices])
    meshes = fsaverage5_meshes("pial")
    hemis, pos_all = [], []
    for i, hemi in enumerate(HEMIS):
        vertno = np.asarray(vertices[i])
        rows = np.arange(offsets[i], offsets[i + 1])
        pos = to_disp(src[i]["rr"][vertno]) if len(vertno) else np.zeros((0, 3))
        if len(pos) and subject not in (None, "fsaverage") and frame == "mri":
            pos = to_mni(pos, subject, subjects_dir)
        elif len(pos) and subject != "fsaverage":
            warnings.warn("sources are not in MRI coordinates (no trans?); their positions "
                          "on the fsaverage template are approximate", stacklevel=4)
        rr, tris = meshes[i]
        idx = cKDTree(rr).query(pos)[1] if len(pos) else np.zeros(0, int)
        hemis.append(HemiGeometry(hemi, rr, tris, rows, idx, rr[idx] if len(idx) else pos,
                                  label="fsaverage5"))
        pos_all.append(rr[idx] if len(idx) else pos)
    geom.hemis = hemis
    geom.frame = "mni"
    geom.pos = np.concatenate(pos_all)
    return geom


def _volume_geometry(stc, src, subject, subjects_dir, to_disp, frame, mri_head_t):
    import mne

    vertno = np.concatenate([np.asarray(v) for v in stc.vertices])
    rr_all = np.concatenate([s["rr"] for s in src])
    pos = to_disp(rr_all[vertno])
    envelope = None
    if frame == "mri" and subjects_dir is not None and subject is not None:
        fname = Path(subjects_dir) / subject / "bem" / "inner_skull.surf"
        if fname.exists():
            rr, tris = mne.read_surface(fname, verbose=False)
            envelope = (rr / 1e3, tris)
    if envelope is None:
        inuse = np.concatenate([to_disp(s["rr"][s["vertno"]]) for s in src])
        envelope = _hull_surface(inuse)
    return SourceGeometry("volume", frame, [], pos, np.array(["vol"] * len(pos)), vertno,
                          envelope=envelope, mri_head_t=mri_head_t)


def _hull_surface(points):
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points)
    used = np.unique(hull.simplices)
    remap = -np.ones(len(points), int)
    remap[used] = np.arange(len(used))
    return points[used], remap[hull.simplices]


# --------------------------------------------------------------------------- smoothing
def mesh_edges_graph(rr, tris):
    """Sparse symmetric graph of mesh edges weighted by Euclidean length."""
    from scipy import sparse

    e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    w = np.linalg.norm(rr[e[:, 0]] - rr[e[:, 1]], axis=1)
    n = len(rr)
    g = sparse.coo_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    return g.maximum(g.T)


def geodesic_blob_weights(rr, tris, centers, sigma=None):
    """(len(centers), n_vertices) Gaussian weights of geodesic (mesh graph) distance.

    ``sigma`` defaults to max(6 mm, 0.8 × median edge length) so that blobs stay visible on
    coarse meshes.
    """
    from scipy.sparse.csgraph import dijkstra

    g = mesh_edges_graph(rr, tris)
    if sigma is None:
        sigma = max(0.006, 0.8 * float(np.median(g.data))) if g.nnz else 0.006
    if len(centers) == 0:
        return np.zeros((0, len(rr))), sigma
    d = dijkstra(g, directed=False, indices=np.asarray(centers), limit=3 * sigma)
    w = np.exp(-0.5 * (d / sigma) ** 2)
    w[~np.isfinite(d)] = 0.0
    return w, sigma


def amplitudes(stc):
    return source_amplitudes(stc)
