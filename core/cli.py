"""Command line for the editing engine.

    python -m core.cli sample --seed 3 --out out/
    python -m core.cli sample --image photo.jpg --out out/     (the photo as the model draws it, and its mask)
    python -m core.cli edit   --seed 3 --edit open_mouth --out out/ --save-vector out/open_mouth.safetensors
    python -m core.cli edit   --image photo.jpg --target-mask painted.png --out out/
    python -m core.cli apply  --seed 7 --vector out/open_mouth.safetensors:1.0 --refine --out out/
    python -m core.cli batch  --input-dir photos/ --vector a.safetensors:1 --vector b.safetensors:0.5 --out out/
    python -m core.cli --device cuda edit ...              (default: $EDITGAN_DEVICE, else auto: CUDA when present)

Images are written as PNG: the image, its mask (palette colours) and, for
uploaded photos, the edit pasted back into the original. A photo (``--image``)
is embedded and the generator then tuned to it (pivotal tuning, ``--tune-steps``;
0 edits the embedding on the model as it is). A vector saved by
``edit --save-vector`` is first made transferable
(:func:`core.edit_vector.make_transferable`; ``--transfer-samples 0`` skips it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import torch
from PIL import Image
from tqdm import tqdm

from core.data.palette import colorize
from core.device import ENV_DEVICE, device_spec_from_env, resolve_device
from core.edit import EditConfig, edit_by_mask
from core.edit_vector import (
    REFINE_STEPS,
    TransferConfig,
    apply_vectors,
    calibrated,
    make_transferable,
    refine,
    vector_from_edit,
)
from core.editgan import DEFAULT_MODEL, EditGAN
from core.embed import EmbedConfig, EmbedResult
from core.image_io import paste_back, read_painted_mask, to_pil
from core.mask_edits import SCRIPTED_EDITS, apply_scripted
from core.vector_format import VectorFile

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def _embed(model: EditGAN, image, args) -> tuple[EditGAN, EmbedResult]:
    """Embed ``image`` (--embed-steps) and tune the generator to it (--tune-steps): (the bundle that draws it, result)."""
    r = model.embed(image, EmbedConfig(steps=args.embed_steps, tune_steps=args.tune_steps))
    parts = "; parts held to the image reader's reading" if r.reader_guided else ""
    tuned = f", {r.psnr:.2f} dB with the generator tuned to it" if r.tuning is not None else ""
    tuned += " (its mask held to the reader's reading)" if r.tune_branch_guided else ""
    print(f"embedded {image}: PSNR {r.psnr_untuned:.2f} dB{tuned} ({r.perceptual_backend}{parts})", file=sys.stderr)
    unlike = model.unlike_its_samples(r.target)
    if unlike:
        print(f"warning: {image}: {unlike}", file=sys.stderr)
    return (model.with_tuning(r.tuning) if r.tuning is not None else model), r


def _start(model: EditGAN, args) -> tuple[EditGAN, torch.Tensor, Optional[EmbedResult]]:
    """The image to edit: from --seed, or by embedding --image. Returns (bundle, w_plus, embed result or None)."""
    if args.image:
        bundle, r = _embed(model, args.image, args)
        return bundle, r.w_plus, r
    return model, model.sample(args.seed, args.truncation), None


def _write(out: Path, stem: str, image: torch.Tensor, mask: Optional[torch.Tensor], model: EditGAN) -> None:
    out.mkdir(parents=True, exist_ok=True)
    to_pil(image).save(out / f"{stem}.png")
    if mask is not None:
        Image.fromarray(colorize(mask[0].cpu().numpy(), model.palette)).save(out / f"{stem}_mask.png")


def _parse_vectors(specs: list[str]) -> list[tuple[VectorFile, float]]:
    """PATH[:SCALE] -> (vector, scale); without a scale the vector's default is used."""
    out = []
    for spec in specs:
        path, sep, tail = spec.rpartition(":")
        try:
            scale = float(tail) if sep else None
        except ValueError:
            scale = None
        if scale is None:
            path = spec
        v = VectorFile.load(path)
        out.append((v, v.default_scale if scale is None else scale))
    return out


def cmd_sample(base: EditGAN, args) -> dict:
    """A seed's sample, or with --image the photo embedded (and tuned to): its image and mask as the model draws them."""
    model, w, embedded = _start(base, args)
    stem = f"sample_{args.seed}" if embedded is None else f"embedded_{Path(args.image).stem}"
    _write(Path(args.out), stem, model.render(w), model.segment(w) if model.branch else None, model)
    if embedded is None:
        return {"seed": args.seed}
    return {"image": args.image, "psnr": round(embedded.psnr, 2), "psnr_untuned": round(embedded.psnr_untuned, 2)}


def cmd_edit(base: EditGAN, args) -> dict:
    # a painted mask is checked (square, palette colours, something painted) before a photo is embedded
    painted = None
    if args.target_mask:
        painted = torch.from_numpy(read_painted_mask(args.target_mask, base.resolution, base.palette))
    model, w, embedded = _start(base, args)
    current = model.segment(w)[0]
    if painted is not None:
        target = torch.where(painted >= 0, painted, current.cpu())
        if torch.equal(target, current.cpu()):
            raise ValueError("the target mask equals the current mask: nothing to edit")
    else:
        target = torch.from_numpy(apply_scripted(args.edit, current))
    cfg = model.edit_config(steps=args.steps, lr=args.lr)
    bar = tqdm(total=args.steps, desc="edit")
    result = edit_by_mask(model.generator, model.branch, w, target, model.class_names, cfg, model.perceptual,
                          model.encoder, callback=lambda s, loss, img: bar.update(1), reader=model.reader)  # fmt: skip
    bar.close()
    out = Path(args.out)
    _write(out, "before", model.render(w), current[None], model)
    Image.fromarray(colorize(target.numpy(), model.palette)).save(out / "target_mask.png")
    _write(out, "after", result.image, result.mask, model)
    if embedded is not None and embedded.crop is not None:
        paste_back(args.image, to_pil(result.image), embedded.crop).save(out / "after_in_original.png")
    if args.save_vector:
        if args.transfer_samples > 0:
            bar = tqdm(total=args.transfer_steps, desc="make transferable")
            result = make_transferable(model.generator, model.branch, w, result, model.class_names,
                                       TransferConfig(samples=args.transfer_samples, steps=args.transfer_steps), cfg,
                                       model.perceptual, model.encoder, lambda s, loss, img: bar.update(1),
                                       reader=model.reader, other_generator=base.generator)  # fmt: skip
            bar.close()
        vector = vector_from_edit(result, model.model_id, name=args.name or (args.edit or "edit"))
        if args.transfer_samples > 0 and not args.no_calibrate:  # other faces: the untuned model's
            vector = calibrated(vector, base.generator, base.branch, model.class_names, edit_config=cfg)
        vector.save(args.save_vector)
    return {"edited_classes": result.edited_classes, "metrics": result.metrics, "seconds": round(result.seconds, 2)}


def cmd_apply(base: EditGAN, args) -> dict:
    model, w, embedded = _start(base, args)
    vectors = _parse_vectors(args.vector)
    if args.refine > 0:
        r = refine(model.generator, model.branch, w, vectors, model.model_id, model.class_names, args.refine,
                   model.edit_config(), perceptual=model.perceptual, encoder=model.encoder, reader=model.reader)  # fmt: skip
    else:
        r = apply_vectors(model.generator, w, vectors, model.model_id, model.branch)
    _write(Path(args.out), "applied", r.image, r.mask, model)
    if embedded is not None and embedded.crop is not None:
        paste_back(args.image, to_pil(r.image), embedded.crop).save(Path(args.out) / "applied_in_original.png")
    for msg in r.warnings:
        print(f"warning: {msg}", file=sys.stderr)
    return {"warnings": r.warnings, "metrics": r.metrics, "seconds": round(r.seconds, 3)}


def cmd_batch(base: EditGAN, args) -> dict:
    vectors = _parse_vectors(args.vector)
    files = sorted(p for p in Path(args.input_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.input_dir}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done, failed = 0, {}
    for f in tqdm(files, desc="batch"):
        try:
            model, emb = _embed(base, f, args)
            if args.refine > 0:
                r = refine(model.generator, model.branch, emb.w_plus, vectors, model.model_id, model.class_names,
                           args.refine, model.edit_config(), perceptual=model.perceptual, encoder=model.encoder,
                           reader=model.reader)  # fmt: skip
            else:
                r = apply_vectors(model.generator, emb.w_plus, vectors, model.model_id)
            paste_back(f, to_pil(r.image), emb.crop).save(out / f"{f.stem}_edited.png")
            done += 1
        except ValueError as e:  # one bad file must not stop the batch
            failed[f.name] = str(e)
    return {"edited": done, "failed": failed}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m core.cli", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL,
                    help="model name under checkpoints/, a folder or a rosinality .pt (the app also reads hf://)")
    ap.add_argument("--device", default=device_spec_from_env(),
                    help=f"auto (CUDA when there is a GPU, else the CPU), cpu or cuda (default: ${ENV_DEVICE}, else auto)")
    sub = ap.add_subparsers(dest="command", required=True)

    def steps(value: str) -> int:
        if not value.strip().isdigit():  # also refuses negative and fractional counts
            raise argparse.ArgumentTypeError(f"a whole number of steps >= 0 is required, got {value!r}")
        return int(value)

    def common(p, start=True):
        p.add_argument("--out", required=True, help="output folder")
        # --model and --device also after the command (SUPPRESS: given there, they replace the ones before it)
        p.add_argument("--model", default=argparse.SUPPRESS, help="as --model before the command")
        p.add_argument("--device", default=argparse.SUPPRESS, help="as --device before the command")
        if start:
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--truncation", type=float, default=0.7)
            p.add_argument("--image", help="embed this image instead of sampling")
            p.add_argument("--embed-steps", type=int, default=100)
            p.add_argument("--tune-steps", type=int, default=200,
                           help="with --image: then tune the generator to it this many steps (0: do not)")  # fmt: skip

    def vectors(p):  # apply and batch
        p.add_argument("--vector", action="append", required=True, help="PATH[:SCALE], repeatable")
        p.add_argument("--refine", type=steps, nargs="?", const=REFINE_STEPS, default=0,
                       help=f"refinement steps (mode 2; --refine alone: {REFINE_STEPS})")  # fmt: skip

    common(sub.add_parser("sample", help="sample an image and its mask"))
    p = sub.add_parser("edit", help="edit by mask (optimisation, mode 3)")
    common(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--edit", choices=sorted(SCRIPTED_EDITS), help="a scripted mask edit")
    g.add_argument("--target-mask", help="a painted mask PNG in palette colours (transparent = unchanged)")
    p.add_argument("--steps", type=int, default=EditConfig.steps)
    p.add_argument("--lr", type=float, default=EditConfig.lr)
    p.add_argument("--save-vector", help="write the edit vector here (.safetensors)")
    p.add_argument("--name", help="vector name")
    p.add_argument("--transfer-samples", type=int, default=TransferConfig.samples,
                   help="before saving, make the vector leave this many random faces alone outside their "
                        "edited parts (0: save the edit's delta as it is)")  # fmt: skip
    p.add_argument("--transfer-steps", type=int, default=TransferConfig.steps)
    p.add_argument("--no-calibrate", action="store_true",
                   help="keep the transferable vector's strength as the edit left it (by default it is scaled so "
                        "that scale 1 makes the painted change on 8 held-out faces, as the branch reads them)")  # fmt: skip
    p = sub.add_parser("apply", help="apply edit vectors (mode 1, or mode 2 with --refine)")
    common(p)
    vectors(p)
    p = sub.add_parser("batch", help="apply a composition to every image in a folder")
    common(p, start=False)
    p.add_argument("--input-dir", required=True)
    vectors(p)
    p.add_argument("--embed-steps", type=int, default=50)
    p.add_argument("--tune-steps", type=int, default=0, help="tune the generator to each image (slower, closer)")
    return ap


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        need = ("branch",) if args.command in ("edit", "apply") else ()
        if getattr(args, "image", None) or args.command == "batch":
            need = need + ("encoder",)
        model = EditGAN.load(args.model, device=resolve_device(args.device), require=need)
        result = {"sample": cmd_sample, "edit": cmd_edit, "apply": cmd_apply, "batch": cmd_batch}[args.command](model, args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
