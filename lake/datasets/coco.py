"""Caption files that come with imported images: COCO captions JSON, and Lake's own sidecars.

    lake datasets coco import annotations/captions_val2017.json val2017/
    python -c "from lake.datasets.coco import load_sidecar; print(len(load_sidecar('data/shapes/captions.json')))"

Both readers return ``{file_name: [caption, ...]}`` with captions stripped, and raise
``ValueError`` naming the file and what is wrong with it. ``locate`` finds those file names
(which may have folders: ``val/x.jpg``) in an image folder, and says why for each it cannot.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath
from typing import Any


def _load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def read_coco_captions(annotations_json: Path) -> dict[str, list[str]]:
    """``file_name -> captions`` from a COCO captions file (``images`` + ``annotations``); no captions -> []."""
    doc = _load_json(annotations_json)
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("images"), list)
        or not isinstance(doc.get("annotations"), list)
    ):
        raise ValueError(f"{annotations_json}: not a COCO captions file (need lists 'images' and 'annotations')")
    names: dict[Any, str] = {}
    for k, img in enumerate(doc["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise ValueError(f"{annotations_json}: images[{k}] needs an 'id' and a string 'file_name'")
        if img["id"] in names:
            raise ValueError(f"{annotations_json}: images[{k}] repeats image id {img['id']!r}")
        names[img["id"]] = img["file_name"]
    if len(set(names.values())) != len(names):
        raise ValueError(f"{annotations_json}: two images share a file_name")
    out: dict[str, list[str]] = {name: [] for name in names.values()}
    for k, ann in enumerate(doc["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or not isinstance(ann.get("caption"), str):
            raise ValueError(f"{annotations_json}: annotations[{k}] needs an 'image_id' and a string 'caption'")
        if ann["image_id"] not in names:
            raise ValueError(f"{annotations_json}: annotations[{k}] refers to unknown image_id {ann['image_id']!r}")
        caption = ann["caption"].strip()
        if caption:
            out[names[ann["image_id"]]].append(caption)
    return out


def _from_mapping(path: Path, doc: Any) -> dict[str, list[str]]:
    if not isinstance(doc, dict) or not all(
        isinstance(caps, list) and all(isinstance(c, str) for c in caps) for caps in doc.values()
    ):
        raise ValueError(f"{path}: a captions.json sidecar must be an object {{file_name: [caption, ...]}}")
    return {str(name): [c.strip() for c in caps if c.strip()] for name, caps in doc.items()}


def _from_csv(path: Path) -> dict[str, list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets write a BOM
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header != ["file_name", "caption"]:
            raise ValueError(f"{path}: a CSV sidecar needs the header 'file_name,caption', found {','.join(header)!r}")
        out: dict[str, list[str]] = {}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 2 or not row[0].strip():
                raise ValueError(f"{path}: line {line} needs two fields, file_name and caption")
            caps = out.setdefault(row[0].strip(), [])
            if row[1].strip():
                caps.append(row[1].strip())
    return out


def load_sidecar(path: Path) -> dict[str, list[str]]:
    """Captions from ``captions.json`` ({file_name: [captions]}), a ``file_name,caption`` CSV, or a COCO file."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _from_csv(path)
    if path.suffix.lower() == ".json":
        doc = _load_json(path)
        if isinstance(doc, dict) and "images" in doc and "annotations" in doc:
            return read_coco_captions(path)
        return _from_mapping(path, doc)
    raise ValueError(f"{path}: unknown caption sidecar format (use captions.json or a CSV with file_name,caption)")


def locate(captions: dict[str, list[str]], images_dir: Path) -> tuple[dict[Path, list[str]], list[tuple[str, str]]]:
    """Split the named files into those under ``images_dir`` (``{path: captions}``) and
    ``(file_name, why)`` for each one that is not there, not a file, or not inside the folder."""
    images_dir = Path(images_dir)
    found: dict[Path, list[str]] = {}
    missing: list[tuple[str, str]] = []
    for name, caps in captions.items():
        rel = PurePosixPath(name)
        if not name or rel.is_absolute() or ".." in rel.parts:
            missing.append((name, f"not a file name inside {images_dir}"))
            continue
        path = images_dir.joinpath(*rel.parts)
        if not path.exists():
            missing.append((name, f"no such file in {images_dir}"))
        elif not path.is_file():
            missing.append((name, "not a file"))
        else:  # "./a.jpg" and "a.jpg" are one file: its captions are both's
            found.setdefault(path, []).extend(caps)
    return found, missing
