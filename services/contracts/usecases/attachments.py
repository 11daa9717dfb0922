"""A contract's files (the signed scan, annexes): attached by whoever sees the contract, listed,
downloaded, and removed while it is a draft (once signed its files are part of the record).

While the contract is in approval nothing is attached or removed (the approval lock,
`approvals.require_unlocked`). Limits (contract.py): MAX_ATTACHMENT_BYTES a file,
MAX_ATTACHMENTS a contract; the same file (by SHA-256) twice on one contract is a 409 naming the
one already there. A file name keeps only its last path part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.contracts import contract as wire
from services.contracts.models import Contract, ContractAttachment
from services.contracts.usecases import approvals
from services.contracts.usecases import contracts as contracts_uc
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed


def attachment_dict(row: ContractAttachment) -> dict[str, Any]:
    return {"id": row.id, "contract_id": row.contract_id, "filename": row.filename,
            "content_type": row.content_type, "size": row.size, "sha256": row.sha256,
            "uploaded_by": row.uploaded_by, "created_at": row.created_at.isoformat()}


def _content(data: dict[str, Any]) -> bytes:
    try:
        content = base64.b64decode(data["content"], validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed.for_fields({"content": ["not base64"]}) from None
    if not content:
        raise ValidationFailed.for_fields({"content": ["the file is empty"]})
    if len(content) > wire.MAX_ATTACHMENT_BYTES:
        raise ValidationFailed.for_fields(
            {"content": [f"at most {wire.MAX_ATTACHMENT_BYTES:,} bytes"]})
    return content


def _filename(name: str) -> str:
    last = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not last or last in (".", ".."):
        raise ValidationFailed.for_fields({"filename": ["a file name is required"]})
    return last


def _event(worker: Any, session: Session, event_type: str, contract: Contract,
           row: ContractAttachment) -> None:
    worker.events.record(session, event_type, {
        "contract_id": contract.id, "contract_number": contract.number,
        "attachment": attachment_dict(row)})


def add(worker: Any, contract_id: str, data: dict[str, Any],
        scope: dict[str, Any]) -> dict[str, Any]:
    content = _content(data)
    digest = hashlib.sha256(content).hexdigest()
    with worker.db.begin() as session:
        contract = contracts_uc.visible_contract(session, contract_id, scope, lock=True)
        approvals.require_unlocked(session, "contract", contract.id)
        there = session.execute(select(ContractAttachment.id, ContractAttachment.sha256)
                                .where(ContractAttachment.contract_id == contract.id)).all()
        same = [row_id for row_id, sha in there if sha == digest]
        if same:
            raise Conflict("this file is attached already", {"attachment_id": same[0]})
        if len(there) >= wire.MAX_ATTACHMENTS:
            raise Conflict(f"a contract has at most {wire.MAX_ATTACHMENTS} attachments",
                           {"max_attachments": wire.MAX_ATTACHMENTS})
        row = ContractAttachment(
            id=str(uuid.uuid4()), contract_id=contract.id, filename=_filename(data["filename"]),
            content_type=data["content_type"], size=len(content), sha256=digest,
            content=content, uploaded_by=worker.context.actor, created_at=utcnow())
        session.add(row)
        session.flush()
        _event(worker, session, "contract_attachment_added", contract, row)
        return attachment_dict(row)


def list_for(worker: Any, contract_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    with worker.db.read() as session:
        contract = contracts_uc.visible_contract(session, contract_id, scope)
        rows = session.scalars(select(ContractAttachment).where(
            ContractAttachment.contract_id == contract.id)
            .order_by(ContractAttachment.created_at, ContractAttachment.id)).all()
        return {"items": [attachment_dict(row) for row in rows]}


def _find(session: Session, contract: Contract, attachment_id: Any) -> ContractAttachment:
    row = session.get(ContractAttachment, attachment_id) if isinstance(attachment_id, str) \
        and len(attachment_id) <= 36 else None
    if row is None or row.contract_id != contract.id:
        raise NotFound(f"no attachment {attachment_id} on this contract")
    return row


def get(worker: Any, contract_id: str, attachment_id: str,
        scope: dict[str, Any]) -> dict[str, Any]:
    """The file with its content (base64)."""
    with worker.db.read() as session:
        contract = contracts_uc.visible_contract(session, contract_id, scope)
        row = _find(session, contract, attachment_id)
        return {**attachment_dict(row), "content": base64.b64encode(row.content).decode()}


def remove(worker: Any, contract_id: str, attachment_id: str,
           scope: dict[str, Any]) -> dict[str, Any]:
    with worker.db.begin() as session:
        contract = contracts_uc.visible_contract(session, contract_id, scope, lock=True)
        approvals.require_unlocked(session, "contract", contract.id)
        row = _find(session, contract, attachment_id)
        if contract.status != "draft":
            raise PreconditionFailed("a file is removed only from a draft contract",
                                     {"status": contracts_uc.status_of(contract)})
        _event(worker, session, "contract_attachment_removed", contract, row)
        session.delete(row)
        return attachment_dict(row)


def hashes(session: Session, contract_id: str) -> list[str]:
    """The contract's files as its terms name them (approval): SHA-256s in upload order."""
    return list(session.scalars(select(ContractAttachment.sha256).where(
        ContractAttachment.contract_id == contract_id)
        .order_by(ContractAttachment.created_at, ContractAttachment.id)))


