"""A request's document → its pages as RGB images: any image Pillow reads (each frame of a multi-page
TIFF is a page), or a PDF, rasterised by PDFium (``pypdfium2``, the ``ocr`` extra; its wheel bundles
the PDFium binary, ~9 MB installed, Apache-2.0/BSD-3-Clause)."""

from __future__ import annotations

import io
import threading
import warnings

from PIL import Image, ImageSequence

from lanai.errors import BackendUnavailable, BadInput, PayloadTooLarge
from lanai.tasks.image import READABLE, decode_image

__all__ = ["read_pages", "MAX_PAGES"]

MAX_PAGES = 100
_PDF = b"%PDF-"
_PDFIUM = threading.Lock()  # PDFium is not thread-safe, not even across documents


def read_pages(data: bytes, *, max_pixels: int, dpi: int) -> list[Image.Image]:
    """The pages of ``data``, at most ``MAX_PAGES`` and ``max_pixels`` pixels in all.

    Raises BadInput for what is not an image or a PDF, PayloadTooLarge for a document over the limits.
    """
    if data.startswith(_PDF):
        return _pdf_pages(data, max_pixels=max_pixels, dpi=dpi)
    first = decode_image(data, max_pixels=max_pixels)  # checks, decodes and turns the first page upright
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data), formats=READABLE)
    count = getattr(img, "n_frames", 1)
    if count == 1 or img.format != "TIFF":  # animated GIFs and WebPs are one picture, not pages
        return [first]
    _check_count(count)
    pages, total = [first], first.width * first.height
    try:
        for frame in ImageSequence.Iterator(img):
            if frame.tell() == 0:
                continue
            total = _check_total(total + frame.width * frame.height, max_pixels)
            pages.append(frame.convert("RGB"))
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"page {len(pages) + 1} of the TIFF is corrupt ({exc}).", hint="send the whole file.") from None
    return pages


def _check_count(count: int) -> None:
    if count > MAX_PAGES:
        raise PayloadTooLarge(
            f"the document has {count} pages; one request reads at most {MAX_PAGES}.",
            hint="send it in parts of fewer pages.",
        )
    if count < 1:
        raise BadInput("the document has no pages.", hint="send a PDF or an image with at least one page.")


def _check_total(total: int, max_pixels: int) -> int:
    if total > max_pixels:
        raise PayloadTooLarge(
            f"the document's pages are over the {max_pixels / 1e6:.1f} megapixel limit in all.",
            hint="send fewer pages per request, or a PDF at a lower dpi.",
        )
    return total


def _pdf_pages(data: bytes, *, max_pixels: int, dpi: int) -> list[Image.Image]:
    try:
        import pypdfium2 as pdfium
    except ImportError:
        raise BackendUnavailable(
            "reading PDFs needs pypdfium2, which is not installed.", hint="pip install 'lanai[ocr]'"
        ) from None
    scale = dpi / 72.0  # PDF sizes are in points, 72 to the inch
    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise BadInput(f"the PDF cannot be read ({exc}).", hint="send the whole, unencrypted file.") from None
        try:
            _check_count(len(pdf))
            pages, total = [], 0
            for index in range(len(pdf)):
                page = pdf[index]
                width, height = page.get_size()
                total = _check_total(total + int(width * scale) * int(height * scale), max_pixels)
                pages.append(page.render(scale=scale).to_pil().convert("RGB"))
                page.close()
            return pages
        finally:
            pdf.close()
