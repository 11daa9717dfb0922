"""A contract's files: uploaded (multipart `file`), listed, downloaded, removed from a draft;
for whoever sees the contract (another team's rep gets 404, as for a missing contract)."""

from __future__ import annotations

import base64
from typing import Any

from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import Schema

from services.contracts import contract
from services.gateway.app import rpc_call
from services.gateway.resources.sales import sales_scope
from services.gateway.uploads import UploadLimit, allow_uploads, file_response

blp = Blueprint("contracts_attachments", __name__,
                description="A contract's files (contracts service).")

ATTACHMENT_UPLOAD = UploadLimit("contracts_attachments.add_attachment", "A contract attachment",
                                contract.MAX_ATTACHMENT_BYTES)
allow_uploads(blp, ATTACHMENT_UPLOAD)


class AttachmentFileSchema(Schema):
    file = Upload(required=True, metadata={
        "description": f"any file, at most {contract.MAX_ATTACHMENT_BYTES:,} bytes"})


@blp.route("/contracts/<string:contract_id>/attachments", methods=["POST"])
@blp.arguments(AttachmentFileSchema(), location="files")
@blp.response(201, contract.AttachmentSchema)
@blp.alt_response(409, description="The contract is in approval, has this file already "
                                   f"(`attachment_id`) or has {contract.MAX_ATTACHMENTS} files.")
@blp.alt_response(413, description=f"The file has more than "
                                   f"{contract.MAX_ATTACHMENT_BYTES:,} bytes.")
def add_attachment(files: dict[str, Any], contract_id: str) -> Any:
    """Attach a file (the signed scan, an annex) to a contract you see."""
    upload = files["file"]
    content = ATTACHMENT_UPLOAD.read(upload)
    created = rpc_call("contracts", "add_contract_attachment", contract_id=contract_id, data={
        "filename": upload.filename or "attachment",
        "content_type": upload.mimetype or "application/octet-stream",
        "content": base64.b64encode(content).decode()}, scope=sales_scope())
    return created, 201, {
        "Location": f"/contracts/{contract_id}/attachments/{created['id']}"}


@blp.route("/contracts/<string:contract_id>/attachments", methods=["GET"])
@blp.response(200, contract.AttachmentListSchema)
def list_attachments(contract_id: str) -> Any:
    """The contract's files, in upload order (without their content)."""
    return rpc_call("contracts", "list_contract_attachments", contract_id=contract_id,
                    scope=sales_scope())


@blp.route("/contracts/<string:contract_id>/attachments/<string:attachment_id>",
           methods=["GET"])
@blp.response(200, description="The file (application/octet-stream, its name in "
                               "Content-Disposition).", content_type="application/octet-stream")
def download_attachment(contract_id: str, attachment_id: str) -> Any:
    """Download one of the contract's files."""
    found = rpc_call("contracts", "get_contract_attachment", contract_id=contract_id,
                     attachment_id=attachment_id, scope=sales_scope())
    return file_response(found["filename"], base64.b64decode(found["content"]))


@blp.route("/contracts/<string:contract_id>/attachments/<string:attachment_id>",
           methods=["DELETE"])
@blp.response(204)
@blp.alt_response(412, description="Only a draft contract's files are removed.")
def remove_attachment(contract_id: str, attachment_id: str) -> Any:
    """Remove a file from a draft contract."""
    rpc_call("contracts", "remove_contract_attachment", contract_id=contract_id,
             attachment_id=attachment_id, scope=sales_scope())
    return "", 204
