"""The one error an upload raises, and the sentence every refusal of pickled code ends with."""

from __future__ import annotations

PICKLE_REFUSED = (
    "Pickled code is refused: unpickling it could run code from the file. Save the weights instead "
    "(torch.save(model.state_dict(), path) or safetensors.torch.save_file), or use torch.export.save"
)


class UploadError(ValueError):
    """An uploaded file was refused; the message says what is wrong with it and what to upload instead."""
