"""Typed rejections: each carries a message meant for the person who uploaded the file."""

from __future__ import annotations


class RejectedInput(ValueError):
    """An input that will not be stored or processed; ``str(exc)`` is shown to the user."""

    code = "rejected"


class UnreadableImage(RejectedInput):
    code = "unreadable"


class UnsupportedFormat(RejectedInput):
    code = "unsupported_format"


class NoPixelData(RejectedInput):
    code = "no_pixel_data"


class NotARadiograph(RejectedInput):
    code = "not_a_radiograph"


class ImageTooSmall(RejectedInput):
    code = "too_small"


class ImageTooLarge(RejectedInput):
    code = "too_large"


class UnsafeArchive(RejectedInput):
    code = "unsafe_archive"


class EmptyArchive(RejectedInput):
    code = "empty_archive"


class PatientConflict(RejectedInput):
    """An instance whose patient differs from the patient of the study it names: two
    patients are never merged into one study (one read, one SR, one patient)."""

    code = "patient_conflict"


class InstanceConflict(RejectedInput):
    """The SOP Instance UID of a stored instance, sent again with other content."""

    code = "instance_conflict"


class ModelCardMismatch(RuntimeError):
    """A model folder whose card and weights disagree: refusing is safer than guessing."""
