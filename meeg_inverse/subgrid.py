"""Sub-grid positions of the reported sources.

A real source lies between the vertices of the inversion grid (10–15 mm apart on
a decimated cortex), with its own orientation. On the MNE sample head, the
normal field of the nearest grid vertex correlates with the field of a source
half-way between vertices by 0.72 only (median), the free-orientation field of
that vertex by 0.95, and a free-orientation field linearly interpolated between
the vertices of the surrounding triangle by more than 0.99. The sparse estimate
therefore lands on a neighbouring vertex, often more than 10 mm from the source.

For each reported source, :func:`refine_positions` scans a 3-D lattice of points
around it (:data:`LATTICE_STEP_MM`, then :data:`FINE_STEP_MM` around the best;
points within :data:`NEAR_GRID_MM` of a grid vertex of the source's hemisphere):
the free-orientation field at a point is the moving-least-squares value of the
grid's fields (:func:`mls_weights`: a quadratic in position fitted to the fields
of the vertices within :data:`MLS_RADIUS_MM`, Gaussian weights of width
:data:`MLS_SIGMA_MM`), and the point whose field explains most of the data left
by the other reported sources (their own fields projected out) is the source's
position. This is a scanning dipole fit (the multiple-source spatio-temporal
model of Scherg & von Cramon 1985, Electroenceph. Clin. Neurophysiol. 62(1))
restricted to the neighbourhood of each sparse source, with fields from the
forward solution alone (no new forward computations). Coordinate ascent over
the sources, strongest first, :data:`SWEEPS` times.

Why a quadratic and not the triangle's linear interpolation (:class:`Scanner`,
which the continuous recordings' event scans keep): the field varies with the
position at the scale of the sensor distance, so a linear interpolation over
10–15 mm misses its curvature; between the vertices that model error moves a
noise-free scan's best point by 3.6 mm (median; 93 % within 10 mm), the quadratic
by 1.7 mm (96 %) on the sample head's off-grid cortex (development study in
docs/validation.md, amendment 4).

With the head model (:class:`ForwardLatticeScanner`; by default the BEM the
forward was computed with, when the forward names it: amendment 7 of
docs/validation.md), the field at each lattice point is the forward model's own
(MNE's forward computation at that point, whitened as the gain) rather than an
interpolation: the scans are then dipole fits with the real physics, and a
noise-free source lands within the fine lattice step of its position. On the
development trials the interpolation's model error displaced 10 of 192 true
sources by 10-20 mm and put a twin beside others.

The grid estimate (the source estimate, its amplitudes) is unchanged: only the
reported position moves. It applies to surface source spaces with their mesh
(``use_tris``) and loose or free orientations; elsewhere the reported position
stays the cluster's energy-weighted centroid.
"""

from typing import NamedTuple

import numpy as np

from .clusters import merge_clusters

__all__ = ["FINE_STEP_MM", "ForwardLatticeScanner", "LATTICE_STEP_MM", "MAX_SOURCES",
           "MERGE_MM", "MLS_MIN_VERTICES", "MLS_RADIUS_MM", "MLS_SIGMA_MM", "NEAR_GRID_MM",
           "PRUNE_FRACTION", "SCAN_DIMENSIONS", "SCAN_RADIUS_MM", "STABLE_MM", "STEP", "SWEEPS", "TWIN_COSINE", "TWIN_MM", "LatticeScanner", "Scanner",
           "forward_field_function", "refine_positions", "free_gain_blocks",
           "inversion_mesh", "max_sources", "mls_weights", "spare_dimensions"]

#: Triangles with a vertex within this distance of a cluster's centroid are scanned (mm).
SCAN_RADIUS_MM = 15.0
#: Barycentric step of the triangle scan (:class:`Scanner`) inside a triangle: 1 / STEP.
STEP = 6
#: Spacing of the lattice scan (:class:`LatticeScanner`), then of its refinement
#: within one coarse step of the best point (mm).
LATTICE_STEP_MM = 3.0
FINE_STEP_MM = 1.0
#: Lattice points farther than this from every grid vertex of the source's
#: hemisphere are not scanned (off the cortex; the fields would be extrapolated) (mm).
NEAR_GRID_MM = 10.0
#: Moving least squares: vertices within MLS_RADIUS_MM enter, weighted by a
#: Gaussian of width MLS_SIGMA_MM (mm).
MLS_RADIUS_MM = 30.0
MLS_SIGMA_MM = 10.0
#: ... and at least this many (10 coefficients and a margin); fewer: no weights.
MLS_MIN_VERTICES = 12
#: Coordinate-ascent sweeps over the reported sources.
SWEEPS = 2
#: More reported sources than this keep their centroids (no sub-grid fit); fewer
#: where the channels cannot place them all (:func:`max_sources`).
MAX_SOURCES = 10
#: Dimensions of the data a source's scan must keep beyond the other sources'
#: fields: twice those of its own field. With fewer, every candidate position
#: explains about all that is left (exact ties on 30 EEG channels and 10 sources:
#: 29 - 27 = 2 dimensions), and the fit is decided by rounding.
SCAN_DIMENSIONS = 6
#: Scores this close to the best (relative) are a tie, resolved by the point
#: nearest the scan's centre rather than by rounding.
TIE_RTOL = 1e-9
#: Reported sources of one hemisphere whose fitted positions are this close are
#: merged (the simulated sources of the validation are 30 mm apart or more) (mm).
MERGE_MM = 16.0
#: Reported sources whose fitted fields explain less than this fraction of the
#: data's energy that the other sources do not are dropped (`prune`).
PRUNE_FRACTION = 0.01
#: Two reported sources of one hemisphere fitted within TWIN_MM whose time
#: courses agree to TWIN_COSINE (absolute cosine) are one source seen twice: the weaker
#: (by the energy only it explains) is dropped with the pruned ones (`prune`)
#: (mm; docs/validation.md, amendment 6).
TWIN_MM = 30.0
TWIN_COSINE = 0.95
#: A channel subsample's fit within this distance confirms a position (mm).
STABLE_MM = 7.0


def max_sources(n_rows, n_orient=3):
    """Most sources whose positions ``n_rows`` (whitened) channels can fit together.

    Each source's scan keeps :data:`SCAN_DIMENSIONS` dimensions of the data
    beyond the other sources' fields: ``n_rows - n_orient (K - 1) >=
    SCAN_DIMENSIONS``; at most :data:`MAX_SOURCES`. E.g. 8 on 29 (30 EEG
    electrodes, average reference), 10 on MEG.
    """
    return int(min(MAX_SOURCES, (n_rows - SCAN_DIMENSIONS) // n_orient + 1))


def spare_dimensions(n_rows, n_sources, n_orient=3):
    """Dimensions a source's scan on ``n_rows`` channels keeps beyond the
    :data:`SCAN_DIMENSIONS` it needs, ``n_sources - 1`` others projected out
    (negative: it cannot place the source)."""
    return n_rows - n_orient * (n_sources - 1) - SCAN_DIMENSIONS


def _placeable(n_rows, n_sources, n_orient=3):
    """Whether a source's scan on ``n_rows`` channels, ``n_sources - 1`` others
    projected out, keeps :data:`SCAN_DIMENSIONS` dimensions."""
    return spare_dimensions(n_rows, n_sources, n_orient) >= 0


def _best_index(scores, points, centre):
    """Index of the best score; near-ties (:data:`TIE_RTOL`) go to the point nearest
    ``centre``, so that rounding does not choose among equal fits."""
    scores = np.asarray(scores)
    tied = np.flatnonzero(scores >= scores.max() * (1.0 - TIE_RTOL))
    if tied.size == 1:
        return int(tied[0])
    dist = np.linalg.norm(np.asarray(points)[tied] - centre, axis=1)
    return int(tied[np.argmin(dist)])


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
    # matmul (BLAS per field) rather than einsum: the scans' hot spot.
    return fields - np.matmul(basis, np.matmul(basis.T, fields))


def _explained_energy(fields, resid, basis):
    """Energy of ``resid`` each free-orientation field of a stack (n, n_rows, 3)
    explains once the orthonormal ``basis`` (or None) is projected out of it."""
    if basis is not None:
        fields = _project_out_fields(basis, fields)
    q = np.linalg.qr(fields)[0]
    explained = np.matmul(q.transpose(0, 2, 1), resid)  # (n, 3, n_times)
    return np.einsum("njt,njt->n", explained, explained)


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
            score += _explained_energy(interp, _project_out(basis, d), basis)
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
        score = _explained_energy(self._interpolated(cand, rows), resid, basis)
        t, p = divmod(int(np.argmax(score)), len(self.bary))
        return cand[t], self.bary[p]

    def position(self, verts, weights):
        return weights @ self.positions[verts]


def _quadratic_design(offsets):
    """Columns 1, x, y, z, x², y², z², xy, xz, yz of offsets (in dm: a conditioned design)."""
    d = offsets * 10.0
    x, y, z = d.T
    return np.stack([np.ones(len(d)), x, y, z, x * x, y * y, z * z, x * y, x * z, y * z], 1)


def mls_weights(vertex_positions, point, radius_mm=MLS_RADIUS_MM, sigma_mm=MLS_SIGMA_MM):
    """Moving-least-squares weights of the vertices' fields at a point.

    The value at ``point`` of the quadratic (in position) fitted by weighted
    least squares to the vertices within ``radius_mm`` (Gaussian weights of
    width ``sigma_mm``) is a linear combination of their values: these are its
    coefficients (Lancaster & Salkauskas 1981, Math. Comp. 37(155)). They
    reproduce quadratics, hence ``weights.sum() == 1`` and
    ``weights @ vertex_positions[indices] == point``: the point is an affine
    combination of the vertices, like a barycentric one, but the weights may
    be negative.

    Parameters
    ----------
    vertex_positions : ndarray, shape (n_vertices, 3)
        Grid positions (m).
    point : ndarray, shape (3,)
        Where the field is wanted (m, same frame).
    radius_mm, sigma_mm : float
        See :data:`MLS_RADIUS_MM`, :data:`MLS_SIGMA_MM`.

    Returns
    -------
    indices, weights : ndarray of int, ndarray | None
        None when fewer than 12 vertices are near (10 coefficients and a margin).
    """
    dist = np.linalg.norm(vertex_positions - point, axis=1)
    near = np.flatnonzero(dist < radius_mm * 1e-3)
    if len(near) < MLS_MIN_VERTICES:
        return None
    # Gaussian weights lowered to zero at the radius: a vertex entering or leaving
    # the neighbourhood then changes the field continuously. Cut off at 0.011 instead,
    # a float32 round trip of the positions (4 nm) moved fitted sources by 14 mm on
    # the 30-electrode EEGLAB recording.
    w = (np.exp(-0.5 * (dist[near] / (sigma_mm * 1e-3)) ** 2)
         - np.exp(-0.5 * (radius_mm / sigma_mm) ** 2))
    design = _quadratic_design(vertex_positions[near] - point)
    # Row 0 of the weighted pseudo-inverse: the fitted constant term, the value at the point.
    return near, np.linalg.pinv(design * w[:, None])[0] * w


class CoarseScan(NamedTuple):
    """The coarse half of a lattice scan (:meth:`LatticeScanner.scan_coarse`)."""

    #: Cache key and position (MRI, m) of the coarse lattice's best point.
    key: tuple
    point: np.ndarray
    #: Orthonormal basis of the other sources' fields projected out (None: none).
    basis: np.ndarray | None


def _key(point):
    """The cache key of a scanned point: its position to 0.1 mm."""
    return tuple(np.round(point * 1e4).astype(int))


class LatticeScanner(Scanner):
    """The scan of one source's position on a 3-D lattice, fields by moving least squares.

    Same interface as :class:`Scanner` (a found position is ``(indices,
    weights)`` of grid sources, its field their weighted sum); the candidates
    are the points of a cubic lattice within the scan radius of the centre
    (:data:`LATTICE_STEP_MM`), then a finer one around the best
    (:data:`FINE_STEP_MM`), kept when within :data:`NEAR_GRID_MM` of a vertex
    of the source's hemisphere; the field at a point is given by
    :func:`mls_weights`.
    """

    def __init__(self, problem, scan_radius_mm=SCAN_RADIUS_MM, step_mm=LATTICE_STEP_MM,
                 fine_step_mm=FINE_STEP_MM):
        super().__init__(problem, None, scan_radius_mm, STEP)
        self.step, self.fine = step_mm * 1e-3, fine_step_mm * 1e-3
        self._weights = {}
        self._point_fields = {}
        self._near = {}  # kept lattice points by (centre, radius, step, hemisphere)

    @staticmethod
    def _lattice(centre, radius, step):
        g = np.arange(-radius, radius + step / 2, step)
        offsets = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
        return centre + offsets[np.linalg.norm(offsets, axis=1) <= radius + 1e-9]

    def _near_grid(self, points, hemi, placeable=False):
        """(key, point) pairs of the points within :data:`NEAR_GRID_MM` of a grid vertex
        (of ``hemi``; ``placeable``: with the vertices :func:`mls_weights` needs); the
        key (0.1 mm) names the point's cached weights and field."""
        dist = np.linalg.norm(points[:, None] - self.positions[None], axis=2)
        nearest = dist.argmin(axis=1)
        keep = dist[np.arange(len(points)), nearest] <= NEAR_GRID_MM * 1e-3
        if hemi is not None:
            keep &= self.hemis[nearest] == hemi
        if placeable:
            keep &= (dist < MLS_RADIUS_MM * 1e-3).sum(axis=1) >= MLS_MIN_VERTICES
        return [(_key(point), point) for point in points[keep]]

    def _points(self, points, hemi):
        """The lattice points kept: (key, point) pairs, the key (0.1 mm) naming the
        cached MLS weights and field."""
        out = []
        for key, point in self._near_grid(points, hemi):
            if key not in self._weights:
                self._weights[key] = mls_weights(self.positions, point)
            if self._weights[key] is not None:
                out.append((key, point))
        return out

    def _fields_of(self, keys, rows):
        missing = [k for k in keys if k not in self._point_fields]
        if missing:  # one product for all new points: their weights on the vertices involved
            verts = np.unique(np.concatenate([self._weights[k][0] for k in missing]))
            weights = np.zeros((len(missing), len(verts)))
            for i, key in enumerate(missing):
                idx, w = self._weights[key]
                weights[i, np.searchsorted(verts, idx)] = w
            vert_fields = self.fields(verts)  # (n_channels, n_verts, 3)
            fields = (weights @ vert_fields.transpose(1, 0, 2).reshape(len(verts), -1))
            self._point_fields.update(zip(missing, fields.reshape(len(missing), -1, 3)))
        return np.stack([self._point_fields[k] for k in keys])[:, rows]

    def scan(self, data, centre, hemi, others, rows=slice(None)):
        """Best (grid indices, MLS weights) near ``centre`` for ``data`` (rows given)
        once the fields ``others`` (n_rows, m) are projected out; None if no point:
        :meth:`scan_coarse`, then :meth:`scan_fine` around its best point."""
        coarse = self.scan_coarse(data, centre, hemi, others, rows)
        return None if coarse is None else self.scan_fine(coarse, data, hemi, rows)

    def scan_coarse(self, data, centre, hemi, others, rows=slice(None)):
        """The first half of :meth:`scan`: the best point of the coarse lattice.

        Returns
        -------
        coarse : CoarseScan | None
            The point (the centre of the fine lattice) and what :meth:`scan_fine`
            goes on from; None if no point.
        """
        basis = np.linalg.qr(others)[0] if others is not None and others.shape[1] else None
        centre = np.asarray(centre, float)
        points = self._points_near(centre, self.radius, self.step, hemi)
        if not points:
            return None
        key, point = self._best(points, _project_out(basis, data), basis, rows, centre)
        return CoarseScan(key, point, basis)

    def scan_fine(self, coarse, data, hemi, rows=slice(None)):
        """The second half of :meth:`scan`: (grid indices, MLS weights) of the best
        point of the fine lattice around ``coarse`` (:meth:`scan_coarse` of the same
        ``data``, ``hemi`` and ``rows``)."""
        fine = self._points_near(coarse.point, self.step, self.fine, hemi)
        if not fine:
            return self._weights[coarse.key]
        # The residual again rather than kept: a subsample's data can be long, and
        # the confidence holds the coarse scans of all its subsamples at once.
        resid = _project_out(coarse.basis, data)
        return self._weights[self._best(fine, resid, coarse.basis, rows, coarse.point)[0]]

    def _best(self, points, resid, basis, rows, around):
        """The (key, point) of ``points`` whose field explains most of ``resid``
        (near-ties to the point nearest ``around``: :func:`_best_index`)."""
        fields = self._fields_of([k for k, _ in points], rows)
        score = _explained_energy(fields, resid, basis)
        return points[_best_index(score, [p for _, p in points], around)]

    def prefetch(self, lattices):
        """Prepare the points of several lattices, ``[(centre, radius, step, hemi)]``,
        at once (the fields by moving least squares are cheap: nothing to gain here)."""

    def _points_near(self, centre, radius, step, hemi):
        """:meth:`_points` of the lattice around ``centre``, cached: the sweeps and
        the confidence's subsamples scan around the same centres again and again."""
        centre = np.asarray(centre, float)
        key = (centre.tobytes(), radius, step, hemi)
        if key not in self._near:
            self._near[key] = self._points(self._lattice(centre, radius, step), hemi)
        return self._near[key]


class ForwardLatticeScanner(LatticeScanner):
    """:class:`LatticeScanner` with each lattice point's field computed by the head model.

    The lattice, its cortex constraint and the reported ``(indices, weights)``
    are the same (the moving-least-squares weights only place the point:
    ``weights @ positions[indices]`` is the point); the field at a point is
    the forward model's (:func:`mne.make_forward_solution` physics with the
    user's BEM, whitened as the problem's gain) instead of an interpolation of
    the grid's fields. Points outside the BEM's inner skull are not scanned.

    Parameters
    ----------
    problem : InverseProblem
    fields : callable
        ``fields(points)`` -> (whitened fields (n_kept, n_channels, 3), mask of
        the points kept), MRI points (m); see :func:`forward_field_function`.
    """

    def __init__(self, problem, fields, scan_radius_mm=SCAN_RADIUS_MM,
                 step_mm=LATTICE_STEP_MM, fine_step_mm=FINE_STEP_MM):
        super().__init__(problem, scan_radius_mm, step_mm, fine_step_mm)
        self._compute = fields
        # The placing weights of a point are only needed for the points a scan
        # returns: computed then (the MLS fit of every lattice point took ~1.4 s).
        self._weights = _PlacingWeights(self.positions)

    def _store(self, pairs):
        """Compute and cache the fields of new (key, point) pairs (None: not modelled)."""
        todo = list({k: p for k, p in pairs if k not in self._point_fields}.items())
        if todo:
            fields, kept = self._compute(np.array([p for _, p in todo]))
            it = iter(fields)
            for (key, _), ok in zip(todo, kept):
                self._point_fields[key] = next(it) if ok else None

    def _points(self, points, hemi):
        out = self._near_grid(points, hemi, placeable=True)
        self._store(out)
        self._weights.points.update(out)
        return [(k, p) for k, p in out if self._point_fields[k] is not None]

    def prefetch(self, lattices):
        """Compute the fields of several lattices, ``[(centre, radius, step, hemi)]``,
        in one call of the head model: each call costs ~20 ms besides 0.2 ms a point
        (the confidence's subsamples each scan a fine lattice of their own)."""
        self._store([pair for centre, radius, step, hemi in lattices
                     for pair in self._near_grid(self._lattice(np.asarray(centre, float),
                                                               radius, step),
                                                 hemi, placeable=True)])

    def _fields_of(self, keys, rows):
        return np.stack([self._point_fields[k] for k in keys])[:, rows]

    def field_at(self, verts, weights, rows=slice(None)):
        point = np.asarray(weights) @ self.positions[np.asarray(verts)]
        key = _key(point)
        self._store([(key, point)])
        if self._point_fields[key] is None:  # a grid vertex outside the BEM: the grid's field
            return super().field_at(verts, weights, rows)
        return self._point_fields[key][rows]


class _PlacingWeights(dict):
    """Grid indices and moving-least-squares weights placing each lattice point
    (``weights @ positions[indices]`` is the point; :func:`mls_weights`), computed
    when first asked for."""

    def __init__(self, positions):
        super().__init__()
        self.positions, self.points = positions, {}

    def __missing__(self, key):
        self[key] = mls_weights(self.positions, self.points[key])
        return self[key]


def forward_field_function(problem, head_model):
    """``fields(points)`` of :class:`ForwardLatticeScanner`: the head model's
    free-orientation fields at MRI points, whitened as ``problem.gain`` (x, y, z of
    the head frame, without the source weighting), and the mask of the points
    inside the inner skull.

    Parameters
    ----------
    problem : InverseProblem
    head_model : meeg_inverse.dipole_positions.HeadModel
        Must model every channel of the problem (a three-layer BEM with EEG).
    """
    from .dipole_positions import forward_modeler

    compute = forward_modeler(problem.info, head_model)  # prepared once (cached)

    def fields(points):
        gain, kept, names = compute(points)
        order = [names.index(c) for c in problem.ch_names]
        # Orientations: the head frame's x, y, z (the scans use only each field's span).
        # One matrix product (BLAS), not an einsum over the 3-D array (5x slower).
        n = gain.shape[1]
        white = problem.whitener @ gain[order].reshape(len(order), 3 * n)
        return white.reshape(-1, n, 3).transpose(1, 0, 2), kept

    return fields


def _sweeps(scanner, data, clusters, fits, sweeps):
    """Coordinate ascent: each source's scan with the others' current fields projected out."""
    fits = list(fits)
    for _ in range(int(sweeps)):
        for j, cluster in enumerate(clusters):
            others = [scanner.field_at(*f) for i, f in enumerate(fits) if i != j]
            found = scanner.scan(data, cluster.centroid, cluster.hemi,
                                 np.hstack(others) if others else None)
            if found is not None:
                fits[j] = found
    return fits


def _closest_pair(scanner, clusters, fits):
    """(i, j), i < j, of the closest two same-hemisphere fits within :data:`MERGE_MM`, or None."""
    best, pair = MERGE_MM * 1e-3, None
    for j in range(len(clusters)):
        for i in range(j):
            dist = np.linalg.norm(scanner.position(*fits[i]) - scanner.position(*fits[j]))
            if clusters[i].hemi == clusters[j].hemi and dist <= best:
                best, pair = dist, (i, j)
    return pair


def _joint_fit(fields, data):
    """Amplitudes of the joint least-squares fit of ``fields`` to ``data``, shape
    (sum of the fields' columns, n_times)."""
    return np.linalg.lstsq(np.hstack(fields), data, rcond=None)[0]


def _unique_energy(fields, data, amplitudes):
    """Energy of ``data`` each field alone explains: the residual's growth without it
    (two fields or more). ``amplitudes``: the joint fit of all of them
    (:func:`_joint_fit`)."""
    def rss(cols, coef):
        return float(np.sum((data - np.hstack(cols) @ coef) ** 2))

    full = rss(fields, amplitudes)
    return np.array([rss(others, _joint_fit(others, data)) - full
                     for others in (fields[:i] + fields[i + 1:] for i in range(len(fields)))])


def _time_courses(fields, amplitudes):
    """Each field's dominant time course in the joint least-squares fit
    (``amplitudes``, :func:`_joint_fit`), shape (n_fields, n_times).

    The first right singular vector of its (orientations x times) amplitudes,
    scaled by the singular value.
    """
    out, start = [], 0
    for field in fields:
        block = amplitudes[start:start + field.shape[1]]
        start += field.shape[1]
        _, sv, vt = np.linalg.svd(block, full_matrices=False)
        out.append(sv[0] * vt[0])
    return np.array(out)


def _weaker_twin(scanner, clusters, fits, fields, amplitudes, unique):
    """Index of the weaker source of the most similar twin pair, or None.

    Twins: same hemisphere, fitted within :data:`TWIN_MM`, time courses with
    ``|cosine| >= TWIN_COSINE`` (uncentred, so that time-SVD components of the
    data give the same value). Weaker: less energy explained by it alone.
    ``amplitudes``: the joint fit of ``fields`` (:func:`_joint_fit`).
    """
    courses = _time_courses(fields, amplitudes)
    norms = np.linalg.norm(courses, axis=1)
    best, pick = TWIN_COSINE, None
    for j in range(len(fits)):
        for i in range(j):
            dist = np.linalg.norm(scanner.position(*fits[i]) - scanner.position(*fits[j]))
            if clusters[i].hemi != clusters[j].hemi or dist > TWIN_MM * 1e-3:
                continue
            cosine = abs(courses[i] @ courses[j]) / max(norms[i] * norms[j], np.finfo(float).tiny)
            if cosine >= best:
                best, pick = cosine, (i if unique[i] < unique[j] else j)
    return pick


def refine_positions(problem, data, clusters, *, scan_radius_mm=SCAN_RADIUS_MM,
                     step_mm=LATTICE_STEP_MM, sweeps=SWEEPS, prune=True, floors=None,
                     head_model=None):
    """Set each cluster's sub-grid position by a local lattice scan (:class:`LatticeScanner`).

    Parameters
    ----------
    problem : InverseProblem
        The problem the clusters come from.
    data : ndarray, shape (n_channels, n_times)
        Whitened data (``problem.data`` or its time-SVD components).
    clusters : list of meeg_inverse.clusters.SourceCluster
        Reported sources, strongest first; their ``members`` are forward source
        indices and ``centroid`` is in MRI coordinates (m).
    scan_radius_mm, step_mm, sweeps
        See :data:`SCAN_RADIUS_MM`, :data:`LATTICE_STEP_MM`, :data:`SWEEPS`.
    prune : bool
        Drop the sources whose fields explain less than :data:`PRUNE_FRACTION`
        of the data's energy that the others do not (weakest first, refitting
        after each), then the weaker of twins (:data:`TWIN_MM`,
        :data:`TWIN_COSINE`); the automatic rules' reporting. False keeps every
        source (an ``alpha`` the user gave).
    floors : sequence of float | None
        With ``prune``, the energy (whitened units) each cluster must explain
        that the others do not, besides :data:`PRUNE_FRACTION` of the data's
        (None: zeros). A merged source keeps the lower of its two floors.
    head_model : meeg_inverse.dipole_positions.HeadModel | None
        Fields at the lattice points computed with it
        (:class:`ForwardLatticeScanner`, ``position_method`` 'dipole fit
        (BEM)'); None: interpolated (:class:`LatticeScanner`, 'sub-grid fit').
        It must model every channel of the problem.

    Returns
    -------
    stability : callable | None
        ``stability([(rows, sub_data, which), ...])`` -> one bool array per
        channel subsample, one value per cluster: whether a scan on those
        channels (the other sources' fitted fields projected out) puts the
        source within :data:`STABLE_MM` of its fitted position — the position
        check of the confidence, asked only of the clusters ``which`` (bool;
        False for the others). The subsamples are checked together, so that the
        head model computes their lattices' fields in few batches. None when the source space allows
        no refinement (volume or discrete sources, fixed orientation, no mesh,
        masked sources) or there are more clusters than the channels can place
        (:func:`max_sources`): the clusters then keep their centroid as position.
        A subsample with too few channels to place every cluster
        (:data:`SCAN_DIMENSIONS`) confirms none.

    Notes
    -----
    Clusters of one hemisphere fitted within :data:`MERGE_MM` of each other
    are merged in place (:func:`meeg_inverse.clusters.merge_clusters`), and
    pruned ones removed (the list gets shorter: the caller drops the removed
    members from its estimate). Sets ``position`` (MRI, m), ``position_sources``
    (the grid source indices with a non-zero weight) and ``position_weights``
    (their moving-least-squares weights: ``position = position_weights @
    positions[position_sources]``, the field the same combination of their
    fields) of each cluster,
    ``position_method`` ('sub-grid fit', or 'dipole fit (BEM)' with ``head_model``)
    and ``moment`` (the dipole moments at the positions fitted jointly to ``data``,
    A·m, one column per column of ``data``).
    """
    tris = inversion_mesh(problem)
    # Beyond a few sources the answer is not "which few parts of the brain", and
    # the scans' cost grows with the square of their number (75 s for 35).
    data = np.asarray(data, float)
    if tris is None or not clusters or len(clusters) > max_sources(data.shape[0]):
        return None
    if head_model is None:
        scanner = LatticeScanner(problem, scan_radius_mm, step_mm)
    else:
        scanner = ForwardLatticeScanner(problem, forward_field_function(problem, head_model),
                                        scan_radius_mm, step_mm)
    # Start: each source's field is its strongest member's free-orientation field.
    fits = _sweeps(scanner, data, clusters,
                   [(np.array([c.peak]), np.ones(1)) for c in clusters], sweeps)
    # Two sources of a hemisphere fitted this close are one source whose field the
    # grid estimate spread over two clusters: merged (the estimate is unchanged).
    floors = np.zeros(len(clusters)) if floors is None else np.array(floors, float)
    while (pair := _closest_pair(scanner, clusters, fits)) is not None:
        i, j = pair
        clusters[i] = merge_clusters(clusters[i], clusters[j])
        floors[i] = min(floors[i], floors[j])
        del clusters[j], fits[j]
        floors = np.delete(floors, j)
        fits = _sweeps(scanner, data, clusters, fits, sweeps)
    # A source explaining under PRUNE_FRACTION of the data on its own is within
    # the model error of the others' fields (ghosts beside strong sources at high SNR).
    # Two nearby sources with one time course are one source whose field the
    # model gets wrong (the other explains its model error): amendment 6.
    floors = np.maximum(floors, PRUNE_FRACTION * float(np.sum(data ** 2)))
    fields = None  # the fields at ``fits`` and their joint fit, once per set of fits
    while prune and len(clusters) > 1:
        fields = [scanner.field_at(*f) for f in fits]
        amplitudes = _joint_fit(fields, data)
        unique = _unique_energy(fields, data, amplitudes)
        below = np.flatnonzero(unique < floors)
        if below.size:
            drop = int(below[np.argmin(unique[below])])
        else:
            drop = _weaker_twin(scanner, clusters, fits, fields, amplitudes, unique)
            if drop is None:
                break
        del clusters[drop], fits[drop]
        floors = np.delete(floors, drop)
        fits = _sweeps(scanner, data, clusters, fits, sweeps)
        fields = None
    # The dipole moments at the fitted positions, jointly: a source's amplitude is
    # its own, not the root-sum-square of the grid sources that shared it (which
    # overstated it: median relative error 21 % against 1.6 % on 28 sources of the
    # development trials, rules written first). The pruning's last fit when it kept
    # every source.
    if fields is None:
        fields = [scanner.field_at(*f) for f in fits]
        amplitudes = _joint_fit(fields, data)
    for j, (cluster, (verts, weights)) in enumerate(zip(clusters, fits)):
        keep = weights != 0
        cluster.position_sources = np.asarray(verts[keep], int)
        cluster.position_weights = np.asarray(weights[keep], float)
        cluster.position = scanner.position(cluster.position_sources, cluster.position_weights)
        cluster.position_method = "sub-grid fit" if head_model is None else "dipole fit (BEM)"
        cluster.moment = amplitudes[3 * j:3 * j + 3]

    def others(j, rows):
        fields = [scanner.field_at(c.position_sources, c.position_weights, rows)
                  for i, c in enumerate(clusters) if i != j]
        return np.hstack(fields) if fields else None

    def stability(subsamples):
        """[(rows, sub_data, which)] -> [bool per cluster]: the clusters ``which``
        (bool) whose scan on those channels lands within STABLE_MM of their position."""
        # A subsample too small to place every source confirms none (the scan
        # would tie everywhere and return the position it started from).
        jobs = [(n, j) for n, (rows, _, which) in enumerate(subsamples)
                if _placeable(len(np.arange(data.shape[0])[rows]), len(clusters))
                for j in np.flatnonzero(which)]
        # Each lattice's fields in one batch: first the coarse ones around the
        # positions, then the fine ones around each subsample's coarse best (the
        # coarse scans are kept for the fine ones, not done twice).
        scanner.prefetch([(clusters[j].position, scanner.radius, scanner.step,
                           clusters[j].hemi) for j in sorted({j for _, j in jobs})])
        coarse = {}
        for n, j in jobs:
            rows, sub_data, _ = subsamples[n]
            coarse[n, j] = scanner.scan_coarse(sub_data, clusters[j].position,
                                               clusters[j].hemi, others(j, rows), rows)
        scanner.prefetch([(c.point, scanner.step, scanner.fine, clusters[j].hemi)
                          for (_, j), c in coarse.items() if c is not None])
        stable = [np.zeros(len(clusters), bool) for _ in subsamples]
        for (n, j), c in coarse.items():
            if c is None:
                continue
            rows, sub_data, _ = subsamples[n]
            found = scanner.scan_fine(c, sub_data, clusters[j].hemi, rows)
            stable[n][j] = np.linalg.norm(scanner.position(*found)
                                          - clusters[j].position) <= STABLE_MM * 1e-3
        return stable

    return stability
