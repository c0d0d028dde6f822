"""Carry a painted mask change from one face to another.

An edit vector is learned on one image. On another face the same change has to land on that face's parts: a
mouth opened on a small mouth should open a large mouth in proportion, glasses drawn over one pair of eyes should
sit over the other face's eyes. :func:`transfer_change` makes that target mask without knowing what kind of edit it
is: it aligns the two faces on the *anchor* of the change (the edited parts as they were before the edit or, for a
part that is added, such as glasses, the parts it covers) by matching their centroids and spreads, each connected
piece of the anchor on its own when both faces show the same number of pieces (each lens over its own eye, sized to
that eye), and carries what the change does to each class through that alignment: a pixel of a class the
change painted over takes the painted class near the changed pixels, and a part the change cuts back goes
wherever it reaches past the cut on the other face (benchmarks/carry_check.py measures how well the result
matches the same scripted edit made on that face). A change made only of context classes (the face's outline
moved: skin <-> background) or of the parts around the face (hair, neck) is carried in the face's own frame,
the face being every class but background, hair and neck (issue #21: anchored on the neck and hair instead, a
slimmed face landed as flaps beside the other face; anchored on the hair's own mass, a haircut landed at
another height on a face with longer hair).

Mode 2 (:func:`core.edit_vector.refine`) refines a vector's result towards these targets, and
:func:`core.edit_vector.make_transferable` asks random faces to show them, so that a saved vector makes the change
on faces other than its own, not only leaves the rest of them alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from core.edit import CONTEXT_CLASSES, dilate

MIN_ANCHOR_PIXELS = 3
# a face takes the painted classes only near where the source's mask changed (and keeps its own mask elsewhere in
# the region): carrying the whole region would paste the source's hair line onto a face whose hair was trimmed
CHANGE_MARGIN = 1
# an anchor piece smaller than this share of the largest one is a speck of the branch's mask, not a part
MIN_PIECE_SHARE = 0.1
# the classes that are not the face, for the frame a change of context or of these classes is carried in
FACE_FRAME_EXCLUDED = ("background", "hair", "neck")
# a face shows a part the change removes when it has at least this share of the source's pixels of it (a 5-pixel
# speck of glasses is not glasses to take off; :func:`fits`)
MIN_PART_SHARE = 0.25


@dataclass
class Change:
    """A painted change, ready to be carried to other faces (see :func:`describe_change`)."""

    before: torch.Tensor  # [R, R] class ids of the source face
    after: torch.Tensor  # [R, R] the painted target
    roi: torch.Tensor  # [R, R] bool, the source edit's region
    anchor_ids: tuple[int, ...]  # the parts the two faces are aligned on
    keep_ids: tuple[int, ...]  # classes a target pixel may take from the change: the edited ones and context
    part_ids: tuple[int, ...]  # the edited classes (on either side of a changed pixel) that are not context
    removed_ids: tuple[int, ...] = ()  # parts the source showed and the painted target no longer does
    added_ids: tuple[int, ...] = ()  # parts the painted target shows and the source did not, save where it removed one
    painted_over_ids: tuple[int, ...] = ()  # the classes the changed pixels had before the edit


def _frame(mask: torch.Tensor, ids: Sequence[int]) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """Centroid (y, x) and spread of the pixels of ``ids``; None when there are too few.

    The spread is one number, the mean of the two axes' standard deviations, so that the carried change keeps
    its painted proportions: with a scale per axis, a mouth opened by the same height on thin and on thick
    lips was carried as a taller opening on the thicker ones (carry_check: open mouth 0.65-0.78 region IoU
    with per-axis scales, 0.77-0.83 with one)."""
    ys, xs = torch.nonzero(torch.isin(mask, torch.tensor(list(ids), device=mask.device)), as_tuple=True)
    if len(ys) < MIN_ANCHOR_PIXELS:
        return None
    return _centre_and_spread(torch.stack([ys, xs], 1).float())


def _centre_and_spread(pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return pts.mean(0), pts.std(0).mean().clamp(min=0.5)


def describe_change(
    before: torch.Tensor,
    after: torch.Tensor,
    roi: torch.Tensor,
    class_names: Sequence[str],
    context_classes: Sequence[str] = CONTEXT_CLASSES,
    face_frame: bool = True,
    around_face: bool = True,
) -> Change:
    """The change ``before -> after`` inside ``roi`` and the anchor other faces are aligned on.

    The anchor is the edited parts (context classes aside) present before the edit. A change made only of context
    classes (``face_frame``) is anchored on the face: every class but :data:`FACE_FRAME_EXCLUDED`, so that an
    outline moved in lands on the other face's outline. When the edit only adds a part, the anchor is the parts
    under the pixels it painted over (e.g. the eyes under new glasses); failing that, the whole face (every class
    but the first, the background). With ``around_face``, the parts around the face (:data:`FACE_FRAME_EXCLUDED`:
    hair, neck) count as context here: a cut of the hair is placed by the face it frames, not by the hair's own
    mass, which moves with the hair's length (False: anchored on the hair, as before 2026-12-05).
    ``face_frame=False`` gives the anchors before issue #21 (a context-only change anchored on what lay near it:
    neck, hair)."""
    before, after = before.long(), after.long()
    changed = before != after
    if not changed.any():
        raise ValueError("the change is empty: the painted mask equals the original")
    context = {i for i, n in enumerate(class_names) if n in context_classes}
    edited = sorted(set(torch.unique(torch.cat([before[changed], after[changed]])).tolist()))
    anchor = [i for i in edited if i not in context and int((before == i).sum()) >= MIN_ANCHOR_PIXELS]
    frame = context | ({i for i, n in enumerate(class_names) if n in FACE_FRAME_EXCLUDED} if around_face else set())
    if face_frame and set(edited) <= frame:
        anchor = [i for i, n in enumerate(class_names) if n not in FACE_FRAME_EXCLUDED]
    if not anchor:
        under = before[dilate(changed, 1)]
        anchor = sorted(i for i in set(under.tolist()) if i not in context)
    if not anchor:
        anchor = list(range(1, len(class_names)))
    parts = tuple(i for i in edited if i not in context)
    shown = [(int((before == i).sum()), int((after == i).sum())) for i in parts]
    removed = tuple(i for i, (b, a) in zip(parts, shown) if b >= MIN_ANCHOR_PIXELS and a < MIN_ANCHOR_PIXELS)
    # a part drawn where a removed one was is revealed, not added (eyes under glasses taken off): a face may show it
    gone = torch.isin(before, torch.tensor(removed, dtype=torch.long, device=before.device))
    added = tuple(i for i, (b, a) in zip(parts, shown) if b < MIN_ANCHOR_PIXELS and a >= MIN_ANCHOR_PIXELS
                  and not bool(gone[after == i].float().mean() > 0.5))  # fmt: skip
    painted_over = tuple(sorted(set(torch.unique(before[changed]).tolist())))
    return Change(before, after, roi.bool(), tuple(anchor), tuple(sorted(set(edited) | context)), parts, removed,
                  added, painted_over)  # fmt: skip


def fits(change: Change, other: torch.Tensor) -> bool:
    """Whether the change can be made on a face whose mask is ``other`` [R, R]: it shows every part the change
    removes (at least :data:`MIN_PART_SHARE` of the source's pixels of it), none of those it adds (glasses are not
    put on a face that wears them), and the anchor parts."""
    other = other.long()
    for i in change.removed_ids:
        if int((other == i).sum()) < max(MIN_ANCHOR_PIXELS, MIN_PART_SHARE * int((change.before == i).sum())):
            return False
    if any(int((other == i).sum()) >= MIN_ANCHOR_PIXELS for i in change.added_ids):
        return False
    return _frame(other, change.anchor_ids) is not None


def change_clarity(probs: torch.Tensor, before: torch.Tensor, after: torch.Tensor) -> float:
    """How large and clear a painted change is on its source face: the sum, over the changed pixels, of the
    branch's probability of the class they had before (``probs`` [K, R, R] softmax, masks [R, R]). Pixels of a
    faint part (a few uncertain pixels of glasses) count little; a vector is best made from the clearest
    instance of the part it edits (issue #21: a 22-pixel pair of glasses gave a vector that failed on 10 of 10
    faces)."""
    before, after = before.long().to(probs.device), after.long().to(probs.device)
    changed = before != after
    return float(probs.gather(0, before[None])[0][changed].sum())


def _pieces(mask: torch.Tensor, ids: Sequence[int]) -> list[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """The anchor's connected pieces (8-neighbours), specks aside: (pixels [R, R] bool, centroid, spread) each."""
    on = np.isin(mask.cpu().numpy(), list(ids))
    labels, n = ndimage.label(on, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    least = max(MIN_ANCHOR_PIXELS, MIN_PIECE_SHARE * sizes.max())
    out = []
    for k in np.nonzero(sizes >= least)[0] + 1:
        piece = labels == k
        ys, xs = np.nonzero(piece)
        out.append((piece, *_centre_and_spread(torch.from_numpy(np.stack([ys, xs], 1)).float())))
    return out


def _source_coordinates(change: Change, other: torch.Tensor) -> Optional[torch.Tensor]:
    """For each pixel of ``other`` [R, R], where it comes from on the source face [R, R, 2] (y, x, unrounded).

    The whole anchor gives one similarity (shift and one scale). When both faces show the anchor in the same number
    of pieces (two eyes, two tufts of hair), each pixel instead follows the piece of ``other`` nearest to it, aligned
    on the source's matching piece (matched through the whole-anchor alignment): a lens drawn over one eye lands
    over the other face's eye of that side, sized to it, whatever the distance between the eyes (carry_check:
    docs/results.md, carrying a painted change)."""
    src, dst = _frame(change.before, change.anchor_ids), _frame(other, change.anchor_ids)
    if src is None or dst is None:
        return None
    (ms, ss), (md, sd) = (tuple(t.cpu() for t in f) for f in (src, dst))

    def whole(points: torch.Tensor) -> torch.Tensor:  # the whole-anchor alignment, this face -> the source
        return (points - md) * (ss / sd) + ms

    r = other.shape[-1]
    grid = torch.stack(torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij"), -1).float()
    q = whole(grid)
    theirs, ours = _pieces(change.before, change.anchor_ids), _pieces(other, change.anchor_ids)
    if len(ours) < 2 or len(ours) != len(theirs):
        return q
    cost = torch.cdist(whole(torch.stack([c for _, c, _ in ours])), torch.stack([c for _, c, _ in theirs]))
    distance = np.stack([ndimage.distance_transform_edt(~piece) for piece, _, _ in ours])
    nearest = torch.from_numpy(distance.argmin(0))
    for i, j in zip(*linear_sum_assignment(cost.numpy())):
        (_, cd, spread_d), (_, cs, spread_s) = ours[i], theirs[j]
        at = nearest == i
        q[at] = (grid[at] - cd) * (spread_s / spread_d) + cs
    return q


def transfer_change(change: Change, other: torch.Tensor, dilation: int = 0, complete_removal: bool = True,
                    by_transition: bool = True) -> Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The change carried onto a face whose mask is ``other`` [R, R].

    Returns ``(target, roi, free)``: the target mask, the region where it should hold (the source region carried
    over), and the pixels the change may touch on this face, which are the region plus this face's own pixels
    of the edited parts, dilated by ``dilation`` (what lies outside ``free`` should stay as it was).
    None when this face lacks the anchor parts. With ``complete_removal``, a part the change removes entirely
    (glasses taken off) goes entirely on this face too, whatever its shape (:func:`_complete_removal`).

    With ``by_transition``, the change is carried as what it does to each class rather than as the painted
    classes: only a pixel of a class the source's change painted over may take a carried class (a haircut does
    not paint the face's skin as background where this face's skin lies under the source's hair), and a part the
    change cuts back goes wherever it reaches past the cut on this face (:func:`_cut_back`). ``False``: the
    painted classes copied near the change, as before (issue #21: a shorter cut carried to a longer-haired face
    left the hair below the source's hair line, and painted that face's cheeks as background).
    """
    other = other.long()
    q = _source_coordinates(change, other)
    if q is None:
        return None
    q = q.round().long().to(other.device)
    r = other.shape[-1]
    inside = ((q >= 0) & (q < r)).all(-1)
    qy, qx = q[..., 0].clamp(0, r - 1), q[..., 1].clamp(0, r - 1)
    roi = inside & change.roi[qy, qx]
    carried = change.after[qy, qx]
    keep = torch.tensor(change.keep_ids, device=other.device)
    near = dilate(change.before != change.after, CHANGE_MARGIN)[qy, qx]
    takers = change.painted_over_ids if by_transition and change.painted_over_ids else change.keep_ids
    take = roi & near & torch.isin(carried, keep) & torch.isin(other, torch.tensor(takers, device=other.device))
    target = torch.where(take, carried, other)
    if complete_removal:
        target, roi = _complete_removal(change, target, roi, carried)
    if by_transition:
        target, roi = _cut_back(change, other, target, roi, qy, qx, inside)
    own = torch.isin(other, torch.tensor(change.part_ids, device=other.device, dtype=torch.long))
    free = dilate(roi | own, dilation)
    return target, roi, free


def _cut_back(change: Change, other: torch.Tensor, target: torch.Tensor, roi: torch.Tensor, qy: torch.Tensor,
              qx: torch.Tensor, inside: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """A part the change cuts back (some of its pixels painted as another class, the rest kept; hair shortened)
    is cut back on this face wherever it lies past the cut: its pixels whose place on the source face (``qy``,
    ``qx``) is nearer the source's cut-away pixels of it than its kept ones take the class painted at the nearest
    cut-away pixel, and join the region. Hair that this face has and the source had not, below the source's
    hair line, goes with the rest. Context classes (skin, background) are not cut back: they are what the
    other face is, not a part."""
    b, a = change.before.cpu().numpy(), change.after.cpu().numpy()
    for i in change.part_ids:  # the edited classes that are not context
        if i in change.removed_ids:
            continue
        cut, kept = (b == i) & (a != i), (b == i) & (a == i)
        if not cut.any() or not kept.any():
            continue
        to_cut, nearest = ndimage.distance_transform_edt(~cut, return_indices=True)
        past = torch.from_numpy(to_cut < ndimage.distance_transform_edt(~kept)).to(other.device)
        fill = torch.from_numpy(a[nearest[0], nearest[1]]).to(other.device)
        go = inside & past[qy, qx] & (other == i)
        target = torch.where(go, fill[qy, qx].to(target.dtype), target)
        roi = roi | go
    return target, roi


def _complete_removal(change: Change, target: torch.Tensor, roi: torch.Tensor, carried: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The pixels of a removed part that the carried change left on this face (a larger pair of glasses than the
    source's) take the carried class where it is another class the change may paint, else the class the source
    mostly painted over the part; they join the region. (carry_check, glasses taken off: region IoU against the
    face's own scripted edit 0.69-0.71 -> 0.77-0.79; docs/results_edit_judge.md.)"""
    for i in change.removed_ids:
        left = target == i
        if not left.any():
            continue
        was = (change.before == i) & (change.before != change.after)
        fill = int(torch.mode(change.after[was]).values) if was.any() else 0
        keep = torch.isin(carried, torch.tensor(change.keep_ids, device=carried.device)) & (carried != i)
        target = torch.where(left, torch.where(keep, carried, torch.full_like(carried, fill)), target)
        roi = roi | left
    return target, roi


def _signed_distance(part: np.ndarray) -> tuple[np.ndarray, float]:
    """Distance to ``part`` [R, R] bool outside it, minus the distance to its outside within it (pixels); and the
    part's depth (the largest of the latter)."""
    inner = ndimage.distance_transform_edt(part)
    return ndimage.distance_transform_edt(~part) - inner, float(inner.max())


def scale_change(before: torch.Tensor, after: torch.Tensor, amount: float, within: torch.Tensor) -> torch.Tensor:
    """The mask ``amount`` of the way from ``before`` to ``after`` [R, R] inside ``within`` [R, R] bool (``before``
    elsewhere): 0 gives ``before``, 1 ``after``, 0.5 a change of about half the size, above 1 a larger one.

    Each class that a changed pixel has on either side moves its boundary by interpolating its signed distance
    (negative inside the class) between the two masks; a pixel takes the class whose interpolated distance is the
    lowest, except that a pixel of another class keeps it unless it falls inside one of them. A class that only
    one side has grows from (or shrinks to) nothing: its missing side is its present side's distance raised by its
    depth, the deepest pixel's distance to the class's edge, plus half a pixel. Mode 2 refines a vector applied at
    a scale other than 1 towards its painted change scaled this way (:func:`core.edit_vector.carried_target`)."""
    if not np.isfinite(amount):
        raise ValueError(f"the amount must be a finite number, got {amount}")
    b, a, inside = before.long().cpu().numpy(), after.long().cpu().numpy(), within.cpu().numpy()
    changed = (b != a) & inside
    if amount == 1 or not changed.any():
        return torch.where(within, after, before) if amount == 1 else before.clone()
    ids = sorted(set(b[changed].tolist()) | set(a[changed].tolist()))
    dist = []
    for c in ids:
        in_b, in_a = b == c, a == c
        if in_b.any() and in_a.any():
            d = (1 - amount) * _signed_distance(in_b)[0] + amount * _signed_distance(in_a)[0]
        elif in_a.any():  # appears
            d, depth = _signed_distance(in_a)
            d = d + (1 - amount) * (depth + 0.5)
        else:  # disappears
            d, depth = _signed_distance(in_b)
            d = d + amount * (depth + 0.5)
        dist.append(d)
    dist = np.stack(dist)
    pick = np.asarray(ids)[dist.argmin(0)]
    inside_one = dist.min(0) < 0
    out = np.where(inside & (inside_one | np.isin(b, ids)), pick, b)
    return torch.from_numpy(out).to(before.device, before.dtype)
