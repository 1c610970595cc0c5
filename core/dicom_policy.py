"""Who may associate with the DICOM node and what a received instance must be: pure
rules (no network, no database) that services.pacs.receiver applies.

An allow-list entry is ``TITLE`` (any address, as before) or ``TITLE@ADDRESS`` with an
IPv4/IPv6 address or CIDR block. AE titles are compared exactly, after removing the
space padding DICOM puts on the wire (a title and the same title with trailing spaces are
the same 16 bytes in the A-ASSOCIATE-RQ, so no receiver can tell them apart).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from pydicom.uid import UID

IMAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}
RECEIVED_MODALITIES = frozenset({"CR", "DX"})  # a Secondary Capture keeps the source's modality
# Secondary Capture images of a radiograph also carry other codes; they are accepted only as
# the modality of the image they capture
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


class Refusal(StrEnum):
    """Why an association is refused (audited, logged with title and address)."""

    UNKNOWN_CALLER = "calling AE title not on the allow-list"
    WRONG_ADDRESS = "calling AE title not allowed from this address"
    WRONG_CALLED = "called AE title is not this node's"
    TOO_MANY_FROM_CALLER = "this caller already holds its maximum of associations"
    TOO_MANY = "the node already holds its maximum of associations"


@dataclass(frozen=True)
class CallerRule:
    title: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None  # None: any address

    def matches_title(self, title: str) -> bool:
        return title == self.title

    def allows(self, title: str, address: str) -> bool:
        if title != self.title:
            return False
        if self.network is None:
            return True
        try:
            return ipaddress.ip_address(address) in self.network
        except ValueError:
            return False


def parse_allow_list(entries: tuple[str, ...] | list[str]) -> list[CallerRule]:
    """``["ORTHANC@10.0.0.7", "MODALITY1@10.1.0.0/16", "LEGACY"]`` -> rules; a malformed
    entry is an error at start-up, never a rule that silently allows more."""
    rules = []
    for entry in entries:
        title, at, host = entry.strip().partition("@")
        title = title.strip()
        if not title or len(title) > 16 or not title.isprintable() or "\\" in title:
            raise ValueError(f"CXR_DICOM_ALLOWED_CALLERS: {entry!r} has no valid AE title (1 to 16 characters)")
        network = None
        if at:
            try:
                network = ipaddress.ip_network(host.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"CXR_DICOM_ALLOWED_CALLERS: {entry!r}: {host!r} is not an address or CIDR") from exc
        rules.append(CallerRule(title, network))
    return rules


def association_refusal(
    rules: list[CallerRule],
    own_title: str,
    calling: str,
    called: str,
    address: str,
    established_from_caller: int,
    established_total: int,
    max_per_caller: int,
    max_total: int,
) -> Refusal | None:
    """Why this association request is refused, or None to accept it."""
    calling, called = calling.rstrip(" "), called.rstrip(" ")
    if called != own_title:
        return Refusal.WRONG_CALLED
    if not any(rule.matches_title(calling) for rule in rules):
        return Refusal.UNKNOWN_CALLER
    if not any(rule.allows(calling, address) for rule in rules):
        return Refusal.WRONG_ADDRESS
    if established_from_caller >= max_per_caller:
        return Refusal.TOO_MANY_FROM_CALLER
    if established_total >= max_total:
        return Refusal.TOO_MANY
    return None


def valid_uid(value: object) -> bool:
    text = str(value or "")
    return 0 < len(text) <= 64 and UID(text).is_valid


def instance_problem(requested_class: str, ds) -> str | None:
    """Why a received dataset is refused before it is stored, or None: the SOP class it was
    sent under must be the one it says it is and an image class this node reads, its UIDs
    valid (a malformed UID would make duplicates undetectable and be repeated in the SR),
    and its Modality CR or DX."""
    own_class = str(ds.get("SOPClassUID", "") or "")
    if own_class != requested_class:
        return f"sent as SOP class {requested_class} but the data set says {own_class or 'nothing'}"
    if requested_class not in IMAGE_CLASSES:
        return f"SOP class {requested_class} is not an image this node reads"
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        if not valid_uid(ds.get(keyword)):
            return f"{keyword} is missing or not a valid UID"
    modality = str(ds.get("Modality", "") or "").strip()
    if not modality:
        return "Modality is missing (CR or DX is required)"
    if modality not in RECEIVED_MODALITIES:
        return f"Modality {modality[:16]} is not CR or DX"
    return None
