"""Opening a sample's image references: files on disk, or the built-in world's rendered images."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gaptune.data.world.world import WORLD_SCHEME, render_world_image


class ImageError(ValueError):
    """An image reference that cannot be opened; the message names the sample and the path."""


def open_image(ref: str, *, sample_id: str = "?") -> Image.Image:
    if ref.startswith(WORLD_SCHEME):
        return render_world_image(ref)
    path = Path(ref)
    if not path.is_file():
        raise ImageError(f"sample {sample_id!r}: image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"sample {sample_id!r}: image file {str(path)!r} cannot be read: {error}") from error
