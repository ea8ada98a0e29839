"""Records of the national protocol's answers: received and sent items, agencies (with JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

SERVICE_TYPE = "eDoc"


@dataclass(frozen=True, slots=True)
class ReceivedItem:
    """One entry of ``getReceivedEdocList``: a package waiting for this system."""

    doc_id: str
    message_type: str
    from_: str
    to: str
    service_type: str = SERVICE_TYPE
    created_time: str = ""
    updated_time: str = ""
    status: str = ""
    status_desc: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "docId": self.doc_id,
            "serviceType": self.service_type,
            "messageType": self.message_type,
            "created_time": self.created_time,
            "updated_time": self.updated_time,
            "from": self.from_,
            "to": self.to,
            "status": self.status,
            "status_desc": self.status_desc,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> ReceivedItem:
        return cls(
            doc_id=_text(obj, "docId"),
            message_type=_text(obj, "messageType"),
            from_=_text(obj, "from"),
            to=_text(obj, "to"),
            service_type=_text(obj, "serviceType") or SERVICE_TYPE,
            created_time=_text(obj, "created_time"),
            updated_time=_text(obj, "updated_time"),
            status=_text(obj, "status"),
            status_desc=_text(obj, "status_desc"),
        )


@dataclass(frozen=True, slots=True)
class SentItem:
    """One entry of ``getSentEdocList``: a package this system sent, per recipient."""

    sender_doc_id: str
    receiver_doc_id: str
    from_code: str
    to_code: str
    message_type: str
    send_status: str = ""
    receive_status: str = ""
    sent_time: str = ""
    received_time: str = ""
    title: str = ""
    notation: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "serviceType": SERVICE_TYPE,
            "senderDocId": self.sender_doc_id,
            "receiverDocId": self.receiver_doc_id,
            "fromCode": self.from_code,
            "toCode": self.to_code,
            "messageType": self.message_type,
            "sendStatus": self.send_status,
            "sendStatusDesc": self.send_status,
            "receiveStatus": self.receive_status,
            "receiveStatusDesc": self.receive_status,
            "sentTime": self.sent_time,
            "receivedTime": self.received_time,
            "title": self.title,
            "notation": self.notation,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> SentItem:
        return cls(
            sender_doc_id=_text(obj, "senderDocId"),
            receiver_doc_id=_text(obj, "receiverDocId"),
            from_code=_text(obj, "fromCode"),
            to_code=_text(obj, "toCode"),
            message_type=_text(obj, "messageType"),
            send_status=_text(obj, "sendStatus"),
            receive_status=_text(obj, "receiveStatus"),
            sent_time=_text(obj, "sentTime"),
            received_time=_text(obj, "receivedTime"),
            title=_text(obj, "title"),
            notation=_text(obj, "notation"),
        )


@dataclass(frozen=True, slots=True)
class Agency:
    """An agency known to the platform (``getAgenciesList``, ``registerAgency``).

    The parent's OrganId is written as ``pid`` (what the SDK 2.0.1 reads) and ``pcode`` (what
    ``registerAgency`` and other clients use); either is read.
    """

    code: str  # the OrganId
    name: str
    pcode: str = ""  # the parent's OrganId
    id: str = ""
    mail: str = ""
    mobile: str = ""
    fax: str = ""

    def to_json(self) -> dict[str, str]:
        """As listed by ``getAgenciesList``: the parent under ``pid`` and ``pcode``."""
        return {"pid": self.pcode, **self.register_json()}

    def register_json(self) -> dict[str, str]:
        """The ``registerAgency`` body: ``{id, name, pcode, code, mail, mobile, fax}``."""
        return {
            "id": self.id,
            "name": self.name,
            "pcode": self.pcode,
            "code": self.code,
            "mail": self.mail,
            "mobile": self.mobile,
            "fax": self.fax,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> Agency:
        return cls(
            code=_text(obj, "code"),
            name=_text(obj, "name"),
            pcode=_text(obj, "pcode") or _text(obj, "pid"),
            id=_text(obj, "id"),
            mail=_text(obj, "mail"),
            mobile=_text(obj, "mobile"),
            fax=_text(obj, "fax"),
        )


def _text(obj: Mapping[str, object], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
