"""Sub-grid positions of the reported sources.

A real source lies between the vertices of the inversion grid (10–15 mm apart on
a decimated cortex), with its own orientation. On the MNE sample head, the
normal field of the nearest grid vertex correlates with the field of a source
half-way between vertices by 0.72 only (median), the free-orientation field of
that vertex by 0.95, and a free-orientation field linearly interpolated between
the vertices of the surrounding triangle by more than 0.99. The sparse estimate
therefore lands on a neighbouring vertex, often more than 10 mm from the source.

For each reported source, :func:`refine_positions` scans the triangles of the
inversion grid's cortical mesh around it: at each candidate point (barycentric
steps of 1/:data:`STEP` inside each triangle, the vertices included) the
free-orientation gain is interpolated linearly between the triangle's vertices,
and the point whose field explains most of the data left by the other reported
sources (their own fields projected out) is the source's position. This is a
scanning dipole fit (the multiple-source spatio-temporal model of Scherg & von
Cramon 1985, Electroenceph. Clin. Neurophysiol. 62(1)) restricted to the
neighbourhood of each sparse source, with an interpolated lead field instead of
new forward computations, so it needs nothing but the forward solution.
Coordinate ascent over the sources, strongest first, :data:`SWEEPS` times.

The grid estimate (the source estimate, its amplitudes) is unchanged: only the
reported position moves. It applies to surface source spaces with their mesh
(``use_tris``) and loose or free orientations; elsewhere the reported position
stays the cluster's energy-weighted centroid.
"""

import numpy as np

__all__ = ["MAX_SOURCES", "SCAN_RADIUS_MM", "STABLE_MM", "STEP", "SWEEPS",
           "Scanner", "refine_positions", "free_gain_blocks", "inversion_mesh"]

#: Triangles with a vertex within this distance of a cluster's centroid are scanned (mm).
SCAN_RADIUS_MM = 15.0
#: Barycentric step of the scan inside a triangle: 1 / STEP.
STEP = 6
#: Coordinate-ascent sweeps over the reported sources.
SWEEPS = 2
#: More reported sources than this keep their centroids (no sub-grid fit).
MAX_SOURCES = 10
#: A channel subsample's fit within this distance confirms a position (mm).
STABLE_MM = 7.0


def _barycentric(step):
    pts = [(a, b, step - a - b) for a in range(step + 1) for b in range(step + 1 - a)]
    return np.array(pts, float) / step


def free_gain_blocks(problem, blocks):
    """Whitened free-orientation (x, y, z) gain of gain blocks, without the source weighting.

    Parameters
    ----------
    problem : InverseProblem
        With ``n_orient == 3``.
    blocks : array of int
        Gain block indices.

    Returns
    -------
    gain : ndarray, shape (n_channels, len(blocks), 3)
    """
    blocks = np.asarray(blocks, int)
    cols = (3 * blocks[:, None] + np.arange(3)).ravel()
    # Undo the depth/orientation weighting (row i of a solution × weighting = A·m).
    g = problem.gain[:, cols] / problem.source_weighting[cols][None, :]
    g = g.reshape(g.shape[0], len(blocks), 3)
    # Columns along the forward's source orientations -> x, y, z.
    nn = np.asarray(problem.forward["source_nn"]).reshape(-1, 3, 3)[blocks]
    return np.einsum("cbj,bji->cbi", g, nn)


def _project_out(basis, m):
    return m if basis is None else m - basis @ (basis.T @ m)


def _project_out_fields(basis, fields):
    """:func:`_project_out` of each of a stack of fields, (n, n_channels, 3)."""
    return fields - np.einsum("ck,nkj->ncj", basis, np.einsum("ck,ncj->nkj", basis, fields))


def inversion_mesh(problem):
    """Triangles of the inversion grid (source indices, shape (n_tris, 3)), or None.

    None when no sub-grid scan applies: volume or discrete sources, fixed
    orientation, masked sources, or a source space without its mesh (``use_tris``).
    """
    src = problem.forward["src"]
    if src.kind != "surface" or problem.n_orient != 3 or problem.source_mask is not None:
        return None
    tris, offset = [], 0
    for s in src:
        use_tris = s.get("use_tris")
        if use_tris is None or len(use_tris) == 0:
            return None
        vertno = np.asarray(s["vertno"])
        idx = np.minimum(np.searchsorted(vertno, use_tris), len(vertno) - 1)
        # Triangles touching a vertex the forward dropped (outside the inner skull) go.
        ok = (vertno[idx] == use_tris).all(axis=1)
        if not ok.any():
            return None
        tris.append(idx[ok] + offset)
        offset += len(s["vertno"])
    return np.concatenate(tris)


class Scanner:
    """The scan of one source's position around a centre, on (a subset of) the channels.

    Parameters
    ----------
    problem : InverseProblem
        Whitened, weighted gain with ``n_orient == 3``.
    tris : ndarray of int, shape (n_tris, 3)
        From :func:`inversion_mesh`.
    scan_radius_mm : float
        Triangles with a vertex this close to the centre are scanned.
    step : int
        Barycentric step 1/step inside each triangle.
    """

    def __init__(self, problem, tris, scan_radius_mm, step):
        self.problem, self.tris = problem, tris
        positions, hemis = problem.source_positions(np.arange(problem.n_sources))
        self.positions, self.hemis = positions, np.asarray(hemis, dtype=object)
        self.bary = _barycentric(int(step))
        self.radius = scan_radius_mm * 1e-3
        self._fields = {}

    def fields(self, verts):
        """Free-orientation fields of sources, (n_channels, len(verts), 3), cached."""
        missing = [int(v) for v in verts if int(v) not in self._fields]
        if missing:
            g = free_gain_blocks(self.problem, missing)
            self._fields.update({v: g[:, i] for i, v in enumerate(missing)})
        return np.stack([self._fields[int(v)] for v in verts], axis=1)

    def field_at(self, verts, weights, rows=slice(None)):
        return np.einsum("k,ckj->cj", weights, self.fields(verts)[rows])

    def _interpolated(self, cand, rows=slice(None)):
        """Fields at every barycentric point of the triangles ``cand``, (n, n_rows, 3)."""
        verts = np.unique(cand)
        g = self.fields(verts)[rows][:, np.searchsorted(verts, cand)]  # (c, tri, 3, 3)
        return np.einsum("pk,ctkj->tpcj", self.bary, g).reshape(-1, g.shape[0], 3)

    def candidates(self, centre, hemi):
        """Triangles with a vertex within the scan radius of ``centre`` (of ``hemi``;
        None: either hemisphere)."""
        near = np.linalg.norm(self.positions - centre, axis=1) <= self.radius
        if hemi is not None:
            near &= self.hemis == hemi
        return self.tris[near[self.tris].any(axis=1)]

    def scan_pooled(self, items, centre, hemi):
        """Best (triangle, barycentric weights) for several data blocks at once.

        The score of a candidate point is the sum over ``items`` of the energy
        of each block's data that a free-orientation dipole at the point
        explains once that block's ``others`` fields are projected out: one
        position shared by the blocks (e.g. all events of one reported source),
        an orientation and a time course of its own in each.

        Parameters
        ----------
        items : list of (ndarray, ndarray | None)
            ``(data (n_channels, k), others (n_channels, m) | None)``.
        centre : ndarray, shape (3,)
            MRI coordinates (m).
        hemi : str | None
            Scan only this hemisphere's triangles (None: both).

        Returns
        -------
        found : (ndarray of int, ndarray) | None
            The triangle's source indices and the barycentric weights; None
            when no triangle is near or no item is given.
        """
        cand = self.candidates(centre, hemi)
        if cand.size == 0 or not items:
            return None
        interp = self._interpolated(cand)
        score = np.zeros(len(interp))
        plain = [d for d, o in items if o is None or o.shape[1] == 0]
        if plain:  # one QR for all blocks without other sources: Σ_j q_jᵀ (D Dᵀ) q_j
            q = np.linalg.qr(interp)[0]
            d = np.hstack(plain)
            gram = d @ d.T
            score += np.einsum("njc,ncj->n", np.transpose(q, (0, 2, 1)) @ gram, q)
        for d, others in items:
            if others is None or others.shape[1] == 0:
                continue
            basis = np.linalg.qr(others)[0]
            resid = _project_out(basis, d)
            q = np.linalg.qr(_project_out_fields(basis, interp))[0]
            qd = np.einsum("ncj,ct->njt", q, resid)
            score += np.einsum("njt,njt->n", qd, qd)
        t, p = divmod(int(np.argmax(score)), len(self.bary))
        return cand[t], self.bary[p]

    def scan(self, data, centre, hemi, others, rows=slice(None)):
        """Best (triangle, barycentric weights) near ``centre`` for ``data`` (rows given)
        once the fields ``others`` (n_rows, m) are projected out; None if no triangle."""
        cand = self.candidates(centre, hemi)
        if cand.size == 0:
            return None
        basis = np.linalg.qr(others)[0] if others is not None and others.shape[1] else None
        resid = _project_out(basis, data)
        interp = self._interpolated(cand, rows)
        if basis is not None:
            interp = _project_out_fields(basis, interp)
        q = np.linalg.qr(interp)[0]  # (n_cand, n_rows, 3)
        explained = np.einsum("ncj,ct->njt", q, resid)
        score = np.einsum("njt,njt->n", explained, explained)
        t, p = divmod(int(np.argmax(score)), len(self.bary))
        return cand[t], self.bary[p]

    def position(self, verts, weights):
        return weights @ self.positions[verts]


def refine_positions(problem, data, clusters, *, scan_radius_mm=SCAN_RADIUS_MM, step=STEP,
                     sweeps=SWEEPS):
    """Set each cluster's sub-grid position by a local scan of interpolated fields.

    Parameters
    ----------
    problem : InverseProblem
        The problem the clusters come from.
    data : ndarray, shape (n_channels, n_times)
        Whitened data (``problem.data`` or its time-SVD components).
    clusters : list of meeg_inverse.clusters.SourceCluster
        Reported sources, strongest first; their ``members`` are forward source
        indices and ``centroid`` is in MRI coordinates (m).
    scan_radius_mm, step, sweeps
        See :data:`SCAN_RADIUS_MM`, :data:`STEP`, :data:`SWEEPS`.

    Returns
    -------
    stability : callable | None
        ``stability(rows, sub_data)`` -> bool array, one per cluster: whether
        a scan on those channels (the other sources' fitted fields projected
        out) puts the source within :data:`STABLE_MM` of its fitted position —
        the position check of the confidence. None when the source space allows
        no refinement (volume or discrete sources, fixed orientation, no mesh,
        masked sources) or there are more than :data:`MAX_SOURCES` clusters: the
        clusters then keep their centroid as position.

    Notes
    -----
    Sets ``position`` (MRI, m), ``position_sources`` (the source indices of the
    triangle with a non-zero weight) and ``position_weights`` (their barycentric
    weights) of each cluster, and ``position_method = 'sub-grid fit'``.
    """
    tris = inversion_mesh(problem)
    # Beyond a few sources the answer is not "which few parts of the brain", and
    # the scans' cost grows with the square of their number (75 s for 35).
    if tris is None or not clusters or len(clusters) > MAX_SOURCES:
        return None
    scanner = Scanner(problem, tris, scan_radius_mm, step)
    data = np.asarray(data, float)
    # Start: each source's field is its strongest member's free-orientation field.
    fits = [(np.array([c.peak]), np.ones(1)) for c in clusters]
    for _ in range(int(sweeps)):
        for j, cluster in enumerate(clusters):
            others = [scanner.field_at(*f) for i, f in enumerate(fits) if i != j]
            found = scanner.scan(data, cluster.centroid, cluster.hemi,
                                 np.hstack(others) if others else None)
            if found is not None:
                fits[j] = found
    for cluster, (verts, weights) in zip(clusters, fits):
        keep = weights > 0
        cluster.position_sources = np.asarray(verts[keep], int)
        cluster.position_weights = np.asarray(weights[keep], float)
        cluster.position = scanner.position(cluster.position_sources, cluster.position_weights)
        cluster.position_method = "sub-grid fit"

    def stability(rows, sub_data):
        stable = np.zeros(len(clusters), bool)
        for j, cluster in enumerate(clusters):
            others = [scanner.field_at(c.position_sources, c.position_weights, rows)
                      for i, c in enumerate(clusters) if i != j]
            found = scanner.scan(sub_data, cluster.position, cluster.hemi,
                                 np.hstack(others) if others else None, rows)
            stable[j] = found is not None and np.linalg.norm(
                scanner.position(*found) - cluster.position) <= STABLE_MM * 1e-3
        return stable

    return stability
